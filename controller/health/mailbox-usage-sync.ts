// Mailbox usage from the agent into mail_vboxes.usage (what `shvmail` shows): the health report's
// top mailboxes on every report, the whole list from GetMailboxUsage now and then (asked by
// controller/fleet/mailbox-usage-fetch.ts). One UPDATE per
// batch of 1,000 mailboxes, scoped to the vnode's domains.
import type { SqlEntityManager } from "@mikro-orm/sql";

export interface UsageRow {
  address: string;
  usedBytes: number;
}

const BATCH = 1000;

export async function storeMailboxUsage(
  em: SqlEntityManager,
  vnodeId: number,
  rows: readonly UsageRow[],
): Promise<number> {
  let updated = 0;
  for (let i = 0; i < rows.length; i += BATCH) {
    const batch = rows.slice(i, i + BATCH);
    const values = batch.map(() => "(?::text, ?::bigint)").join(", ");
    const params = batch.flatMap((r) => [r.address, r.usedBytes]);
    const result = await em.getConnection().execute(
      `update mail_vboxes b set usage = v.usage, updated_at = b.updated_at
         from (values ${values}) as v(address, usage), mail_vhosts d
        where b.address = v.address and d.id = b.domain_id and d.vnode_id = ? and b.usage is distinct from v.usage`,
      [...params, vnodeId],
      "run",
    );
    updated += (result as { affectedRows?: number }).affectedRows ?? 0;
  }
  return updated;
}
