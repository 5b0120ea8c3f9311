// A health report into the database: vnodes (last health, generation, fs capacity), one
// mail_services row per daemon (state, version, and what that daemon reported in `config`), an
// "agent" row with the rest (generation, drift, disk, quota, TLS), the top mailboxes' usage, and
// a bounded history sample.
import type { SqlEntityManager } from "@mikro-orm/sql";
import type { HealthReport } from "../../common/gen/netserva/mail/v1/agent_pb.ts";
import { VMailService, Vnode } from "../db/entities/index.ts";
import { agentJson, mailHealthJson } from "./health-json.ts";
import { recordHealthSample, type HistoryPolicy } from "./health-history.ts";
import { storeMailboxUsage } from "./mailbox-usage-sync.ts";

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

export interface HealthWriter {
  save(em: SqlEntityManager, vnodeId: number, report: HealthReport): Promise<void>;
}

export function createHealthWriter(history?: HistoryPolicy): HealthWriter {
  const seen = new Map<number, number>();
  return { save: (em, vnodeId, report) => saveHealthReport(em, vnodeId, report, seen, history) };
}

async function saveHealthReport(
  em: SqlEntityManager,
  vnodeId: number,
  report: HealthReport,
  seen: Map<number, number>,
  history?: HistoryPolicy,
): Promise<void> {
  const now = new Date();
  const mail = mailHealthJson(report.mail);
  await em.nativeUpdate(
    Vnode,
    { id: vnodeId },
    {
      lastHealthAt: new Date(Number(report.timeUnixMs)),
      lastSeenAt: now,
      agentVersion: report.agentVersion,
      appliedGeneration: Number(report.appliedGeneration),
      // Older agents send no management: they manage.
      management: report.management === "" ? null : report.management,
      managementReason: report.managementReason === "" ? null : report.managementReason,
      ...(mail?.filesystem ? { fsCapacityBytes: mail.filesystem.sizeBytes } : {}),
    },
  );
  for (const service of report.services) {
    await em.upsert(
      VMailService,
      {
        vnodeId,
        service: service.name,
        state: service.state,
        version: service.version,
        detail: service.detail,
        config: daemonConfig(service.name, mail),
        updatedAt: now,
      },
      { onConflictFields: ["vnodeId", "service"] },
    );
  }
  const errors = mail?.errors ?? [];
  await em.upsert(
    VMailService,
    {
      vnodeId,
      service: "agent",
      state: "active",
      version: report.agentVersion,
      detail: errors.length > 0 ? errors.join("; ") : "",
      config: agentJson(report),
      updatedAt: now,
    },
    { onConflictFields: ["vnodeId", "service"] },
  );
  if (mail && mail.quota.top.length > 0) await storeMailboxUsage(em, vnodeId, mail.quota.top);
  await recordHealthSample(em, vnodeId, report, seen, history);
}
