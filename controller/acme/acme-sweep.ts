// The ACME sweep in `serve`: runs every due ACME order (renewal at 2/3 of the lifetime, a retry
// whose backoff ran out, a vnode whose mail host name changed), one at a time, each claimed so
// that of several controller processes on one database exactly one runs it. A new certificate
// goes out through the one deliver service; a failure is logged, counted and left for its retry.
// Before that it asks the ACME server again for the renewal window (ARI) of each certificate
// whose Retry-After has run out: a window that moved (the CA is about to revoke, say) moves the
// renewal into it, so a window already past makes the certificate due in the same pass.
// Each pass starts by following the hosted domains (acme-domains.ts): a new domain's order is
// due in the same pass, a removed domain's order and certificate are dropped.
// After each pass the sweep publishes every ACME certificate's state for the metrics.
import { NetservaError } from "../../common/errors.ts";
import type { Logger } from "../../common/log.ts";
import { audited } from "../audit/audit.ts";
import type { Database } from "../db/open-database.ts";
import type { DnsProvider } from "../dns/dns-provider.ts";
import { runAcmeOrder } from "./acme-mail-host.ts";
import { reconcileDomainOrders } from "./acme-domains.ts";
import { fetchRenewalInfo, renewalInWindow } from "./acme-renewal-info.ts";
import type { RetryPolicy } from "./acme-schedule.ts";

export interface AcmeCertificateState {
  vnode: string;
  purpose: string;
  state: string;
  failures: number;
  notAfter: Date | null;
  nextAttemptAt: Date;
}

export interface AcmeSweepOptions {
  db: Database;
  deliver: { deliver(request: { vnode: string; actor: string }): Promise<{ pushed: boolean; reason?: string }> };
  /** Built when needed: the DNS provider from controller.json (a config change needs no restart). */
  dns: () => DnsProvider | undefined;
  retry: RetryPolicy;
  log: Logger;
  /** Default hourly; 0 = only when asked. */
  intervalMs?: number;
  onOrder?(result: "ok" | "failed"): void;
  onStates?(states: AcmeCertificateState[]): void;
  /** Several controllers: only the vnodes whose lease we hold (their holder orders and pushes). */
  owns?: (vnode: string) => boolean;
}

export interface AcmeSweep {
  /** One pass now; resolves with the number of certificates issued. */
  sweep(): Promise<number>;
  stop(): void;
}

interface DueRow {
  id: number;
  vnode: string;
}

export function startAcmeSweep(options: AcmeSweepOptions): AcmeSweep {
  let running: Promise<number> | undefined;

  const due = async (): Promise<DueRow[]> => {
    const connection = options.db.em().fork().getConnection();
    // A mail host name that changed makes its certificate due now (unless it is backing off).
    await connection.execute(
      `update acme_certificates a set next_attempt_at = now() from vnodes v
       where v.id = a.vnode_id and a.purpose = 'mail-host' and a.failures = 0 and a.next_attempt_at > now()
         and a.names ->> 0 is distinct from coalesce(v.mail_hostname, v.name)`,
    );
    const rows = await connection.execute<DueRow[]>(
      `select a.id, v.name as vnode from acme_certificates a join vnodes v on v.id = a.vnode_id
       where a.next_attempt_at <= now() and (a.claimed_until is null or a.claimed_until < now())
       order by a.next_attempt_at`,
    );
    return options.owns ? rows.filter((row) => options.owns?.(row.vnode) === true) : rows;
  };

  const recheckRenewalInfo = async (): Promise<void> => {
    const connection = options.db.em().fork().getConnection();
    const rows = await connection.execute<
      Array<{
        id: number;
        vnode: string;
        server_url: string;
        server_ca_pem: string | null;
        certificate_id: string;
        start: string | Date | null;
        end: string | Date | null;
      }>
    >(
      `select a.id, v.name as vnode, a.server_url, a.server_ca_pem, a.certificate_id,
              a.renewal_window_start as start, a.renewal_window_end as end
       from acme_certificates a join vnodes v on v.id = a.vnode_id
       where a.state = 'valid' and a.certificate_id is not null and a.renewal_info_check_at <= now()
         and (a.claimed_until is null or a.claimed_until < now())`,
    );
    for (const row of rows) {
      if (options.owns && !options.owns(row.vnode)) continue;
      const info = await fetchRenewalInfo(
        { serverUrl: row.server_url, serverCaPem: row.server_ca_pem },
        row.certificate_id,
      ).catch((error: unknown) => {
        options.log.warn("ACME renewal information unavailable; asked again in an hour", {
          vnode: row.vnode,
          error: NetservaError.from(error).message,
        });
        return null;
      });
      if (info === null) {
        await connection.execute(
          "update acme_certificates set renewal_info_check_at = now() + interval '1 hour' where id = ? and certificate_id = ?",
          [row.id, row.certificate_id],
        );
        continue;
      }
      const same =
        info !== undefined &&
        row.start !== null &&
        row.end !== null &&
        new Date(row.start).getTime() === info.start.getTime() &&
        new Date(row.end).getTime() === info.end.getTime();
      if (info === undefined) {
        // The server stopped offering ARI: the 2/3 schedule already in next_attempt_at stands.
        await connection.execute(
          "update acme_certificates set renewal_info_check_at = null where id = ? and certificate_id = ?",
          [row.id, row.certificate_id],
        );
      } else if (same) {
        await connection.execute(
          "update acme_certificates set renewal_info_check_at = ? where id = ? and certificate_id = ?",
          [info.checkAgainAt, row.id, row.certificate_id],
        );
      } else {
        options.log.info("ACME renewal window moved; renewal rescheduled into it", {
          vnode: row.vnode,
          start: info.start.toISOString(),
          end: info.end.toISOString(),
          ...(info.explanationUrl ? { explanation: info.explanationUrl } : {}),
        });
        await connection.execute(
          `update acme_certificates set renewal_window_start = ?, renewal_window_end = ?, renewal_info_check_at = ?,
             next_attempt_at = ? where id = ? and certificate_id = ? and state = 'valid'`,
          [info.start, info.end, info.checkAgainAt, renewalInWindow(info), row.id, row.certificate_id],
        );
      }
    }
  };

  const publish = async (): Promise<void> => {
    if (!options.onStates) return;
    const rows = await options.db
      .em()
      .fork()
      .getConnection()
      .execute<
        Array<{
          vnode: string;
          purpose: string;
          state: string;
          failures: number;
          not_after: string | Date | null;
          next_attempt_at: string | Date;
        }>
      >(
        `select v.name as vnode, a.purpose, a.state, a.failures, a.not_after, a.next_attempt_at
         from acme_certificates a join vnodes v on v.id = a.vnode_id`,
      );
    options.onStates(
      rows.map((r) => ({
        vnode: r.vnode,
        purpose: r.purpose,
        state: r.state,
        failures: Number(r.failures),
        notAfter: r.not_after === null ? null : new Date(r.not_after),
        nextAttemptAt: new Date(r.next_attempt_at),
      })),
    );
  };

  const runOne = async (row: DueRow): Promise<boolean> => {
    const log = options.log.child({ vnode: row.vnode });
    const em = options.db.em().fork();
    const result = await audited(
      em,
      { actor: "controller", command: "mail:tls acme-renew", vnodeName: row.vnode, args: { reason: "due" } },
      async () => {
        const r = await runAcmeOrder(em, row.id, {
          dns: options.dns(),
          retry: options.retry,
          onlyIfDue: true,
          log,
          push: (vnode) => options.deliver.deliver({ vnode, actor: "acme-http-01" }),
        });
        // A failure is recorded on the row and in the command log as failed.
        if (r.outcome === "failed") throw r.error;
        return r;
      },
    ).catch((error: unknown) => {
      const e = NetservaError.from(error);
      options.onOrder?.("failed");
      log.warn("ACME order failed; the served certificate is kept and the order retried later", {
        error: e.message,
      });
      return undefined;
    });
    if (result === undefined || result.outcome === "busy") return false;
    options.onOrder?.("ok");
    const outcome = await options.deliver.deliver({ vnode: row.vnode, actor: "acme-renewal" });
    if (outcome.pushed) log.info("ACME certificate issued and delivered", { generation: result.generation });
    else
      log.warn("ACME certificate issued; delivery pending", { generation: result.generation, reason: outcome.reason });
    return true;
  };

  /** Domains added or removed since the last pass: orders made or dropped (acme-domains.ts). */
  const followDomains = async (): Promise<void> => {
    const changes = await reconcileDomainOrders(options.db.em().fork(), options.owns);
    for (const a of changes.added)
      options.log.info("ACME certificate ordered for a hosted domain", { vnode: a.vnode, domain: a.domain });
    for (const r of changes.removed)
      options.log.info("ACME certificate dropped: the domain is no longer hosted here", {
        vnode: r.vnode,
        domain: r.domain,
      });
    for (const vnode of changes.bumped) {
      const outcome = await options.deliver.deliver({ vnode, actor: "acme-domains" });
      if (!outcome.pushed)
        options.log.warn("ACME domain certificate dropped; delivery pending", { vnode, reason: outcome.reason });
    }
  };

  const pass = async (): Promise<number> => {
    let issued = 0;
    try {
      await followDomains().catch((error: unknown) =>
        options.log.warn("ACME domain follow-up failed", { error: NetservaError.from(error).message }),
      );
      await recheckRenewalInfo().catch((error: unknown) =>
        options.log.warn("ACME renewal information check failed", { error: NetservaError.from(error).message }),
      );
      for (const row of await due()) if (await runOne(row)) issued += 1;
    } finally {
      await publish().catch(() => undefined);
    }
    return issued;
  };

  const sweep = (): Promise<number> => {
    running ??= pass().finally(() => (running = undefined));
    return running;
  };

  const interval = options.intervalMs ?? 3600_000;
  const timer =
    interval > 0
      ? setInterval(
          () =>
            void sweep().catch((error: unknown) =>
              options.log.warn("ACME sweep failed", { error: NetservaError.from(error).message }),
            ),
          interval,
        )
      : undefined;
  timer?.unref();
  void publish().catch(() => undefined);
  return { sweep, stop: () => clearInterval(timer) };
}
