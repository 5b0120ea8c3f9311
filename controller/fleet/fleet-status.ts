// What `status` shows per vnode. "connected" means the controller daemon heard from the agent
// within the last 15 s; anything older is down.
import type { SqlEntityManager } from "@mikro-orm/sql";

export const DOWN_AFTER_MS = 15_000;

export interface VnodeStatus {
  vnode: string;
  address: string;
  status: string;
  connected: boolean;
  lastHealthAt: string | null;
  agentVersion: string | null;
  generation: number;
  appliedGeneration: number;
  certificateNotAfter: string | null;
  /** The agent refused this generation (its checker's words below); null = nothing refused. */
  refusedGeneration: number | null;
  refused: string | null;
  refusedCount: number;
  /** When the reconciler sends the refused state again. */
  retryAt: string | null;
  /** "unmanaged" when the agent keeps its hands off (managementReason says why), else "managed". */
  management: "managed" | "unmanaged";
  managementReason: string | null;
  /** Several controllers on PostgreSQL: the controller holding the vnode's lease (its name in
   *  controller.json), null when the lease is free or expired (one controller, PGlite: null). */
  holder: string | null;
  /** The lease's epoch, the fence token the holder stamps on every command (0: never leased). */
  leaseEpoch: number;
}

interface StatusSqlRow {
  name: string;
  address: string;
  status: string;
  last_seen_at: Date | string | null;
  last_health_at: Date | string | null;
  agent_version: string | null;
  generation: number | string;
  applied_generation: number | string;
  refused_generation: number | string | null;
  refused_reason: string | null;
  refused_count: number;
  retry_at: Date | string | null;
  management: string | null;
  management_reason: string | null;
  certificate_not_after: Date | string | null;
  holder: string | null;
  lease_epoch: number | string | null;
}

const toDate = (value: Date | string | null): Date | null => (value === null ? null : new Date(value));

/** The whole fleet in one query (a thousand vnodes: one round trip, no per-vnode reads); each
 *  vnode's certificate expiry is its newest unrevoked agent certificate's. */
export async function fleetStatus(em: SqlEntityManager, now = Date.now()): Promise<VnodeStatus[]> {
  const rows = await em.getConnection().execute<StatusSqlRow[]>(
    `select v.name, v.address, v.status, v.last_seen_at, v.last_health_at, v.agent_version, v.generation,
            v.applied_generation, v.refused_generation, v.refused_reason, v.refused_count, v.retry_at,
            v.management, v.management_reason,
            case when l.expires_at > now() then c.name end as holder, l.epoch as lease_epoch,
            (select max(c.not_after) from certificates c
              where c.vnode_id = v.id and c.role = 'agent' and c.revoked_at is null) as certificate_not_after
       from vnodes v left join vnode_leases l on l.vnode_id = v.id left join controllers c on c.id = l.holder
      order by v.name asc`,
  );
  return rows.map((v) => {
    const lastSeenAt = toDate(v.last_seen_at);
    const refused = v.refused_generation === null ? null : Number(v.refused_generation);
    return {
      vnode: v.name,
      address: v.address,
      status: v.status,
      connected: v.status === "enrolled" && !!lastSeenAt && now - lastSeenAt.getTime() < DOWN_AFTER_MS,
      lastHealthAt: toDate(v.last_health_at)?.toISOString() ?? null,
      agentVersion: v.agent_version ?? null,
      generation: Number(v.generation),
      appliedGeneration: Number(v.applied_generation),
      certificateNotAfter: toDate(v.certificate_not_after)?.toISOString() ?? null,
      refusedGeneration: refused,
      refused: v.refused_reason ?? null,
      refusedCount: Number(v.refused_count),
      retryAt: toDate(v.retry_at)?.toISOString() ?? null,
      management: v.management === "unmanaged" ? "unmanaged" : "managed",
      managementReason: v.management === "unmanaged" ? (v.management_reason ?? null) : null,
      holder: v.holder ?? null,
      leaseEpoch: Number(v.lease_epoch ?? 0),
    };
  });
}
