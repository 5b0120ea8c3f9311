// Finding the rows a command names, with refusals that say what to do next. Reads never load
// more than they need: one row by its unique key, or one domain's rows by an indexed column.
// Entities are read detached (no identity map): services update them with native statements.
import type { SqlEntityManager } from "@mikro-orm/sql";
import { notFound } from "../../common/errors.ts";
import type { NetservaError } from "../../common/errors.ts";
import { parseDomain, parseVnodeName } from "../../common/validation/index.ts";
import type { ParsedDomain } from "../../common/validation/index.ts";
import { VMailAlias, VMailDomain, VMailbox } from "../db/entities/index.ts";

export const detached = { disableIdentityMap: true } as const;

export interface VnodeRef {
  id: number;
  name: string;
}

/** A vnode for a read-only command (no lock, no generation bump). */
export async function readVnode(em: SqlEntityManager, input: string): Promise<VnodeRef> {
  const name = parseVnodeName(input, "vnode");
  const rows = await em.execute<Array<{ id: number; name: string }>>("select id, name from vnodes where name = ?", [
    name,
  ]);
  const row = rows[0];
  if (!row) throw notFound(`vnode '${name}' not found: see \`netserva-mail status\``);
  return row;
}

async function vnodeName(em: SqlEntityManager, id: number): Promise<string> {
  const rows = await em.execute<Array<{ name: string }>>("select name from vnodes where id = ?", [id]);
  return rows[0]?.name ?? `#${id}`;
}

/** The domain row, refused when it is not hosted here (saying where it is hosted, if anywhere). */
export async function domainOnVnode(
  em: SqlEntityManager,
  vnode: VnodeRef,
  domain: ParsedDomain,
  field = "domain",
): Promise<VMailDomain> {
  const row = await em.findOne(VMailDomain, { domain: domain.ascii }, detached);
  if (!row || row.vnodeId !== vnode.id) throw await domainNotHere(em, vnode, domain, field, row);
  return row;
}

/** The refusal for a domain that is not hosted on `vnode`: not at all, or elsewhere. */
export async function domainNotHere(
  em: SqlEntityManager,
  vnode: VnodeRef,
  domain: ParsedDomain,
  field: string,
  row: VMailDomain | null | undefined,
): Promise<NetservaError> {
  if (!row)
    return notFound(
      `${field}: mail domain ${domain.unicode} is not hosted; add it first (addvmaildomain ${vnode.name} ${domain.unicode})`,
    );
  return notFound(
    `${field}: mail domain ${domain.unicode} is hosted on vnode '${await vnodeName(em, row.vnodeId)}', not '${vnode.name}'`,
  );
}

/** "example.com" or "@example.com" (shvmail's filter form). */
export function parseDomainFilter(input: string, field = "domain"): ParsedDomain {
  return parseDomain(typeof input === "string" && input.startsWith("@") ? input.slice(1) : input, field);
}

export async function findMailbox(em: SqlEntityManager, address: string): Promise<VMailbox | null> {
  return em.findOne(VMailbox, { ascii: address }, detached);
}

export async function findAlias(em: SqlEntityManager, source: string): Promise<VMailAlias | null> {
  return em.findOne(VMailAlias, { source }, detached);
}

/** Sources of the aliases whose targets include `address`, in order (GIN index on targets). */
export async function sourcesPointingAt(em: SqlEntityManager, address: string): Promise<string[]> {
  const rows = await em.execute<Array<{ source: string }>>(
    "select source from mail_valias where targets @> ?::jsonb order by source",
    [JSON.stringify([address])],
  );
  return rows.map((r) => r.source);
}

export interface AliasRef {
  id: number;
  source: string;
  targets: string[];
  active: boolean;
}

/** The aliases whose targets include `address`, in order (GIN index on targets). */
export async function aliasesPointingAt(em: SqlEntityManager, address: string): Promise<AliasRef[]> {
  return em.execute<AliasRef[]>(
    "select id, source, targets, active from mail_valias where targets @> ?::jsonb order by source",
    [JSON.stringify([address])],
  );
}

/** How many rows of `table` the domain has (only asked when a limit is set). */
export async function countIn(
  em: SqlEntityManager,
  table: "mail_vboxes" | "mail_valias",
  domainId: number,
  activeOnly = false,
): Promise<number> {
  const rows = await em.execute<Array<{ n: number }>>(
    `select count(*)::int as n from ${table} where domain_id = ?${activeOnly ? " and active" : ""}`,
    [domainId],
  );
  return rows[0]?.n ?? 0;
}
