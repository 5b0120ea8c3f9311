// Mail metrics on the agent's registry, read from the same cached health the stream sends, at
// scrape time. Names follow the established exporters' style (postfix_exporter's queue sizes,
// dovecot_exporter's users) under the netserva_ prefix. Label cardinality is bounded: services
// (≤ 4), queues (5), Rspamd results/actions (a handful) and at most TOP_DOMAINS domains; no
// per-mailbox series.
import { Counter, Gauge, type Registry } from "prom-client";
import type { MailHealth } from "../../common/gen/netserva/mail/v1/agent_pb.ts";
import { cached } from "../health/bounded.ts";
import type { MailHostPort } from "../server/mail-port.ts";

interface Snapshot {
  health: MailHealth | undefined;
  services: Awaited<ReturnType<MailHostPort["services"]>>;
  drift: boolean;
}

export function registerMailMetrics(registry: Registry, port: MailHostPort): void {
  const snapshot = cached(1000, async (): Promise<Snapshot> => {
    const [health, services, drift] = await Promise.all([
      port.health ? port.health().catch(() => undefined) : Promise.resolve(undefined),
      port.services().catch(() => []),
      port.drift().then(
        (d) => d.length > 0,
        () => false,
      ),
    ]);
    return { health, services, drift };
  });
  const registers = [registry];
  const gauge = (name: string, help: string, labelNames: string[], fill: (g: Gauge, s: Snapshot) => void): void => {
    new Gauge({
      name,
      help,
      labelNames,
      registers,
      async collect() {
        this.reset();
        fill(this, await snapshot());
      },
    });
  };
  const counter = (
    name: string,
    help: string,
    labelNames: string[],
    fill: (set: (labels: Record<string, string>, value: number) => void, s: Snapshot) => void,
  ): void => {
    new Counter({
      name,
      help,
      labelNames,
      registers,
      async collect() {
        // The daemon keeps the running total; mirror it (a daemon restart shows as a counter reset).
        this.reset();
        fill((labels, value) => this.inc(labels, value), await snapshot());
      },
    });
  };

  gauge(
    "netserva_mail_service_up",
    "1 when the mail daemon runs (active or reloading), 0 when stopped or failed.",
    ["service"],
    (g, s) => {
      for (const svc of s.services)
        g.set({ service: svc.name }, svc.state === "active" || svc.state === "reloading" ? 1 : 0);
    },
  );
  gauge(
    "netserva_mail_service_info",
    "The mail daemon's version and state; the value is always 1.",
    ["service", "version", "state"],
    (g, s) => {
      for (const svc of s.services) g.set({ service: svc.name, version: svc.version, state: svc.state }, 1);
    },
  );
  // Not from the snapshot: the running total, read directly at each scrape (a vnode switched from
  // unmanaged to managed gains its daemons' counts then).
  new Counter({
    name: "netserva_agent_daemon_restarts_total",
    help: "Mail daemons started again after they died: by the agent (direct mode, OpenRC) or by systemd's Restart= (its NRestarts).",
    labelNames: ["daemon"],
    registers,
    collect() {
      this.reset();
      for (const [daemon, n] of port.daemonRestarts?.() ?? []) this.inc({ daemon }, n);
    },
  });
  gauge(
    "netserva_agent_web_listener_up",
    "1 when the agent's web listener (https: MTA-STS/autoconfig/autodiscover, http-01: ACME) is bound, 0 when it could not bind.",
    ["kind", "address"],
    (g, s) => {
      for (const l of s.health?.web?.listeners ?? []) g.set({ kind: l.kind, address: l.address }, l.listening ? 1 : 0);
    },
  );
  counter(
    "netserva_agent_web_requests_total",
    "Requests the agent's web listeners answered, by kind (mta-sts, autoconfig, autodiscover, acme-challenge, other) and status class.",
    ["kind", "result"],
    (set, s) => {
      for (const r of s.health?.web?.requests ?? []) set({ kind: r.kind, result: r.result }, Number(r.count));
    },
  );
  counter(
    "netserva_agent_web_tls_handshake_failures_total",
    "TLS handshakes the agent's HTTPS listener failed (no certificate for the name, bad or slow clients).",
    [],
    (set, s) => {
      if (s.health?.web) set({}, Number(s.health.web.tlsHandshakeFailures));
    },
  );
  gauge("netserva_agent_drift", "1 when a managed file or the lookup DB differs from what was applied.", [], (g, s) =>
    g.set(s.drift ? 1 : 0),
  );
  gauge("netserva_postfix_queue_messages", "Messages in the Postfix queue, by queue.", ["queue"], (g, s) => {
    const q = s.health?.queue;
    if (!q) return;
    for (const [queue, n] of Object.entries({
      active: q.active,
      deferred: q.deferred,
      hold: q.hold,
      incoming: q.incoming,
      maildrop: q.maildrop,
    }))
      g.set({ queue }, n);
  });
  gauge(
    "netserva_postfix_queue_oldest_deferred_seconds",
    "Age of the oldest deferred message (0 when none).",
    [],
    (g, s) => {
      if (s.health?.queue) g.set(s.health.queue.oldestDeferredSeconds);
    },
  );
  gauge("netserva_dovecot_users", "Distinct users logged in to Dovecot.", [], (g, s) => {
    if (s.health && s.health.dovecotUsers >= 0) g.set(s.health.dovecotUsers);
  });
  gauge("netserva_dovecot_connections", "Dovecot client connections (IMAP, POP3, ManageSieve).", [], (g, s) => {
    if (s.health && s.health.dovecotConnections >= 0) g.set(s.health.dovecotConnections);
  });
  counter("netserva_rspamd_scanned_messages_total", "Messages Rspamd scanned.", [], (set, s) => {
    if (s.health?.rspamd?.available) set({}, Number(s.health.rspamd.scanned));
  });
  counter(
    "netserva_rspamd_messages_total",
    "Messages Rspamd classified, by result (ham, spam).",
    ["result"],
    (set, s) => {
      const r = s.health?.rspamd;
      if (!r?.available) return;
      set({ result: "ham" }, Number(r.ham));
      set({ result: "spam" }, Number(r.spam));
    },
  );
  counter(
    "netserva_rspamd_actions_total",
    "Rspamd verdicts by action (reject, greylist, add_header).",
    ["action"],
    (set, s) => {
      const r = s.health?.rspamd;
      if (!r?.available) return;
      set({ action: "reject" }, Number(r.rejected));
      set({ action: "greylist" }, Number(r.greylisted));
      set({ action: "add_header" }, Number(r.addHeader));
    },
  );
  gauge(
    "netserva_clamav_signatures_timestamp_seconds",
    "Unix time of the newest ClamAV signature database.",
    [],
    (g, s) => {
      if (s.health && s.health.clamavSignaturesUnixMs > 0n) g.set(Number(s.health.clamavSignaturesUnixMs) / 1000);
    },
  );
  const fs = (name: string, help: string, pick: (f: NonNullable<MailHealth["filesystem"]>) => bigint): void =>
    gauge(name, help, [], (g, s) => {
      if (s.health?.filesystem) g.set(Number(pick(s.health.filesystem)));
    });
  fs("netserva_mail_fs_size_bytes", "Size of the mail filesystem.", (f) => f.sizeBytes);
  fs("netserva_mail_fs_used_bytes", "Bytes used on the mail filesystem.", (f) => f.usedBytes);
  fs(
    "netserva_mail_fs_available_bytes",
    "Bytes available to unprivileged users on the mail filesystem.",
    (f) => f.availableBytes,
  );
  // Every filesystem the mail depends on, one series per role ("mail", "queue", "config",
  // "state"; ≤ 4): the full-filesystem alert names what stops (delivery, new mail, applies).
  const roleFs = (
    name: string,
    help: string,
    pick: (f: NonNullable<MailHealth["filesystem"]>) => bigint | undefined,
  ): void =>
    gauge(name, help, ["role", "path"], (g, s) => {
      for (const f of s.health?.filesystems ?? []) {
        const value = pick(f);
        if (value !== undefined)
          f.roles.forEach((role, i) => g.set({ role, path: f.rolePaths[i] ?? f.path }, Number(value)));
      }
    });
  roleFs(
    "netserva_fs_size_bytes",
    "Size of the filesystem holding a role (mail, queue, config, state).",
    (f) => f.sizeBytes,
  );
  roleFs(
    "netserva_fs_available_bytes",
    "Bytes available to unprivileged users on the filesystem holding a role (mail, queue, config, state).",
    (f) => f.availableBytes,
  );
  roleFs(
    "netserva_fs_free_inodes",
    "Free inodes on the filesystem holding a role (absent where the filesystem has no fixed number).",
    (f) => (f.inodes > 0n ? f.freeInodes : undefined),
  );
  gauge("netserva_mail_mailboxes", "Mailboxes on the vnode.", [], (g, s) => {
    if (s.health?.quota) g.set(s.health.quota.mailboxes);
  });
  gauge(
    "netserva_mail_quota_mailboxes_over_ratio",
    "Mailboxes at or over a share of their quota, by threshold.",
    ["threshold"],
    (g, s) => {
      const q = s.health?.quota;
      if (!q) return;
      g.set({ threshold: "0.8" }, q.over80);
      g.set({ threshold: "0.9" }, q.over90);
      g.set({ threshold: "1" }, q.over100);
    },
  );
  gauge(
    "netserva_mail_quota_used_ratio",
    "Highest used/limit ratio among a domain's mailboxes (fullest domains only, capped).",
    ["domain"],
    (g, s) => {
      for (const d of s.health?.quota?.domains ?? []) g.set({ domain: d.domain }, d.maxRatio);
    },
  );
  gauge(
    "netserva_mail_quota_used_bytes",
    "Bytes stored in a domain's mailboxes (fullest domains only, capped).",
    ["domain"],
    (g, s) => {
      for (const d of s.health?.quota?.domains ?? []) g.set({ domain: d.domain }, Number(d.usedBytes));
    },
  );
  gauge(
    "netserva_mail_tls_certificate_expiry_timestamp_seconds",
    "Unix time at which the certificate Postfix and Dovecot present expires.",
    [],
    (g, s) => {
      if (s.health && s.health.mailTlsNotAfterUnixMs > 0n)
        g.set(Math.floor(Number(s.health.mailTlsNotAfterUnixMs) / 1000));
    },
  );
  gauge(
    "netserva_mail_health_collector_errors",
    "Health probes that failed or timed out in the last collection.",
    [],
    (g, s) => {
      if (s.health) g.set(s.health.errors.length);
    },
  );
}
