// Changing a mailbox: password (given, imported hash or generated; passwordChangedAt moves),
// quota (domain limit and vnode storage, counting the mailbox's old quota out), active, display
// name and Sieve script. Input checks and hashing run before the transaction (prepareChange).
import type { SqlEntityManager } from "@mikro-orm/sql";
import { invalid, notFound } from "../../common/errors.ts";
import { checkSieveScript, parseAddress, parseDisplayName, parseQuota } from "../../common/validation/index.ts";
import type { ParsedAddress } from "../../common/validation/index.ts";
import { VMailbox } from "../db/entities/index.ts";
import { parseBool } from "./limits.ts";
import type { ChangeMailboxInput, MailboxView } from "./mail-api.ts";
import { domainOnVnode, findMailbox, sourcesPointingAt } from "./mail-lookups.ts";
import type { VnodeRef } from "./mail-lookups.ts";
import { resolvePassword } from "./mailbox-password.ts";
import { mailboxView } from "./mail-views.ts";
import type { Applied, MutationTx } from "./mutate.ts";
import { checkCapacity, checkMailboxQuota } from "./quota-rules.ts";
import { requireSomething } from "./service-deps.ts";
import { upsertMailbox } from "./state-changes.ts";

/** The mailbox at `address`, on a domain of this vnode. */
export async function mailboxOnVnode(em: SqlEntityManager, vnode: VnodeRef, address: ParsedAddress) {
  const domain = await domainOnVnode(em, vnode, address.domain, "email");
  const mailbox = await findMailbox(em, address.ascii);
  if (!mailbox)
    throw notFound(
      `email: no mailbox ${address.address} on vnode '${vnode.name}' (see shvmail ${vnode.name} @${address.domain.unicode})`,
    );
  return { domain, mailbox };
}

export async function prepareChange(input: ChangeMailboxInput) {
  const address = parseAddress(input.address, "email");
  const patch = {
    quota: input.quota === undefined ? undefined : parseQuota(input.quota, "quota"),
    active: parseBool(input.active, "active"),
    displayName: input.name === undefined ? undefined : parseDisplayName(input.name, "name"),
    sieveScript:
      input.sieve === undefined ? undefined : input.sieve === null ? null : checkSieveScript(input.sieve, "sieve"),
  };
  const generate = parseBool(input.generatePassword, "generatePassword") === true;
  if (input.scheme !== undefined && input.password === undefined && !generate) {
    throw invalid("scheme", "a scheme applies to a new password: give --password, --password-stdin or generate one");
  }
  requireSomething(
    { ...patch, p: input.password, h: input.passwordHash, g: generate || undefined },
    "--password, --quota, --active, --name or --sieve",
  );
  const password = await resolvePassword({
    password: input.password,
    passwordHash: input.passwordHash,
    generate,
    scheme: input.scheme,
  });
  return { address, patch, password };
}

export type PreparedChange = Awaited<ReturnType<typeof prepareChange>>;

export async function changeMailbox(
  tx: MutationTx,
  p: PreparedChange,
): Promise<Applied<{ mailbox: MailboxView; password: string | undefined }>> {
  const { em, vnode, now } = tx;
  const { domain, mailbox } = await mailboxOnVnode(em, vnode, p.address);
  const next = { ...mailbox, updatedAt: now } as VMailbox;
  if (p.patch.quota !== undefined) {
    next.quota = checkMailboxQuota(p.patch.quota, domain);
    await checkCapacity({
      em,
      vnodeId: vnode.id,
      vnodeName: vnode.name,
      capacity: tx.capacity,
      domain,
      quota: next.quota,
      exceptMailboxId: mailbox.id,
    });
  }
  if (p.patch.active !== undefined) next.active = p.patch.active;
  if (p.patch.displayName !== undefined) next.displayName = p.patch.displayName;
  if (p.patch.sieveScript !== undefined) next.sieveScript = p.patch.sieveScript;
  if (p.password) {
    next.passwordHash = p.password.hash;
    next.passwordChangedAt = now;
  }
  const { id: _id, ...data } = next;
  await em.nativeUpdate(VMailbox, { id: mailbox.id }, data);
  const view = mailboxView(next, vnode.name, await sourcesPointingAt(em, next.ascii));
  return {
    value: { mailbox: view, password: tx.dryRun ? undefined : p.password?.generated },
    changes: [upsertMailbox(next)],
  };
}
