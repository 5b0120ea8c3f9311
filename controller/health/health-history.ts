// Bounded health history: at most one sample per vnode every `everyMs` (default a minute), and
// samples older than `keepMs` (default a day) are dropped as new ones arrive, so the table stays
// at ~1,440 rows per vnode whatever the report interval.
import type { RequiredEntityData } from "@mikro-orm/core";
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
  em.create(MailHealthSample, sampleOf(vnodeId, report, now));
  await em.flush();
  await em.nativeDelete(MailHealthSample, { vnodeId, at: { $lt: new Date(now - policy.keepMs) } });
  return true;
}

function sampleOf(vnodeId: number, report: HealthReport, now: number): RequiredEntityData<MailHealthSample> {
  const m = report.mail;
  return {
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
  };
}

/**
 * The fleet's samples in one go (save-health.ts's flush): the vnodes whose last sample is at
 * least `everyMs` old get one, in one batched insert; the last sample times unknown so far are
 * read in one query; samples past `keepMs` are dropped in one statement. Returns what was done.
 */
export async function recordHealthSamples(
  em: SqlEntityManager,
  reports: ReadonlyArray<{ vnodeId: number; report: HealthReport }>,
  seen: Map<number, number>,
  policy: HistoryPolicy = DEFAULT_HISTORY,
  now = Date.now(),
): Promise<{ samples: number; statements: number }> {
  let statements = 0;
  const unknown = reports.filter((r) => !seen.has(r.vnodeId)).map((r) => r.vnodeId);
  if (unknown.length > 0) {
    const rows = (await em
      .getConnection()
      .execute(
        `select vnode_id, max(at) as at from mail_health_history where vnode_id in (${unknown.map(() => "?").join(", ")}) group by vnode_id`,
        unknown,
      )) as Array<{ vnode_id: number; at: Date | string }>;
    statements += 1;
    for (const id of unknown) seen.set(id, 0);
    for (const row of rows) seen.set(Number(row.vnode_id), new Date(row.at).getTime());
  }
  const due = reports.filter((r) => now - (seen.get(r.vnodeId) ?? 0) >= policy.everyMs);
  if (due.length === 0) return { samples: 0, statements };
  const fork = em.fork();
  for (const r of due) {
    fork.create(MailHealthSample, sampleOf(r.vnodeId, r.report, now));
    seen.set(r.vnodeId, now);
  }
  await fork.flush();
  await fork.nativeDelete(MailHealthSample, { at: { $lt: new Date(now - policy.keepMs) } });
  return { samples: due.length, statements: statements + 2 };
}
