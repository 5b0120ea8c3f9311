// Adding mailboxes — one or a batch, the same rules either way, checked with a handful of
// set-based queries whatever the batch size and however many mailboxes the vnode already has:
// the domain is hosted here; the address is free (no mailbox, and no alias: an alias may not
// shadow a mailbox), also within the batch; the domain has room; the quota fits the domain's
// per-mailbox limit and the vnode's storage; an admin@ mailbox may take the @domain catch-all.
import { NetservaError, conflict } from "../../common/errors.ts";
import type { StateChange } from "../../common/gen/netserva/mail/v1/state_pb.ts";
import { VMailAlias, VMailDomain, VMailbox } from "../db/entities/index.ts";
import { domainFull } from "./domain-limits.ts";
import type { MailboxView } from "./mail-api.ts";
import { countIn, detached, domainNotHere } from "./mail-lookups.ts";
import type { PreparedAdd } from "./mailbox-add-prepare.ts";
import { mailboxView } from "./mail-views.ts";
import type { MutationTx } from "./mutate.ts";
import { capacityRefusal, checkMailboxQuota, vnodeQuotaSum } from "./quota-rules.ts";
import { upsertAlias, upsertMailbox } from "./state-changes.ts";

export interface AddOutcome {
  added: Array<{ index: number; mailbox: MailboxView; password: string | undefined }>;
  refused: Array<{ index: number; error: NetservaError }>;
  changes: StateChange[];
}

type MailboxRow = Omit<VMailbox, "id">;
type AliasRow = Omit<VMailAlias, "id">;
const CHUNK = 500;

export async function addMailboxes(
  tx: MutationTx,
  items: Array<{ index: number; prepared: PreparedAdd }>,
): Promise<AddOutcome> {
  const { em, vnode, now } = tx;
  const out: AddOutcome = { added: [], refused: [], changes: [] };
  if (items.length === 0) return out;
  const domainRows = await em.find(
    VMailDomain,
    { domain: { $in: [...new Set(items.map((i) => i.prepared.address.domain.ascii))] } },
    detached,
  );
  const domains = new Map(domainRows.map((d) => [d.domain, d]));
  const addresses = items.map((i) => i.prepared.address.ascii);
  const catchAlls = items.filter((i) => i.prepared.catchAll).map((i) => `@${i.prepared.address.domain.ascii}`);
  // Mailboxes and aliases that take these addresses, in one round trip.
  const taken = await em.execute<Array<{ address: string; targets: string[] | null }>>(
    `select address, null::jsonb as targets from mail_vboxes where address in (?)
     union all select source, targets from mail_valias where source in (?)`,
    [addresses, [...addresses, ...catchAlls]],
  );
  const boxes = new Set(taken.filter((r) => r.targets === null).map((r) => r.address));
  const aliases = new Map(taken.flatMap((r) => (r.targets === null ? [] : [[r.address, r.targets] as const])));
  const counts = new Map<string, number>();
  const countOf = async (d: VMailDomain, kind: "mailbox" | "alias") => {
    const key = `${kind}:${d.id}`;
    if (!counts.has(key)) counts.set(key, await countIn(em, kind === "mailbox" ? "mail_vboxes" : "mail_valias", d.id));
    return counts.get(key) ?? 0;
  };
  // The vnode-wide sum is O(mailboxes): asked only when a domain without overcommit needs it.
  let allocated: number | undefined;
  const rows: MailboxRow[] = [];
  const aliasRows: AliasRow[] = [];

  for (const { index, prepared: p } of items) {
    try {
      const domain = domains.get(p.address.domain.ascii);
      if (!domain || domain.vnodeId !== vnode.id)
        throw await domainNotHere(em, vnode, p.address.domain, "email", domain);
      const shown = p.address.address;
      if (boxes.has(p.address.ascii)) throw conflict(`email: mailbox ${shown} already exists (change it with chvmail)`);
      const alias = aliases.get(p.address.ascii);
      if (alias)
        throw conflict(
          `email: ${shown} is an alias (→ ${alias.join(", ")}); a mailbox cannot share its address: delete the alias first (delvalias) or choose another address`,
        );
      const n = domain.maxMailboxes > 0 ? await countOf(domain, "mailbox") : 0;
      if (domain.maxMailboxes > 0 && n >= domain.maxMailboxes) throw domainFull(domain, "mailbox", n);
      const quota = checkMailboxQuota(p.quota ?? Number(domain.defaultQuota), domain);
      if (tx.capacity !== undefined && !domain.overcommit) {
        // Rows accepted earlier in this batch are not stored yet: count them in.
        allocated ??= (await vnodeQuotaSum(em, vnode.id)) + rows.reduce((total, r) => total + r.quota, 0);
        const refusal = capacityRefusal({ capacity: tx.capacity, allocated, quota, vnodeName: vnode.name, domain });
        if (refusal) throw refusal;
      }
      const source = `@${domain.domain}`;
      if (p.catchAll) {
        const existing = aliases.get(source);
        if (existing)
          throw conflict(
            `catchAll: ${source} already has a catch-all (→ ${existing.join(", ")}); change it with chvalias instead`,
          );
        const a = domain.maxAliases > 0 ? await countOf(domain, "alias") : 0;
        if (domain.maxAliases > 0 && a >= domain.maxAliases) throw domainFull(domain, "alias", a);
      }
      // Accepted: later items of the batch see this one. The hash may still be on its thread.
      const password = await p.password;
      const row: MailboxRow = {
        domainId: domain.id,
        localPart: p.address.local,
        ascii: p.address.ascii,
        passwordHash: password.hash,
        quota,
        usage: null,
        active: p.active,
        maildir: `/srv/${domain.domain}/msg/${p.address.local}/Maildir`,
        home: null,
        uid: null,
        gid: null,
        sieveScript: p.sieve,
        displayName: p.displayName,
        passwordChangedAt: now,
        createdAt: now,
        updatedAt: now,
      };
      rows.push(row);
      boxes.add(row.ascii);
      counts.set(`mailbox:${domain.id}`, n + 1);
      if (allocated !== undefined) allocated += quota;
      out.changes.push(upsertMailbox(row));
      const pointing: string[] = [];
      if (p.catchAll) {
        const aliasRow: AliasRow = {
          domainId: domain.id,
          source,
          targets: [row.ascii],
          active: true,
          createdAt: now,
          updatedAt: now,
        };
        aliasRows.push(aliasRow);
        aliases.set(source, aliasRow.targets);
        counts.set(`alias:${domain.id}`, (counts.get(`alias:${domain.id}`) ?? 0) + 1);
        out.changes.push(upsertAlias(aliasRow));
        pointing.push(source);
      }
      out.added.push({
        index,
        mailbox: mailboxView(row, vnode.name, pointing),
        password: tx.dryRun ? undefined : password.generated,
      });
    } catch (error) {
      if (!(error instanceof NetservaError)) throw error;
      out.refused.push({ index, error });
    }
  }
  for (let i = 0; i < rows.length; i += CHUNK) await em.insertMany(VMailbox, rows.slice(i, i + CHUNK));
  if (aliasRows.length > 0) await em.insertMany(VMailAlias, aliasRows);
  return out;
}
