// VMailboxService: mailboxes, their passwords (hash only), quotas, catch-all and aliases on delete.
import { NetservaError } from "../../common/errors.ts";
import { parseAddress } from "../../common/validation/index.ts";
import { VMailbox } from "../db/entities/index.ts";
import { parseBool } from "./limits.ts";
import type {
  AddMailboxInput,
  AddMailboxesInput,
  ChangeMailboxInput,
  RemoveMailboxInput,
  VMailboxServiceApi,
} from "./mail-api.ts";
import { readVnode, sourcesPointingAt } from "./mail-lookups.ts";
import { addMailboxes } from "./mailbox-add.ts";
import { prepareAdd, prepareMany } from "./mailbox-add-prepare.ts";
import type { AddItemInput } from "./mailbox-add-prepare.ts";
import { listMailboxes } from "./mailbox-list.ts";
import { readMailbox } from "./mailbox-read.ts";
import { changeMailbox, mailboxOnVnode, prepareChange } from "./mailbox-change.ts";
import { fixAliasesFor } from "./mailbox-removal.ts";
import { mailboxView } from "./mail-views.ts";
import type { ServiceDeps } from "./service-deps.ts";
import { deleteMailbox } from "./state-changes.ts";

/** What the command log records of an add: never the password, only how it was set. */
const addArgs = (input: AddItemInput) => ({
  email: input.address, // command-log args keep their recorded names
  quota: input.quota,
  name: input.name,
  scheme: input.scheme,
  catchAll: input.catchAll,
  active: input.active,
  sieve: input.sieve === undefined ? undefined : "set",
  password: input.password !== undefined ? "given" : input.passwordHash !== undefined ? "hash given" : "generated",
});

export function createVMailboxService({ ctx, mutate }: ServiceDeps): VMailboxServiceApi {
  return {
    add(input: AddMailboxInput) {
      return mutate({
        command: "addvmail",
        vnode: input.vnode,
        dryRun: input.dryRun,
        requestId: input.requestId,
        needsCapacity: true,
        args: addArgs(input),
        prepare: () => prepareAdd(input),
        async apply(tx, prepared) {
          const outcome = await addMailboxes(tx, [{ index: 0, prepared }]);
          const refused = outcome.refused[0];
          if (refused) throw refused.error;
          const added = outcome.added[0];
          if (!added) throw new Error("mailbox add: no outcome"); // unreachable
          return { value: { mailbox: added.mailbox, password: added.password }, changes: outcome.changes };
        },
      });
    },

    addMany(input: AddMailboxesInput) {
      const items = Array.isArray(input.mailboxes) ? input.mailboxes : [];
      return mutate({
        command: "addvmail",
        vnode: input.vnode,
        dryRun: input.dryRun,
        requestId: input.requestId,
        needsCapacity: true,
        args: {
          batch: items.length,
          emails: items.map((m) => (typeof m?.address === "string" ? m.address.slice(0, 300) : null)),
        },
        prepare: () => prepareMany(input.mailboxes),
        async apply(tx, prepared) {
          const early = prepared.flatMap((p) =>
            p.error === undefined ? [] : [{ index: p.index, error: NetservaError.from(p.error) }],
          );
          const outcome = await addMailboxes(
            tx,
            prepared.flatMap((p) => (p.prepared ? [{ index: p.index, prepared: p.prepared }] : [])),
          );
          const refused = [...early, ...outcome.refused].sort((a, b) => a.index - b.index);
          const value = { added: outcome.added, refused };
          const noop =
            outcome.added.length === 0
              ? `all ${refused.length} mailboxes refused${refused[0] ? `; first: ${refused[0].error.message}` : ""}`
              : undefined;
          return { value, changes: outcome.changes, ...(noop === undefined ? {} : { noop }) };
        },
      });
    },

    list: (vnode, domain) => listMailboxes(ctx.em, vnode, domain),

    async get(vnodeInput, address) {
      const vnode = await readVnode(ctx.em, vnodeInput);
      return readMailbox(ctx.em, vnode, parseAddress(address, "email"));
    },

    change(input: ChangeMailboxInput) {
      return mutate({
        command: "chvmail",
        vnode: input.vnode,
        dryRun: input.dryRun,
        requestId: input.requestId,
        needsCapacity: input.quota !== undefined,
        args: {
          email: input.address,
          quota: input.quota,
          active: input.active,
          name: input.name,
          scheme: input.scheme,
          sieve: input.sieve === undefined ? undefined : input.sieve === null ? "removed" : "set",
          password:
            input.password !== undefined
              ? "given"
              : input.passwordHash !== undefined
                ? "hash given"
                : input.generatePassword === true
                  ? "generated"
                  : undefined,
        },
        prepare: () => prepareChange(input),
        apply: changeMailbox,
      });
    },

    remove(input: RemoveMailboxInput) {
      return mutate({
        command: "delvmail",
        vnode: input.vnode,
        dryRun: input.dryRun,
        requestId: input.requestId,
        args: {
          email: input.address,
          keepMaildir: input.keepMaildir === true,
          removeAliases: input.removeAliases === true,
        },
        prepare: () => ({
          address: parseAddress(input.address, "email"),
          keepMaildir: parseBool(input.keepMaildir, "keepMaildir") ?? false,
          removeAliases: parseBool(input.removeAliases, "removeAliases") ?? false,
        }),
        async apply({ em, vnode, now }, { address, keepMaildir, removeAliases }) {
          const { mailbox } = await mailboxOnVnode(em, vnode, address);
          const view = mailboxView(mailbox, vnode.name, await sourcesPointingAt(em, mailbox.ascii));
          const fixup = await fixAliasesFor(em, mailbox.ascii, removeAliases, now);
          await em.nativeDelete(VMailbox, { id: mailbox.id });
          return {
            value: { mailbox: view, removedAliases: fixup.removedAliases },
            changes: [...fixup.changes, deleteMailbox(mailbox.ascii, keepMaildir)],
          };
        },
      });
    },
  };
}
