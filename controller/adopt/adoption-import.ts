// Imports an adoption plan (controller/adopt/adoption-plan.ts) into the controller's mail rows in
// ONE mutation: one generation, one command log row. Hashes are stored as NetServa stored them,
// only given their {SCHEME} prefix (common/password/stored-hash-form.ts), never re-hashed; each
// mailbox keeps its home, uid and gid, so its maildir is used where it is, with its owner.
//
// Who is the source of truth decides what a second run does. While the vnode is unmanaged,
// NetServa's sysadm DB is: rows imported before (a rolled-back adoption) are brought up to date
// from it. Once the vnode is managed, the controller is: a second run adds only rows that are
// missing and leaves the rest alone (a password set with chvmail since is never reverted), so
// running it twice changes nothing.
import { conflict, invalid } from "../../common/errors.ts";
import { adoptedHashForm } from "../../common/password/stored-hash-form.ts";
import { parseAddress, parseAliasSource, parseDomain } from "../../common/validation/index.ts";
import { VMailAlias, VMailDomain, VMailbox } from "../db/entities/index.ts";
import { createZoneListProvider } from "../dns/zone-list-provider.ts";
import type { SqlEntityManager } from "@mikro-orm/sql";
import type { MutationResult } from "../mail/mail-api.ts";
import { createMutator } from "../mail/mutate.ts";
import type { AdoptionPlan } from "./adoption-plan.ts";
import type { ReadInventoryResponse } from "../../common/gen/netserva/mail/v1/agent_pb.ts";

export interface ImportCounts {
  added: number;
  updated: number;
  unchanged: number;
}

export interface AdoptionImport {
  domains: ImportCounts;
  mailboxes: ImportCounts;
  aliases: ImportCounts;
}

const counts = (): ImportCounts => ({ added: 0, updated: 0, unchanged: 0 });

/** The stored form of one planned mailbox's hash; the plan refused the ones without one. */
function hashOf(m: ReadInventoryResponse["mailboxes"][number]): string {
  const form = adoptedHashForm(m.passwordHash);
  if (form === undefined) throw invalid("passwordHash", `${m.address}: not a hash Dovecot verifies as stored`);
  return form;
}

export async function importAdoption(
  em: SqlEntityManager,
  o: { vnode: string; actor: string; plan: AdoptionPlan; authoritative: boolean; dryRun?: boolean },
): Promise<MutationResult<AdoptionImport>> {
  const mutate = createMutator({ em, actor: o.actor, dns: createZoneListProvider({ zones: [] }) });
  return mutate({
    command: "vnode adopt",
    vnode: o.vnode,
    dryRun: o.dryRun,
    // Counts only: never a hash, never an address list the size of the vnode.
    args: {
      domains: o.plan.domains.length,
      mailboxes: o.plan.mailboxes.length,
      aliases: o.plan.aliases.length,
      refreshFromNetserva: o.authoritative,
    },
    prepare: () => o.plan,
    async apply(tx, plan) {
      const out: AdoptionImport = { domains: counts(), mailboxes: counts(), aliases: counts() };
      const { em: t, vnode, now } = tx;

      const domainIds = new Map<string, number>();
      for (const d of plan.domains) {
        const name = parseDomain(d.domain, "domain").ascii;
        const found = await t.findOne(VMailDomain, { domain: name }, { disableIdentityMap: true });
        if (found && found.vnodeId !== vnode.id)
          throw conflict(`domain ${name} is hosted on another vnode already: move or delete it there first`);
        if (!found) {
          const id = await t.insert(VMailDomain, {
            domain: name,
            vnodeId: vnode.id,
            active: d.active,
            defaultQuota: 0,
            maxMailboxes: 0,
            maxAliases: 0,
            maxQuota: 0,
            overcommit: false,
            dkimSelector: null,
            dkimAlgorithm: null,
            createdAt: now,
            updatedAt: now,
          });
          domainIds.set(name, Number(id));
          out.domains.added += 1;
          continue;
        }
        domainIds.set(name, found.id);
        if (o.authoritative && found.active !== d.active) {
          await t.nativeUpdate(VMailDomain, { id: found.id }, { active: d.active, updatedAt: now });
          out.domains.updated += 1;
        } else out.domains.unchanged += 1;
      }

      const mailboxes = plan.mailboxes.map((m) => ({ m, address: parseAddress(m.address, "address") }));
      const existing = new Map(
        (
          await t.find(
            VMailbox,
            { ascii: { $in: mailboxes.map((x) => x.address.ascii) } },
            { disableIdentityMap: true },
          )
        ).map((b) => [b.ascii, b]),
      );
      const inserts: Array<Omit<VMailbox, "id">> = [];
      for (const { m, address } of mailboxes) {
        const domainId = domainIds.get(address.domain.ascii);
        if (domainId === undefined) throw invalid("address", `${m.address}: its domain is not imported`);
        const values = {
          passwordHash: hashOf(m),
          active: m.active,
          home: m.home,
          uid: m.uid,
          gid: m.gid,
          maildir: `${m.home}/Maildir`,
          ...(m.hasQuota ? { quota: Number(m.quotaBytes) } : {}),
        };
        const found = existing.get(address.ascii);
        if (found) {
          if (found.domainId !== domainId)
            throw conflict(`mailbox ${address.ascii} exists on another vnode already: delete it there first`);
          const differs = (Object.keys(values) as Array<keyof typeof values>).some((k) => found[k] !== values[k]);
          if (o.authoritative && differs) {
            await t.nativeUpdate(VMailbox, { id: found.id }, { ...values, updatedAt: now });
            out.mailboxes.updated += 1;
          } else out.mailboxes.unchanged += 1;
          continue;
        }
        inserts.push({
          domainId,
          localPart: address.local,
          ascii: address.ascii,
          quota: 0,
          usage: null,
          sieveScript: null,
          displayName: "",
          passwordChangedAt: now,
          createdAt: now,
          updatedAt: now,
          ...values,
        });
      }
      for (let i = 0; i < inserts.length; i += 500) await t.insertMany(VMailbox, inserts.slice(i, i + 500));
      out.mailboxes.added = inserts.length;

      for (const a of plan.aliases) {
        const source = parseAliasSource(a.source, "source");
        const targets = a.targets.map((x) => parseAddress(x, "target").ascii);
        const domainId = domainIds.get(source.domain.ascii);
        if (domainId === undefined) throw invalid("source", `${a.source}: its domain is not imported`);
        const found = await t.findOne(VMailAlias, { source: source.source }, { disableIdentityMap: true });
        if (!found) {
          await t.insertMany(VMailAlias, [
            { domainId, source: source.source, targets, active: a.active, createdAt: now, updatedAt: now },
          ]);
          out.aliases.added += 1;
        } else if (found.domainId !== domainId) {
          throw conflict(`alias ${source.source} exists on another vnode already: delete it there first`);
        } else if (o.authoritative && (found.active !== a.active || found.targets.join(",") !== targets.join(","))) {
          await t.nativeUpdate(VMailAlias, { id: found.id }, { targets, active: a.active, updatedAt: now });
          out.aliases.updated += 1;
        } else out.aliases.unchanged += 1;
      }
      const touched = [out.domains, out.mailboxes, out.aliases].some((c) => c.added + c.updated > 0);
      // No incremental changes: the vnode gets the whole state in one apply when it is switched.
      return touched ? { value: out, changes: [] } : { value: out, changes: [], noop: "everything imported already" };
    },
  });
}
