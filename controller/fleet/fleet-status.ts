// What `status` shows per vnode. "connected" means the controller daemon heard from the agent
// within the last 15 s; anything older is down.
import type { SqlEntityManager } from "@mikro-orm/sql";
import { Certificate, Vnode } from "../db/entities/index.ts";

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
}

export async function fleetStatus(em: SqlEntityManager, now = Date.now()): Promise<VnodeStatus[]> {
  const vnodes = await em.find(Vnode, {}, { orderBy: { name: "asc" } });
  const certificates = await em.find(
    Certificate,
    { role: "agent", revokedAt: null },
    { orderBy: { notAfter: "desc" } },
  );
  const expiry = new Map<number, Date>();
  for (const c of certificates)
    if (c.vnodeId !== null && c.vnodeId !== undefined && !expiry.has(c.vnodeId)) expiry.set(c.vnodeId, c.notAfter);
  return vnodes.map((v) => ({
    vnode: v.name,
    address: v.address,
    status: v.status,
    connected: v.status === "enrolled" && !!v.lastSeenAt && now - v.lastSeenAt.getTime() < DOWN_AFTER_MS,
    lastHealthAt: v.lastHealthAt ? v.lastHealthAt.toISOString() : null,
    agentVersion: v.agentVersion ?? null,
    generation: v.generation,
    appliedGeneration: v.appliedGeneration,
    certificateNotAfter: expiry.get(v.id)?.toISOString() ?? null,
    refusedGeneration: v.refusedGeneration ?? null,
    refused: v.refusedReason ?? null,
    refusedCount: v.refusedCount,
    retryAt: v.retryAt ? v.retryAt.toISOString() : null,
    management: v.management === "unmanaged" ? "unmanaged" : "managed",
    managementReason: v.management === "unmanaged" ? (v.managementReason ?? null) : null,
  }));
}
