// Listing mailboxes of a vnode or of one domain, each with the aliases that point at it (one
// pass over the aliases, not one query per mailbox).
import type { SqlEntityManager } from "@mikro-orm/sql";
import { VMailDomain, VMailbox } from "../db/entities/index.ts";
import type { MailboxView } from "./mail-api.ts";
import { detached, domainOnVnode, parseDomainFilter, readVnode } from "./mail-lookups.ts";
import { mailboxView } from "./mail-views.ts";

async function pointers(em: SqlEntityManager, domains: string[]): Promise<Map<string, string[]>> {
  const rows = await em.execute<Array<{ source: string; target: string }>>(
    `select a.source, t.target from mail_valias a cross join lateral jsonb_array_elements_text(a.targets) as t(target)
      where split_part(t.target, '@', 2) in (?) order by a.source`,
    [domains],
  );
  const map = new Map<string, string[]>();
  for (const row of rows) map.set(row.target, [...(map.get(row.target) ?? []), row.source]);
  return map;
}

export async function listMailboxes(
  em: SqlEntityManager,
  vnodeInput: string,
  domainInput?: string,
): Promise<MailboxView[]> {
  const vnode = await readVnode(em, vnodeInput);
  const domains =
    domainInput === undefined
      ? await em.find(VMailDomain, { vnodeId: vnode.id }, detached)
      : [await domainOnVnode(em, vnode, parseDomainFilter(domainInput, "domain"))];
  if (domains.length === 0) return [];
  const boxes = await em.find(
    VMailbox,
    { domainId: { $in: domains.map((d) => d.id) } },
    { ...detached, orderBy: { ascii: "asc" } },
  );
  const aliasMap = await pointers(
    em,
    domains.map((d) => d.domain),
  );
  return boxes.map((m) => mailboxView(m, vnode.name, aliasMap.get(m.ascii) ?? []));
}
