// The mail health report as plain JSON (numbers, ISO times) for mail_services.config, the CLI and
// scripts. Field names here are the documented `mail:status --json` names.
import type { HealthReport, MailHealth } from "../../common/gen/netserva/mail/v1/agent_pb.ts";

const iso = (ms: bigint): string | null => (ms > 0n ? new Date(Number(ms)).toISOString() : null);

export interface QueueJson {
  active: number;
  deferred: number;
  hold: number;
  incoming: number;
  maildrop: number;
  oldestDeferredSeconds: number;
}
export interface RspamdJson {
  available: boolean;
  scanned: number;
  ham: number;
  spam: number;
  rejected: number;
  greylisted: number;
  addHeader: number;
}
export interface FsJson {
  path: string;
  sizeBytes: number;
  usedBytes: number;
  availableBytes: number;
  usedRatio: number;
}
/** One filesystem the vnode's mail depends on, with what it holds (mail, queue, config, state). */
export interface FsRoleJson extends FsJson {
  roles: string[];
  rolePaths: string[];
  inodes: number;
  freeInodes: number;
}
export interface QuotaJson {
  mailboxes: number;
  over80: number;
  over90: number;
  over100: number;
  usedBytes: number;
  top: Array<{ address: string; usedBytes: number; limitBytes: number; ratio: number | null; messages: number }>;
  domains: Array<{ domain: string; mailboxes: number; usedBytes: number; maxRatio: number }>;
}

export interface MailHealthJson {
  collectedAt: string | null;
  queue: QueueJson | null;
  dovecot: { users: number | null; connections: number | null };
  rspamd: RspamdJson;
  clamavSignaturesAt: string | null;
  filesystem: FsJson | null;
  filesystems: FsRoleJson[];
  quota: QuotaJson;
  mailTlsNotAfter: string | null;
  errors: string[];
  /** The agent's web listeners; null from agents that do not report them. */
  web: {
    listeners: Array<{ kind: string; address: string; listening: boolean; error: string }>;
    requests: Array<{ kind: string; result: string; count: number }>;
    tlsHandshakeFailures: number;
  } | null;
}

export function mailHealthJson(m: MailHealth | undefined): MailHealthJson | null {
  if (!m) return null;
  const r = m.rspamd;
  const q = m.quota;
  const fs = m.filesystem;
  return {
    collectedAt: iso(m.collectedUnixMs),
    queue: m.queue
      ? {
          active: m.queue.active,
          deferred: m.queue.deferred,
          hold: m.queue.hold,
          incoming: m.queue.incoming,
          maildrop: m.queue.maildrop,
          oldestDeferredSeconds: Math.round(m.queue.oldestDeferredSeconds),
        }
      : null,
    dovecot: {
      users: m.dovecotUsers >= 0 ? m.dovecotUsers : null,
      connections: m.dovecotConnections >= 0 ? m.dovecotConnections : null,
    },
    rspamd: {
      available: r?.available ?? false,
      scanned: Number(r?.scanned ?? 0n),
      ham: Number(r?.ham ?? 0n),
      spam: Number(r?.spam ?? 0n),
      rejected: Number(r?.rejected ?? 0n),
      greylisted: Number(r?.greylisted ?? 0n),
      addHeader: Number(r?.addHeader ?? 0n),
    },
    clamavSignaturesAt: iso(m.clamavSignaturesUnixMs),
    filesystem: fs
      ? {
          path: fs.path,
          sizeBytes: Number(fs.sizeBytes),
          usedBytes: Number(fs.usedBytes),
          availableBytes: Number(fs.availableBytes),
          usedRatio: fs.sizeBytes > 0n ? Number(fs.usedBytes) / Number(fs.sizeBytes) : 0,
        }
      : null,
    filesystems: m.filesystems.map((f) => ({
      path: f.path,
      sizeBytes: Number(f.sizeBytes),
      usedBytes: Number(f.usedBytes),
      availableBytes: Number(f.availableBytes),
      usedRatio: f.sizeBytes > 0n ? Number(f.usedBytes) / Number(f.sizeBytes) : 0,
      roles: [...f.roles],
      rolePaths: [...f.rolePaths],
      inodes: Number(f.inodes),
      freeInodes: Number(f.freeInodes),
    })),
    quota: {
      mailboxes: q?.mailboxes ?? 0,
      over80: q?.over80 ?? 0,
      over90: q?.over90 ?? 0,
      over100: q?.over100 ?? 0,
      usedBytes: Number(q?.usedBytes ?? 0n),
      top: (q?.top ?? []).map((t) => ({
        address: t.address,
        usedBytes: Number(t.usedBytes),
        limitBytes: Number(t.limitBytes),
        ratio: t.limitBytes > 0n ? Number(t.usedBytes) / Number(t.limitBytes) : null,
        messages: Number(t.messages),
      })),
      domains: (q?.domains ?? []).map((d) => ({
        domain: d.domain,
        mailboxes: d.mailboxes,
        usedBytes: Number(d.usedBytes),
        maxRatio: d.maxRatio,
      })),
    },
    mailTlsNotAfter: iso(m.mailTlsNotAfterUnixMs),
    errors: [...m.errors],
    web: m.web
      ? {
          listeners: m.web.listeners.map((l) => ({
            kind: l.kind,
            address: l.address,
            listening: l.listening,
            error: l.error,
          })),
          requests: m.web.requests.map((r) => ({ kind: r.kind, result: r.result, count: Number(r.count) })),
          tlsHandshakeFailures: Number(m.web.tlsHandshakeFailures),
        }
      : null,
  };
}

/** What the "agent" row of mail_services keeps beyond the mail part. */
export function agentJson(report: HealthReport): Record<string, unknown> {
  return {
    reportedAt: iso(report.timeUnixMs),
    appliedGeneration: Number(report.appliedGeneration),
    drift: report.drift,
    stateDigest: report.stateDigest,
    uptimeSeconds: Math.round(report.uptimeSeconds),
    certificateNotAfter: iso(report.certificateNotAfterUnixMs),
    mail: mailHealthJson(report.mail),
  };
}
