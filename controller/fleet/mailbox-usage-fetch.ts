// The whole mailbox usage list of a vnode, asked of its agent (GetMailboxUsage) and stored by
// controller/health (the fleet talks to agents; health keeps what they report).
import type { SqlEntityManager } from "@mikro-orm/sql";
import { create } from "@bufbuild/protobuf";
import { GetMailboxUsageRequestSchema } from "../../common/gen/netserva/mail/v1/agent_pb.ts";
import { storeMailboxUsage } from "../health/mailbox-usage-sync.ts";
import type { AgentClient } from "./agent-client.ts";

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
