// The controller daemon's own counters, in Prometheus text format (`netserva-mail metrics`
// prints them through the admin socket). One registry per daemon: tests run several in one
// process.
import { monitorEventLoopDelay } from "node:perf_hooks";
import { Counter, Gauge, Registry } from "prom-client";
import type { LastResortKind } from "../../common/process/last-resort.ts";
import { signatureOperations } from "../../common/pki/signature-count.ts";
import type { PhaseTiming } from "../../common/phase-timing.ts";

import type { Refusal } from "../enrollment/enrollment-server.ts";
import type { FlushCounts } from "../health/save-health.ts";
import type { FleetWork } from "../fleet/fleet.ts";
import type { AcmeCertificateState } from "../acme/acme-sweep.ts";

/** The certificates the running servers present, by which server. */
export type PresentedCertificate = "controller" | "enrollment";

export interface ControllerMetrics {
  readonly registry: Registry;
  /** Where the expiry gauge reads the certificates the servers present now (the daemon sets it). */
  watchCertificates(expiry: () => Record<PresentedCertificate, Date>): void;
  certificateRenewal(certificate: "controller" | "mail_tls", result: "ok" | "failed"): void;
  lastResort(kind: LastResortKind): void;
  adminClientError(): void;
  /** Whether the last probe of the database succeeded. */
  databaseReachable(up: boolean): void;
  enrollmentRefused(method: "enroll" | "renew", reason: Refusal): void;
  /** Where the link-connect gauges read the fleet's connect gate (the daemon sets it). */
  watchConnects(gate: () => { inFlight: number; peak: number }): void;
  /** Health reports received, and what their flushes wrote (rows by table, statements). */
  health(event: { reports: number } | FlushCounts): void;
  /** A fleet refresh's rows read, a revocation fan-out's pushes and turns of the event loop. */
  fleetWork(work: FleetWork): void;
  /** One ACME order (issue or renewal) the running controller ran. */
  acmeOrder(result: "ok" | "failed"): void;
  /** Every ACME certificate's state, as the last ACME sweep read it. */
  acmeStates(states: AcmeCertificateState[]): void;
  /** One timed phase of a command (common/phase-timing.ts): where a push's time goes, seen from
   *  the controller (scripts/bench-fleet reads the sums around its addvmail samples). */
  phase(timing: PhaseTiming): void;
  text(): Promise<string>;
}

export function createControllerMetrics(): ControllerMetrics {
  const registry = new Registry();
  const lastResort = new Counter({
    name: "netserva_controller_last_resort_total",
    help: "Errors no connection handler caught (process-level last resort); should stay 0.",
    labelNames: ["kind"],
    registers: [registry],
  });
  for (const kind of ["uncaught_exception", "unhandled_rejection"]) lastResort.inc({ kind }, 0);
  const adminErrors = new Counter({
    name: "netserva_controller_admin_client_errors_total",
    help: "Admin-socket connections that ended with an error (a client gone mid-command).",
    registers: [registry],
  });
  const databaseUp = new Gauge({
    name: "netserva_controller_database_up",
    help: "1 when the controller's last probe of its database succeeded, 0 while it is unreachable.",
    registers: [registry],
  });
  databaseUp.set(1);
  const refused = new Counter({
    name: "netserva_controller_enrollment_refused_total",
    help: "Enroll and Renew requests refused, by reason.",
    labelNames: ["method", "reason"],
    registers: [registry],
  });
  new Gauge({
    name: "netserva_controller_signature_operations",
    help: "RSA signature operations (CSR verifications and certificates signed) since the process started.",
    labelNames: ["operation"],
    registers: [registry],
    collect() {
      this.set({ operation: "verify" }, signatureOperations.verify);
      this.set({ operation: "sign" }, signatureOperations.sign);
    },
  });
  const healthReports = new Counter({
    name: "netserva_controller_health_reports_total",
    help: "Health reports received from agents.",
    registers: [registry],
  });
  const healthStatements = new Counter({
    name: "netserva_controller_health_statements_total",
    help: "Database statements health reports cost (batched per flush, not per report).",
    registers: [registry],
  });
  const healthRows = new Counter({
    name: "netserva_controller_health_rows_total",
    help: "Rows health flushes wrote, by table.",
    labelNames: ["table"],
    registers: [registry],
  });
  for (const table of ["vnodes", "mail_services", "mail_health_history"]) healthRows.inc({ table }, 0);
  const fleetRefreshes = new Counter({
    name: "netserva_controller_fleet_refreshes_total",
    help: "Fleet refreshes (every 2 s, and on lease changes): each reads only the rows changed since the one before.",
    registers: [registry],
  });
  const fleetRows = new Counter({
    name: "netserva_controller_fleet_refresh_rows_total",
    help: "Rows fleet refreshes read, by table (0 per refresh while nothing changes, whatever the fleet's size).",
    labelNames: ["table"],
    registers: [registry],
  });
  for (const table of ["vnodes", "certificates"]) fleetRows.inc({ table }, 0);
  const revocationPushes = new Counter({
    name: "netserva_controller_revocation_pushes_total",
    help: "Revocation lists pushed to agents by fan-outs (a new list to every link).",
    registers: [registry],
  });
  const revocationTurns = new Counter({
    name: "netserva_controller_revocation_fanout_turns_total",
    help: "Turns of the event loop revocation fan-outs were spread over (a slice of links per turn).",
    registers: [registry],
  });
  let connects: (() => { inFlight: number; peak: number }) | undefined;
  new Gauge({
    name: "netserva_controller_link_connects",
    help: "Agent links connecting now (TLS handshake to first health report), and the most at once since start (bounded fleet-wide).",
    labelNames: ["which"],
    registers: [registry],
    collect() {
      const now = connects?.();
      this.set({ which: "in_flight" }, now?.inFlight ?? 0);
      this.set({ which: "peak" }, now?.peak ?? 0);
    },
  });
  let presented: (() => Record<PresentedCertificate, Date>) | undefined;
  new Gauge({
    name: "netserva_controller_certificate_expiry_timestamp_seconds",
    help: "notAfter of the certificate the controller presents (controller: to agents on the gRPC channel; enrollment: on the enrollment endpoint), Unix seconds.",
    labelNames: ["certificate"],
    registers: [registry],
    collect() {
      this.reset();
      const expiry = presented?.();
      if (!expiry) return;
      for (const [certificate, notAfter] of Object.entries(expiry))
        this.set({ certificate }, notAfter.getTime() / 1000);
    },
  });
  const renewals = new Counter({
    name: "netserva_controller_certificate_renewals_total",
    help: "Certificate renewals by the running controller: its own, and vnodes' mail TLS certificates.",
    labelNames: ["certificate", "result"],
    registers: [registry],
  });
  for (const certificate of ["controller", "mail_tls"])
    for (const result of ["ok", "failed"]) renewals.inc({ certificate, result }, 0);
  const acmeOrders = new Counter({
    name: "netserva_acme_orders_total",
    help: "ACME orders (first issue and renewals) run by this controller process, by result.",
    labelNames: ["result"],
    registers: [registry],
  });
  for (const result of ["ok", "failed"]) acmeOrders.inc({ result }, 0);
  let acme: AcmeCertificateState[] = [];
  const acmeGauge = (name: string, help: string, value: (s: AcmeCertificateState) => number | undefined): void =>
    void new Gauge({
      name,
      help,
      labelNames: ["vnode", "purpose"],
      registers: [registry],
      collect() {
        this.reset();
        for (const state of acme) {
          const v = value(state);
          if (v !== undefined) this.set({ vnode: state.vnode, purpose: state.purpose }, v);
        }
      },
    });
  acmeGauge(
    "netserva_acme_certificate_failures",
    "Failed ACME orders in a row for a vnode's certificate (0 = the last order succeeded).",
    (s) => s.failures,
  );
  acmeGauge(
    "netserva_acme_certificate_expiry_timestamp_seconds",
    "notAfter of the ACME certificate stored for a vnode, Unix seconds.",
    (s) => (s.notAfter ? s.notAfter.getTime() / 1000 : undefined),
  );
  acmeGauge(
    "netserva_acme_certificate_next_attempt_timestamp_seconds",
    "When the next ACME order (renewal or retry) for a vnode's certificate is due, Unix seconds.",
    (s) => s.nextAttemptAt.getTime() / 1000,
  );
  const phaseSeconds = new Counter({
    name: "netserva_controller_phase_seconds_total",
    help: "Time spent in each timed phase of commands and pushes (admin.command, mutation.*, deliver.*), seconds.",
    labelNames: ["phase"],
    registers: [registry],
  });
  const phaseRuns = new Counter({
    name: "netserva_controller_phase_runs_total",
    help: "How many times each timed phase ran (with netserva_controller_phase_seconds_total: the mean).",
    labelNames: ["phase"],
    registers: [registry],
  });
  // The daemon's event-loop delay since the previous scrape (each scrape starts a new window):
  // what every push, report and command waits before it runs.
  const delay = monitorEventLoopDelay({ resolution: 10 });
  delay.enable();
  new Gauge({
    name: "netserva_controller_event_loop_delay_seconds",
    help: "Event-loop delay of the controller process since the previous scrape, by quantile (0.5, 0.99, 1 = max).",
    labelNames: ["quantile"],
    registers: [registry],
    collect() {
      const q = (p: number): number => (delay.count > 0 ? delay.percentile(p) / 1e9 : 0);
      this.set({ quantile: "0.5" }, q(50));
      this.set({ quantile: "0.99" }, q(99));
      this.set({ quantile: "1" }, delay.count > 0 ? delay.max / 1e9 : 0);
      delay.reset();
    },
  });
  return {
    registry,
    phase(timing) {
      phaseSeconds.inc({ phase: timing.name }, timing.ms / 1000);
      phaseRuns.inc({ phase: timing.name });
    },
    fleetWork(work) {
      if (work.refreshes) fleetRefreshes.inc(work.refreshes);
      if (work.vnodeRows !== undefined) fleetRows.inc({ table: "vnodes" }, work.vnodeRows);
      if (work.certificateRows !== undefined) fleetRows.inc({ table: "certificates" }, work.certificateRows);
      if (work.revocationPushes) revocationPushes.inc(work.revocationPushes);
      if (work.revocationTurns) revocationTurns.inc(work.revocationTurns);
    },
    acmeOrder: (result) => acmeOrders.inc({ result }),
    acmeStates: (states) => void (acme = states),
    watchCertificates: (expiry) => void (presented = expiry),
    certificateRenewal: (certificate, result) => renewals.inc({ certificate, result }),
    lastResort: (kind) => lastResort.inc({ kind }),
    adminClientError: () => adminErrors.inc(),
    databaseReachable: (up) => databaseUp.set(up ? 1 : 0),
    enrollmentRefused: (method, reason) => refused.inc({ method, reason }),
    watchConnects(gate) {
      connects = gate;
    },
    health(event) {
      if ("reports" in event) {
        healthReports.inc(event.reports);
        return;
      }
      healthStatements.inc(event.statements);
      healthRows.inc({ table: "vnodes" }, event.vnodes);
      healthRows.inc({ table: "mail_services" }, event.services);
      healthRows.inc({ table: "mail_health_history" }, event.samples);
    },
    text: () => registry.metrics(),
  };
}
