// Health reports into the database at a bounded rate, whatever the fleet size and report interval.
// A report is only noted in memory (O(1): the vnode's latest report and a fingerprint of what
// it says); a flush, once a second, writes in a few multi-row statements:
// - vnodes (last health, generation, agent version, fs capacity) for the vnodes whose report
//   changed, and for the others their liveness once every `livenessEveryMs` (status counts a
//   vnode down 15 s after it was last seen: 5 s keeps a margin);
// - one mail_services row per daemon (state, version, what that daemon reported in `config`) and
//   an "agent" row with the rest (generation, drift, disk, quota, TLS), only for vnodes whose
//   report changed (timestamps and uptime aside);
// - the top mailboxes' usage when it changed, and a history sample per vnode at the history
//   interval (health-history.ts).
// A thousand vnodes reporting every 5 s are 200 reports a second and, steady, one statement a
// second; see scripts/bench-fleet.
import type { SqlEntityManager } from "@mikro-orm/sql";
import type { HealthReport, ServiceHealth } from "../../common/gen/netserva/mail/v1/agent_pb.ts";
import { agentJson, mailHealthJson } from "./health-json.ts";
import { DEFAULT_HISTORY, recordHealthSamples, type HistoryPolicy } from "./health-history.ts";
import { storeMailboxUsage } from "./mailbox-usage-sync.ts";

/** Liveness of a vnode whose report says nothing new is written this often. */
export const LIVENESS_EVERY_MS = 5000;
/** Rows per multi-row statement. */
const BATCH = 500;

function daemonConfig(name: string, mail: ReturnType<typeof mailHealthJson>): Record<string, unknown> | null {
  if (!mail) return null;
  switch (name) {
    case "postfix":
      return { queue: mail.queue };
    case "dovecot":
      return { users: mail.dovecot.users, connections: mail.dovecot.connections };
    case "rspamd":
      return { ...mail.rspamd };
    case "clamd":
      return { signaturesAt: mail.clamavSignaturesAt };
    default:
      return null;
  }
}

/** A daemon's row `config`: its part of the mail health and, once it died and came back, its restarts. */
function serviceConfig(s: ServiceHealth, mail: ReturnType<typeof mailHealthJson>): Record<string, unknown> | null {
  const own = daemonConfig(s.name, mail);
  if (s.restarts === 0) return own;
  return {
    ...own,
    restarts: {
      count: s.restarts,
      lastAt: new Date(Number(s.lastRestartUnixMs)).toISOString(),
      lastReason: s.lastRestartReason,
    },
  };
}

/** What a report says, without the parts that change every time (timestamps, uptime). */
function fingerprint(report: HealthReport, mail: ReturnType<typeof mailHealthJson>): string {
  return JSON.stringify([
    report.agentVersion,
    report.appliedGeneration.toString(),
    report.drift,
    report.stateDigest,
    report.certificateNotAfterUnixMs.toString(),
    report.management,
    report.managementReason,
    report.services.map((s) => [s.name, s.state, s.version, s.detail, s.restarts, s.lastRestartUnixMs.toString()]),
    mail ? { ...mail, collectedAt: null } : null,
  ]);
}

interface Noted {
  report: HealthReport;
  mail: ReturnType<typeof mailHealthJson>;
  key: string;
  seenAt: number;
  /** What the database holds for this vnode (undefined: nothing written by us yet). */
  writtenKey: string | undefined;
  writtenTopKey: string | undefined;
  livenessAt: number;
}

export interface FlushCounts {
  /** vnodes rows updated (liveness and changes). */
  vnodes: number;
  /** mail_services rows upserted. */
  services: number;
  samples: number;
  statements: number;
}

export interface HealthWriter {
  /** A report arrived: kept in memory until the next flush. */
  note(vnodeId: number, report: HealthReport, now?: number): void;
  /** The vnode went down: nothing of it is written until it reports again. */
  forget(vnodeId: number): void;
  /** Writes what is due (never two at once: a flush called during one waits for it). */
  flush(em: SqlEntityManager, now?: number): Promise<FlushCounts>;
  /** note + flush: one report written now (tests, one-off callers). */
  save(em: SqlEntityManager, vnodeId: number, report: HealthReport): Promise<void>;
}

export function createHealthWriter(
  history: HistoryPolicy = DEFAULT_HISTORY,
  options: { livenessEveryMs?: number } = {},
): HealthWriter {
  const livenessEveryMs = options.livenessEveryMs ?? LIVENESS_EVERY_MS;
  const noted = new Map<number, Noted>();
  /** When each vnode's last history sample was taken (read from the database once per vnode). */
  const sampledAt = new Map<number, number>();
  let running: Promise<FlushCounts> | undefined;

  const note = (vnodeId: number, report: HealthReport, now = Date.now()): void => {
    const mail = mailHealthJson(report.mail);
    const previous = noted.get(vnodeId);
    noted.set(vnodeId, {
      report,
      mail,
      key: fingerprint(report, mail),
      seenAt: now,
      writtenKey: previous?.writtenKey,
      writtenTopKey: previous?.writtenTopKey,
      livenessAt: previous?.livenessAt ?? 0,
    });
  };

  const flushOnce = async (em: SqlEntityManager, now: number): Promise<FlushCounts> => {
    const counts: FlushCounts = { vnodes: 0, services: 0, samples: 0, statements: 0 };
    const connection = em.getConnection();
    const changed: Array<[number, Noted]> = [];
    const due: Array<[number, Noted]> = [];
    for (const [id, n] of noted) {
      if (n.key !== n.writtenKey) changed.push([id, n]);
      if (n.key !== n.writtenKey || (n.seenAt > n.livenessAt && now - n.livenessAt >= livenessEveryMs))
        due.push([id, n]);
    }
    for (let i = 0; i < due.length; i += BATCH) {
      const batch = due.slice(i, i + BATCH);
      const values = batch.map(
        () => "(?::int, ?::timestamptz, ?::timestamptz, ?::text, ?::bigint, ?::bigint, ?::boolean, ?::text, ?::text)",
      );
      // Liveness alone leaves the rest as it is: the deliver service may have recorded a newer
      // applied generation since this (unchanged) report arrived. A changed report never moves
      // the applied generation backwards either: reports overtake pushes (the push's answer is
      // recorded first, the report taken before it lands after) and two links of one vnode (a
      // new identity while the old link drains) interleave theirs.
      await connection.execute(
        `update vnodes v set last_health_at = x.health_at, last_seen_at = x.seen_at,
                agent_version = coalesce(x.version, v.agent_version),
                applied_generation = greatest(v.applied_generation, coalesce(x.applied, v.applied_generation)),
                fs_capacity_bytes = coalesce(x.fs, v.fs_capacity_bytes),
                management = case when x.news then x.management else v.management end,
                management_reason = case when x.news then x.management_reason else v.management_reason end
           from (values ${values.join(", ")}) as x(id, health_at, seen_at, version, applied, fs, news, management, management_reason)
          where v.id = x.id`,
        batch.flatMap(([id, n]) => {
          const news = n.key !== n.writtenKey;
          return [
            id,
            new Date(Number(n.report.timeUnixMs)),
            new Date(n.seenAt),
            news ? n.report.agentVersion : null,
            news ? Number(n.report.appliedGeneration) : null,
            news && n.mail?.filesystem ? n.mail.filesystem.sizeBytes : null,
            news,
            // Older agents send no management: they manage.
            n.report.management === "" ? null : n.report.management,
            n.report.managementReason === "" ? null : n.report.managementReason,
          ];
        }),
        "run",
      );
      counts.statements += 1;
      counts.vnodes += batch.length;
      for (const [, n] of batch) n.livenessAt = now;
    }
    const rows = changed.flatMap(([id, n]) => {
      const errors = n.mail?.errors ?? [];
      return [
        ...n.report.services.map((s) => [id, s.name, s.state, s.version, s.detail, serviceConfig(s, n.mail)] as const),
        [id, "agent", "active", n.report.agentVersion, errors.join("; "), agentJson(n.report)] as const,
      ];
    });
    for (let i = 0; i < rows.length; i += BATCH) {
      const batch = rows.slice(i, i + BATCH);
      await connection.execute(
        `insert into mail_services (vnode_id, service, state, version, detail, config, updated_at)
         values ${batch.map(() => "(?::int, ?::text, ?::text, ?::text, ?::text, ?::jsonb, ?::timestamptz)").join(", ")}
         on conflict (vnode_id, service) do update set state = excluded.state, version = excluded.version,
           detail = excluded.detail, config = excluded.config, updated_at = excluded.updated_at`,
        batch.flatMap(([id, name, state, version, detail, config]) => [
          id,
          name,
          state,
          version,
          detail,
          config === null ? null : JSON.stringify(config),
          new Date(now),
        ]),
        "run",
      );
      counts.statements += 1;
      counts.services += batch.length;
    }
    for (const [id, n] of changed) {
      n.writtenKey = n.key;
      const top = n.mail?.quota.top ?? [];
      const topKey = JSON.stringify(top);
      if (top.length > 0 && topKey !== n.writtenTopKey) {
        await storeMailboxUsage(em, id, top);
        counts.statements += 1;
      }
      n.writtenTopKey = topKey;
    }
    const sampled = await recordHealthSamples(
      em,
      // Only vnodes heard from since their last sample: a silent one's old report is no sample.
      [...noted]
        .filter(([id, n]) => n.seenAt > (sampledAt.get(id) ?? -1))
        .map(([id, n]) => ({ vnodeId: id, report: n.report })),
      sampledAt,
      history,
      now,
    );
    counts.samples += sampled.samples;
    counts.statements += sampled.statements;
    return counts;
  };

  const flush = async (em: SqlEntityManager, now = Date.now()): Promise<FlushCounts> => {
    while (running) await running.catch(() => undefined);
    running = flushOnce(em, now);
    try {
      return await running;
    } finally {
      running = undefined;
    }
  };

  return {
    note,
    forget: (vnodeId) => void noted.delete(vnodeId),
    flush,
    async save(em, vnodeId, report) {
      note(vnodeId, report);
      await flush(em);
    },
  };
}
