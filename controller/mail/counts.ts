// Mailbox and alias counts per domain for listings, in one grouped query each.
import type { SqlEntityManager } from "@mikro-orm/sql";

export interface DomainCounts {
  mailboxes: number;
  aliases: number;
}

export async function domainCounts(em: SqlEntityManager, domainIds: number[]): Promise<Map<number, DomainCounts>> {
  const counts = new Map<number, DomainCounts>(domainIds.map((id) => [id, { mailboxes: 0, aliases: 0 }]));
  if (domainIds.length === 0) return counts;
  for (const [table, key] of [
    ["mail_vboxes", "mailboxes"],
    ["mail_valias", "aliases"],
  ] as const) {
    const rows = await em.execute<Array<{ domain_id: number; n: number }>>(
      `select domain_id, count(*)::int as n from ${table} where domain_id in (?) group by domain_id`,
      [domainIds],
    );
    for (const row of rows) {
      const c = counts.get(row.domain_id);
      if (c) c[key] = row.n;
    }
  }
  return counts;
}
