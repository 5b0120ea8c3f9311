// `netserva-mail serve`: the enrollment endpoint and the fleet (links + health) in one process,
// and the upkeep of the controller's own certificate (renewed and swapped into both servers).
import { readFileSync } from "node:fs";
import type { Logger } from "../../common/log.ts";
import type { Database } from "../db/open-database.ts";
import { startEnrollmentServer } from "../enrollment/enrollment-server.ts";
import type { EnrollmentLimits, Refusal } from "../enrollment/enrollment-server.ts";
import { startFleet } from "../fleet/fleet.ts";
import { createDeliverService } from "../fleet/deliver.ts";
import { mailTlsIssuerFor } from "../pki/mail-tls.ts";
import type { Fleet } from "../fleet/fleet.ts";
import type { ControllerConfig } from "../home/controller-config.ts";
import type { HomePaths } from "../home/home-paths.ts";
import { parseHostPort } from "../../common/validation/host-port.ts";
import { inspectCertificate } from "../../common/pki/inspect.ts";
import { loadOrRenewControllerIdentity, startControllerRenewal } from "../pki/controller-renewal.ts";
import type { RenewedIdentity } from "../pki/controller-renewal.ts";
import type { ControllerMetrics, PresentedCertificate } from "./controller-metrics.ts";

export interface ControllerDaemonOptions {
  paths: HomePaths;
  config: ControllerConfig;
  db: Database;
  log: Logger;
  listen?: string;
  healthIntervalMs?: number;
  staleAfterMs?: number;
  enrollmentLimits?: EnrollmentLimits;
  /** Counts refused Enroll/Renew requests (the controller's metrics). */
  onEnrollmentRefused?: (method: "enroll" | "renew", reason: Refusal) => void;
  /** The daemon's metrics: certificate expiry and renewals are reported there. */
  metrics?: ControllerMetrics;
  /** How often certificates are checked for renewal (default hourly). */
  certificateCheckMs?: number;
}

export interface ControllerDaemon {
  port: number;
  fleet: Fleet;
  /** The certificates the servers present now. */
  presented(): Record<PresentedCertificate, string>;
  /** Renews the controller's certificate now and swaps it into the running servers. */
  renewControllerCertificate(): Promise<RenewedIdentity>;
  /** One certificate check now (what the periodic timer runs). */
  checkCertificates(): Promise<void>;
  close(): Promise<void>;
}

export async function startControllerDaemon(options: ControllerDaemonOptions): Promise<ControllerDaemon> {
  const caPem = readFileSync(options.paths.caCert, "utf8");
  const identityLog = options.log.child({ component: "controller-certificate" });
  const identity = {
    paths: options.paths,
    db: options.db,
    validSeconds: options.config.controllerCertificateSeconds,
    name: options.config.name,
    log: identityLog,
  };
  const { certPem, keyPem } = await loadOrRenewControllerIdentity(identity);
  const { host, port } = parseHostPort(options.listen ?? options.config.listen, "listen");
  const enrollment = await startEnrollmentServer({
    db: options.db,
    ca: { caKeyPem: readFileSync(options.paths.caKey, "utf8"), caCertPem: caPem },
    certPem,
    keyPem,
    agentCertificateSeconds: options.config.agentCertificateSeconds,
    log: options.log.child({ component: "enrollment" }),
    host,
    port,
    ...(options.enrollmentLimits ? { limits: options.enrollmentLimits } : {}),
    ...(options.onEnrollmentRefused ? { onRefused: options.onEnrollmentRefused } : {}),
  });
  // The reconciler delivers over the fleet's own links (one connection per vnode); links are
  // asked for only once reports arrive, after the fleet below exists.
  const deliver = createDeliverService({
    db: options.db,
    paths: options.paths,
    mailTls: mailTlsIssuerFor(options.paths),
    linkFor: (name) => fleet.link(name)?.client,
  });
  const fleet = startFleet({
    db: options.db,
    caPem,
    certPem,
    keyPem,
    log: options.log.child({ component: "fleet" }),
    deliver,
    ...(options.healthIntervalMs ? { healthIntervalMs: options.healthIntervalMs } : {}),
    ...(options.staleAfterMs ? { staleAfterMs: options.staleAfterMs } : {}),
  });
  const renewal = startControllerRenewal({
    ...identity,
    initial: { certPem, keyPem },
    ...(options.certificateCheckMs !== undefined ? { intervalMs: options.certificateCheckMs } : {}),
    apply(pair) {
      enrollment.setIdentity(pair.certPem, pair.keyPem);
      fleet.setIdentity(pair.certPem, pair.keyPem);
    },
    onRenewal: (result) => options.metrics?.certificateRenewal("controller", result),
  });
  const presented = (): Record<PresentedCertificate, string> => ({
    controller: renewal.current().certPem,
    enrollment: enrollment.certPem,
  });
  options.metrics?.watchCertificates(() => {
    const { controller, enrollment: served } = presented();
    return { controller: inspectCertificate(controller).notAfter, enrollment: inspectCertificate(served).notAfter };
  });
  options.log.info("controller serving", { port: enrollment.port });
  return {
    port: enrollment.port,
    fleet,
    presented,
    renewControllerCertificate: () => renewal.renew(),
    checkCertificates: () => renewal.check(),
    async close() {
      renewal.stop();
      await fleet.close();
      await enrollment.close();
    },
  };
}
