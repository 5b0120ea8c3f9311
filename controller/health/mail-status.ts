// What `mail:status` shows per vnode: the latest health the fleet stored (mail_services), flags
// for stale health and a lagging generation, and the problems an operator should look at first.
import type { SqlEntityManager } from "@mikro-orm/sql";
import { AcmeCertificate, MailHealthSample, VMailService, Vnode } from "../db/entities/index.ts";
import { fullProblem, isFull } from "./filesystem-full.ts";
import type { MailHealthJson } from "./health-json.ts";

export const STALE_AFTER_MS = 15_000;
/** A daemon that died and was restarted this recently is a problem to look at (as the alert's window). */
export const RECENT_RESTART_MS = 15 * 60_000;

export interface ServiceView {
  name: string;
  state: string;
  version: string | null;
  detail: string | null;
  /** Times it died and was started again (by systemd or the agent) since the agent started. */
  restarts: number;
  lastRestartAt: string | null;
  lastRestartReason: string | null;
}

interface StoredRestarts {
  count?: number;
  lastAt?: string;
  lastReason?: string;
}

export interface MailStatusView {
  vnode: string;
  status: string;
  health: "ok" | "problems" | "stale" | "never";
  lastHealthAt: string | null;
  healthAgeSeconds: number | null;
  stale: boolean;
  generation: number;
  appliedGeneration: number;
  generationLag: number;
  drift: boolean;
  /** A generation the agent refused, with its checker's words; null = none. */
  refused: { generation: number; reason: string; count: number; retryAt: string | null } | null;
  services: ServiceView[];
  mail: MailHealthJson | null;
  agentCertificateNotAfter: string | null;
  /** The ACME order for the vnode's mail certificate; null = none (the CA's or the operator's). */
  acme: { state: string; failures: number; lastError: string | null; nextAttemptAt: string } | null;
  problems: string[];
  history: Array<{
    at: string;
    queueDeferred: number | null;
    oldestDeferredSeconds: number | null;
    fsUsedBytes: number | null;
    dovecotUsers: number | null;
    servicesDown: number;
  }>;
}

const DAY = 86_400_000;

function problems(v: Omit<MailStatusView, "problems" | "health">, now: number): string[] {
  const out: string[] = [];
  if (v.status !== "enrolled") return [`vnode is ${v.status}`];
  if (v.lastHealthAt === null) return ["no health report yet"];
  if (v.stale) out.push(`health stale: last report ${v.healthAgeSeconds ?? "?"} s ago`);
  if (v.generationLag > 0) out.push(`generation lags: applied ${v.appliedGeneration} of ${v.generation}`);
  if (v.drift) out.push("drift: a managed file or the lookup DB was changed by hand");
  if (v.refused)
    out.push(
      `refused: generation ${v.refused.generation} (${v.refused.count}x${v.refused.retryAt ? `, next try ${v.refused.retryAt}` : ""}): ${v.refused.reason}`,
    );
  for (const s of v.services) {
    if (s.state !== "active" && s.state !== "reloading")
      out.push(`${s.name} ${s.state}${s.detail ? ` (${s.detail})` : ""}`);
    // Back already (systemd restarts in seconds), but it died: shown until the window passes.
    if (s.restarts > 0 && s.lastRestartAt && now - Date.parse(s.lastRestartAt) < RECENT_RESTART_MS)
      out.push(
        `${s.name} died and was restarted (${s.restarts}x since the agent started, last at ${s.lastRestartAt}: ${s.lastRestartReason ?? "?"})`,
      );
  }
  const m = v.mail;
  if (m) {
    if (m.queue && m.queue.deferred > 0)
      out.push(`${m.queue.deferred} deferred, oldest ${m.queue.oldestDeferredSeconds} s`);
    if (m.queue && m.queue.hold > 0) out.push(`${m.queue.hold} on hold`);
    // A full filesystem says where and what it stops; older agents report only the mail one.
    const full = (m.filesystems ?? []).filter(isFull);
    for (const f of full) out.push(fullProblem(f));
    const mailFull = full.some((f) => f.roles.includes("mail"));
    if (m.filesystem && m.filesystem.usedRatio >= 0.85 && !mailFull)
      out.push(`mail filesystem ${(m.filesystem.usedRatio * 100).toFixed(0)}% full (${m.filesystem.path})`);
    if (m.quota.over90 > 0) out.push(`${m.quota.over90} mailbox(es) over 90% of quota`);
    if (m.mailTlsNotAfter && Date.parse(m.mailTlsNotAfter) - now < 14 * DAY)
      out.push(`mail TLS certificate expires ${m.mailTlsNotAfter}`);
    for (const e of m.errors) out.push(`probe ${e}`);
    for (const l of m.web?.listeners ?? [])
      if (!l.listening) out.push(`web listener ${l.kind} ${l.address} not listening: ${l.error || "unknown"}`);
  }
  if (v.acme && v.acme.failures > 0)
    out.push(
      `ACME certificate: ${v.acme.failures} failed order(s) in a row, next try ${v.acme.nextAttemptAt}: ${v.acme.lastError ?? "?"}`,
    );
  if (v.agentCertificateNotAfter && Date.parse(v.agentCertificateNotAfter) - now < 7 * DAY)
    out.push(`agent certificate expires ${v.agentCertificateNotAfter}`);
  return out;
}

export async function mailStatus(
  em: SqlEntityManager,
  options: { vnode?: string; historySamples?: number; now?: number } = {},
): Promise<MailStatusView[]> {
  const now = options.now ?? Date.now();
  const vnodes = await em.find(Vnode, options.vnode ? { name: options.vnode } : {}, { orderBy: { name: "asc" } });
  const services = await em.find(
    VMailService,
    { vnodeId: { $in: vnodes.map((v) => v.id) } },
    { orderBy: { service: "asc" } },
  );
  const acmeRows = new Map(
    (await em.find(AcmeCertificate, { vnodeId: { $in: vnodes.map((v) => v.id) }, purpose: "mail-host" })).map((a) => [
      a.vnodeId,
      a,
    ]),
  );
  const views: MailStatusView[] = [];
  for (const v of vnodes) {
    const acme = acmeRows.get(v.id);
    const own = services.filter((s) => s.vnodeId === v.id);
    const agentRow = own.find((s) => s.service === "agent");
    const agent = (agentRow?.config ?? {}) as {
      drift?: boolean;
      mail?: MailHealthJson | null;
      certificateNotAfter?: string | null;
    };
    const order = ["postfix", "dovecot", "rspamd", "clamd"];
    const daemons = own
      .filter((s) => s.service !== "agent")
      .sort((a, b) => ((order.indexOf(a.service) + 99) % 99) - ((order.indexOf(b.service) + 99) % 99));
    const age = v.lastHealthAt ? now - v.lastHealthAt.getTime() : null;
    const samples = options.historySamples
      ? await em.find(MailHealthSample, { vnodeId: v.id }, { orderBy: { at: "desc" }, limit: options.historySamples })
      : [];
    const base = {
      vnode: v.name,
      status: v.status,
      lastHealthAt: v.lastHealthAt ? v.lastHealthAt.toISOString() : null,
      healthAgeSeconds: age === null ? null : Math.round(age / 1000),
      stale: age === null || age > STALE_AFTER_MS,
      generation: v.generation,
      appliedGeneration: v.appliedGeneration,
      generationLag: Math.max(0, v.generation - v.appliedGeneration),
      drift: agent.drift ?? false,
      refused:
        v.refusedGeneration === null || v.refusedGeneration === undefined
          ? null
          : {
              generation: v.refusedGeneration,
              reason: v.refusedReason ?? "",
              count: v.refusedCount,
              retryAt: v.retryAt ? v.retryAt.toISOString() : null,
            },
      services: daemons.map((s) => {
        const restarts = ((s.config ?? {}) as { restarts?: StoredRestarts }).restarts;
        return {
          name: s.service,
          state: s.state,
          version: s.version ?? null,
          detail: s.detail ?? null,
          restarts: restarts?.count ?? 0,
          lastRestartAt: restarts?.lastAt ?? null,
          lastRestartReason: restarts?.lastReason ?? null,
        };
      }),
      mail: agent.mail ?? null,
      agentCertificateNotAfter: agent.certificateNotAfter ?? null,
      acme: acme
        ? {
            state: acme.state,
            failures: acme.failures,
            lastError: acme.lastError ?? null,
            nextAttemptAt: acme.nextAttemptAt.toISOString(),
          }
        : null,
      history: samples.reverse().map((h) => ({
        at: h.at.toISOString(),
        queueDeferred: h.queueDeferred ?? null,
        oldestDeferredSeconds:
          h.oldestDeferredSeconds === null || h.oldestDeferredSeconds === undefined
            ? null
            : Number(h.oldestDeferredSeconds),
        fsUsedBytes: h.fsUsedBytes ?? null,
        dovecotUsers: h.dovecotUsers ?? null,
        servicesDown: h.servicesDown,
      })),
    };
    const found = problems(base, now);
    const health = base.lastHealthAt === null ? "never" : base.stale ? "stale" : found.length > 0 ? "problems" : "ok";
    views.push({ ...base, health, problems: found });
  }
  return views;
}
