// Mailbox usage from the agent into mail_vboxes.usage (what `shvmail` shows): the health report's
// top mailboxes on every report, the whole list from GetMailboxUsage now and then. One UPDATE per
// batch of 1,000 mailboxes, scoped to the vnode's domains.
import type { SqlEntityManager } from "@mikro-orm/sql";
import { create } from "@bufbuild/protobuf";
import { GetMailboxUsageRequestSchema } from "../../common/gen/netserva/mail/v1/agent_pb.ts";
import type { AgentClient } from "../fleet/agent-client.ts";

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

/** Asks the agent for every mailbox's usage and stores it. */
export async function syncMailboxUsage(
  em: SqlEntityManager,
  client: AgentClient,
  vnodeId: number,
): Promise<{ mailboxes: number; updated: number }> {
  const response = await client.call("getMailboxUsage", create(GetMailboxUsageRequestSchema, {}), {
    timeoutMs: 60_000,
  });
  const rows = response.mailboxes.map((m) => ({ address: m.address, usedBytes: Number(m.usedBytes) }));
  return { mailboxes: rows.length, updated: await storeMailboxUsage(em, vnodeId, rows) };
}
