// VMailAliasService: aliases and catch-alls. Sources live on a domain of this vnode and may not
// shadow a mailbox; targets are valid addresses, local ones must exist, and no loop may form.
import type { SqlEntityManager } from "@mikro-orm/sql";
import { conflict, notFound } from "../../common/errors.ts";
import { parseAliasSource, parseAliasTargets } from "../../common/validation/index.ts";
import type { AliasSource } from "../../common/validation/index.ts";
import { VMailAlias } from "../db/entities/index.ts";
import { checkLocalTargets, checkNoLoop } from "./alias-rules.ts";
import { checkRoomFor } from "./domain-limits.ts";
import { parseBool } from "./limits.ts";
import type { AliasInput, ChangeAliasInput, VMailAliasServiceApi } from "./mail-api.ts";
import {
  detached,
  sourcesPointingAt,
  domainOnVnode,
  findAlias,
  findMailbox,
  parseDomainFilter,
  readVnode,
} from "./mail-lookups.ts";
import type { VnodeRef } from "./mail-lookups.ts";
import { aliasView } from "./mail-views.ts";
import type { ServiceDeps } from "./service-deps.ts";
import { requireSomething } from "./service-deps.ts";
import { deleteAlias, upsertAlias } from "./state-changes.ts";

const targetsOf = (input: string | string[]): string[] => parseAliasTargets(input, "targets").map((t) => t.ascii);

async function aliasOnVnode(em: SqlEntityManager, vnode: VnodeRef, source: AliasSource): Promise<VMailAlias> {
  await domainOnVnode(em, vnode, source.domain, "source");
  const alias = await findAlias(em, source.source);
  if (!alias) throw notFound(`source: no alias ${source.source} on vnode '${vnode.name}' (see shvalias ${vnode.name})`);
  return alias;
}

async function checkTargets(em: SqlEntityManager, source: string, targets: string[]): Promise<void> {
  await checkLocalTargets(em, source, targets);
  await checkNoLoop(em, source, targets);
}

export function createVMailAliasService({ ctx, mutate }: ServiceDeps): VMailAliasServiceApi {
  return {
    add(input: AliasInput) {
      return mutate({
        command: "addvalias",
        vnode: input.vnode,
        dryRun: input.dryRun,
        requestId: input.requestId,
        args: { source: input.source, targets: input.targets },
        prepare: () => ({ source: parseAliasSource(input.source, "source"), targets: targetsOf(input.targets) }),
        async apply({ em, vnode, now }, { source, targets }) {
          const domain = await domainOnVnode(em, vnode, source.domain, "source");
          const existing = await findAlias(em, source.source);
          if (existing)
            throw conflict(
              `source: alias ${source.source} already exists (→ ${existing.targets.join(", ")}); change it with chvalias`,
            );
          if (await findMailbox(em, source.source)) {
            throw conflict(
              `source: ${source.source} is a mailbox; an alias may not shadow it (to forward its mail, use a sieve redirect, or delete the mailbox first)`,
            );
          }
          await checkRoomFor(em, domain, "alias");
          await checkTargets(em, source.source, targets);
          const row = {
            domainId: domain.id,
            source: source.source,
            targets,
            active: true,
            createdAt: now,
            updatedAt: now,
          };
          await em.insert(VMailAlias, row);
          return { value: aliasView(row, vnode.name), changes: [upsertAlias(row)] };
        },
      });
    },

    async list(vnodeInput, options = {}) {
      const vnode = await readVnode(ctx.em, vnodeInput);
      if (options.source !== undefined)
        return [aliasView(await aliasOnVnode(ctx.em, vnode, parseAliasSource(options.source, "source")), vnode.name)];
      const domainIds =
        options.domain === undefined
          ? (
              await ctx.em.execute<Array<{ id: number }>>("select id from mail_vhosts where vnode_id = ?", [vnode.id])
            ).map((r) => r.id)
          : [(await domainOnVnode(ctx.em, vnode, parseDomainFilter(options.domain, "domain"))).id];
      if (domainIds.length === 0) return [];
      const rows = await ctx.em.find(
        VMailAlias,
        { domainId: { $in: domainIds } },
        { ...detached, orderBy: { source: "asc" } },
      );
      return rows.map((a) => aliasView(a, vnode.name));
    },

    async get(vnodeInput, source) {
      const vnode = await readVnode(ctx.em, vnodeInput);
      return aliasView(await aliasOnVnode(ctx.em, vnode, parseAliasSource(source, "source")), vnode.name);
    },

    change(input: ChangeAliasInput) {
      return mutate({
        command: "chvalias",
        vnode: input.vnode,
        dryRun: input.dryRun,
        requestId: input.requestId,
        args: { source: input.source, targets: input.targets, active: input.active },
        prepare() {
          const patch = {
            targets: input.targets === undefined ? undefined : targetsOf(input.targets),
            active: parseBool(input.active, "active"),
          };
          requireSomething(patch, "--targets or --active");
          return { source: parseAliasSource(input.source, "source"), patch };
        },
        async apply({ em, vnode, now }, { source, patch }) {
          const alias = await aliasOnVnode(em, vnode, source);
          const next = {
            ...alias,
            targets: patch.targets ?? alias.targets,
            active: patch.active ?? alias.active,
            updatedAt: now,
          };
          if (patch.targets !== undefined) await checkTargets(em, alias.source, next.targets);
          await em.nativeUpdate(
            VMailAlias,
            { id: alias.id },
            { targets: next.targets, active: next.active, updatedAt: now },
          );
          return { value: aliasView(next, vnode.name), changes: [upsertAlias(next)] };
        },
      });
    },

    remove(input) {
      return mutate({
        command: "delvalias",
        vnode: input.vnode,
        dryRun: input.dryRun,
        requestId: input.requestId,
        args: { source: input.source },
        prepare: () => ({ source: parseAliasSource(input.source, "source") }),
        async apply({ em, vnode }, { source }) {
          const alias = await aliasOnVnode(em, vnode, source);
          const pointing = await sourcesPointingAt(em, alias.source);
          if (pointing.length > 0) {
            throw conflict(
              `source: ${alias.source} is a target of ${pointing.join(", ")}; change those aliases first (chvalias), or their mail would bounce`,
              "failed_precondition",
            );
          }
          await em.nativeDelete(VMailAlias, { id: alias.id });
          return { value: aliasView(alias, vnode.name), changes: [deleteAlias(alias.source)] };
        },
      });
    },
  };
}
