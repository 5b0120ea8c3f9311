// Bounded health history: at most one sample per vnode every `everyMs` (default a minute), and
// samples older than `keepMs` (default a day) are dropped as new ones arrive, so the table stays
// at ~1,440 rows per vnode whatever the report interval.
import type { SqlEntityManager } from "@mikro-orm/sql";
import type { HealthReport } from "../../common/gen/netserva/mail/v1/agent_pb.ts";
import { MailHealthSample } from "../db/entities/index.ts";

export interface HistoryPolicy {
  everyMs: number;
  keepMs: number;
}

export const DEFAULT_HISTORY: HistoryPolicy = { everyMs: 60_000, keepMs: 24 * 3600_000 };

/** `seen` remembers each vnode's last sample time (owned by the fleet, so the DB is asked once). */
export async function recordHealthSample(
  em: SqlEntityManager,
  vnodeId: number,
  report: HealthReport,
  seen: Map<number, number>,
  policy: HistoryPolicy = DEFAULT_HISTORY,
  now = Date.now(),
): Promise<boolean> {
  const last =
    seen.get(vnodeId) ??
    (await em.findOne(MailHealthSample, { vnodeId }, { orderBy: { at: "desc" }, fields: ["at"] }))?.at.getTime() ??
    0;
  if (now - last < policy.everyMs) {
    seen.set(vnodeId, last);
    return false;
  }
  seen.set(vnodeId, now);
  const m = report.mail;
  em.create(MailHealthSample, {
    vnodeId,
    at: new Date(now),
    appliedGeneration: Number(report.appliedGeneration),
    drift: report.drift,
    servicesDown: report.services.filter((s) => s.state !== "active" && s.state !== "reloading").length,
    queueActive: m?.queue?.active ?? null,
    queueDeferred: m?.queue?.deferred ?? null,
    queueHold: m?.queue?.hold ?? null,
    queueIncoming: m?.queue?.incoming ?? null,
    oldestDeferredSeconds: m?.queue?.oldestDeferredSeconds ?? null,
    dovecotUsers: m && m.dovecotUsers >= 0 ? m.dovecotUsers : null,
    rspamdScanned: m?.rspamd?.available ? Number(m.rspamd.scanned) : null,
    fsUsedBytes: m?.filesystem ? Number(m.filesystem.usedBytes) : null,
    fsSizeBytes: m?.filesystem ? Number(m.filesystem.sizeBytes) : null,
    quotaOver90: m?.quota ? m.quota.over90 : null,
  });
  await em.flush();
  await em.nativeDelete(MailHealthSample, { vnodeId, at: { $lt: new Date(now - policy.keepMs) } });
  return true;
}
