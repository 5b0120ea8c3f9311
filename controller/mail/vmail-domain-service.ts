// VMailDomainService: hosted mail domains, their limits, and the DNS-zone rule.
import { conflict, invalid } from "../../common/errors.ts";
import { formatQuota, parseDomain, parseQuota } from "../../common/validation/index.ts";
import { VMailDomain } from "../db/entities/index.ts";
import { domainCounts } from "./counts.ts";
import { parseBool, parseLimit } from "./limits.ts";
import type { AddDomainInput, ChangeDomainInput, DomainView, VMailDomainServiceApi } from "./mail-api.ts";
import { countIn, detached, domainOnVnode, readVnode } from "./mail-lookups.ts";
import { domainView } from "./mail-views.ts";
import { DEFAULT_QUOTA } from "./quota-rules.ts";
import { removeDomain } from "./domain-removal.ts";
import { checkDomainLimits } from "./domain-limits.ts";
import type { ServiceDeps } from "./service-deps.ts";
import { requireSomething } from "./service-deps.ts";
import { upsertDomain } from "./state-changes.ts";

const quotaOf = (input: string | undefined, field: string) =>
  input === undefined ? undefined : parseQuota(input, field);

export function createVMailDomainService({ ctx, mutate }: ServiceDeps): VMailDomainServiceApi {
  return {
    add(input: AddDomainInput) {
      return mutate({
        command: "addvmaildomain",
        vnode: input.vnode,
        dryRun: input.dryRun,
        requestId: input.requestId,
        args: {
          domain: input.domain,
          defaultQuota: input.defaultQuota,
          maxMailboxes: input.maxMailboxes,
          maxAliases: input.maxAliases,
          maxQuota: input.maxQuota,
          overcommit: input.overcommit,
          skipDnsCheck: input.skipDnsCheck === true,
        },
        async prepare() {
          const domain = parseDomain(input.domain, "domain");
          const settings = {
            defaultQuota: quotaOf(input.defaultQuota, "defaultQuota") ?? DEFAULT_QUOTA,
            maxQuota: quotaOf(input.maxQuota, "maxQuota") ?? 0,
            maxMailboxes: parseLimit(input.maxMailboxes, "maxMailboxes") ?? 0,
            maxAliases: parseLimit(input.maxAliases, "maxAliases") ?? 0,
            overcommit: parseBool(input.overcommit, "overcommit") ?? false,
          };
          checkDefaultWithinMax(settings.defaultQuota, settings.maxQuota);
          if (
            parseBool(input.skipDnsCheck, "skipDnsCheck") !== true &&
            (await ctx.dns.findZone(domain.ascii)) === undefined
          ) {
            throw conflict(
              `domain: no DNS zone covers ${domain.unicode}; create its zone first, or pass --skip-dns-check (recorded in the command log)`,
              "failed_precondition",
            );
          }
          return { domain, settings };
        },
        async apply({ em, vnode, now }, { domain, settings }) {
          const existing = await em.findOne(VMailDomain, { domain: domain.ascii }, detached);
          if (existing) {
            const where = existing.vnodeId === vnode.id ? "" : " on another vnode";
            throw conflict(`mail domain ${domain.unicode} is already hosted${where}`);
          }
          const row = {
            domain: domain.ascii,
            vnodeId: vnode.id,
            active: true,
            ...settings,
            dkimSelector: null,
            dkimAlgorithm: null,
            createdAt: now,
            updatedAt: now,
          };
          await em.insert(VMailDomain, row);
          const value = domainView(row, vnode.name, { mailboxes: 0, aliases: 0 });
          return { value, changes: [upsertDomain(row)], domainChanged: true };
        },
      });
    },

    async list(vnodeInput) {
      const vnode = await readVnode(ctx.em, vnodeInput);
      const rows = await ctx.em.find(VMailDomain, { vnodeId: vnode.id }, { ...detached, orderBy: { domain: "asc" } });
      const counts = await domainCounts(
        ctx.em,
        rows.map((d) => d.id),
      );
      return rows.map((d) => domainView(d, vnode.name, counts.get(d.id) ?? { mailboxes: 0, aliases: 0 }));
    },

    async get(vnodeInput, domainInput) {
      const vnode = await readVnode(ctx.em, vnodeInput);
      return viewIn(ctx.em, await domainOnVnode(ctx.em, vnode, parseDomain(domainInput, "domain")), vnode.name);
    },

    change(input: ChangeDomainInput) {
      return mutate({
        command: "chvmaildomain",
        vnode: input.vnode,
        dryRun: input.dryRun,
        requestId: input.requestId,
        args: {
          domain: input.domain,
          active: input.active,
          defaultQuota: input.defaultQuota,
          maxMailboxes: input.maxMailboxes,
          maxAliases: input.maxAliases,
          maxQuota: input.maxQuota,
          overcommit: input.overcommit,
        },
        prepare() {
          const domain = parseDomain(input.domain, "domain");
          const patch = {
            active: parseBool(input.active, "active"),
            defaultQuota: quotaOf(input.defaultQuota, "defaultQuota"),
            maxQuota: quotaOf(input.maxQuota, "maxQuota"),
            maxMailboxes: parseLimit(input.maxMailboxes, "maxMailboxes"),
            maxAliases: parseLimit(input.maxAliases, "maxAliases"),
            overcommit: parseBool(input.overcommit, "overcommit"),
          };
          requireSomething(
            patch,
            "--active, --default-quota, --max-quota, --max-mailboxes, --max-aliases or --overcommit",
          );
          return { domain, patch };
        },
        async apply({ em, vnode, now }, { domain, patch }) {
          const row = await domainOnVnode(em, vnode, domain);
          const next = {
            ...row,
            ...Object.fromEntries(Object.entries(patch).filter(([, v]) => v !== undefined)),
            updatedAt: now,
          } as VMailDomain;
          checkDefaultWithinMax(Number(next.defaultQuota), Number(next.maxQuota));
          await checkDomainLimits(em, row, next);
          const { id: _id, ...data } = next;
          await em.nativeUpdate(VMailDomain, { id: row.id }, data);
          return {
            value: await viewIn(em, next, vnode.name),
            changes: [upsertDomain(next)],
            domainChanged: next.active !== row.active,
          };
        },
      });
    },

    remove(input) {
      return mutate({
        command: "delvmaildomain",
        vnode: input.vnode,
        dryRun: input.dryRun,
        requestId: input.requestId,
        args: { domain: input.domain, keepMaildir: input.keepMaildir === true },
        prepare: () => ({
          domain: parseDomain(input.domain, "domain"),
          keepMaildir: parseBool(input.keepMaildir, "keepMaildir") ?? false,
        }),
        async apply({ em, vnode }, { domain, keepMaildir }) {
          const row = await domainOnVnode(em, vnode, domain);
          const value = await viewIn(em, row, vnode.name);
          const changes = await removeDomain(em, row, keepMaildir);
          return { value, changes, domainChanged: true };
        },
      });
    },
  };
}

async function viewIn(em: ServiceDeps["ctx"]["em"], d: VMailDomain, vnode: string): Promise<DomainView> {
  return domainView(d, vnode, {
    mailboxes: await countIn(em, "mail_vboxes", d.id),
    aliases: await countIn(em, "mail_valias", d.id),
  });
}

function checkDefaultWithinMax(defaultQuota: number, maxQuota: number): void {
  if (maxQuota > 0 && (defaultQuota === 0 || defaultQuota > maxQuota)) {
    const shown = defaultQuota === 0 ? "unlimited" : formatQuota(defaultQuota);
    throw invalid(
      "defaultQuota",
      `default quota ${shown} is over the max quota ${formatQuota(maxQuota)} per mailbox; lower it or raise the max`,
    );
  }
}
