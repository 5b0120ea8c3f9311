// `netserva-mail serve`: the enrollment endpoint and the fleet (links + health) in one process,
// and the upkeep of certificates: the controller's own (renewed and swapped into both servers) and
// the vnodes' mail TLS certificates (renewed and delivered before they expire).
import type { Logger } from "../../common/log.ts";
import type { Database } from "../db/open-database.ts";
import { startEnrollmentServer } from "../enrollment/enrollment-server.ts";
import type { EnrollmentLimits, EnrollmentMaterial, Refusal } from "../enrollment/enrollment-server.ts";
import { startFleet } from "../fleet/fleet.ts";
import { createDeliverService } from "../fleet/deliver.ts";
import { mailTlsIssuerFor } from "../pki/mail-tls.ts";
import type { Fleet, FleetIdentity } from "../fleet/fleet.ts";
import { readCaFiles, withChain } from "../pki/ca-files.ts";
import { caPin } from "../../common/pki/pin.ts";
import { watchCaChanges } from "./ca-watch.ts";
import { watchDatabase } from "./database-watch.ts";
import { startMailTlsSweep } from "../pki/mail-tls-sweep.ts";
import type { ControllerConfig } from "../home/controller-config.ts";
import type { HomePaths } from "../home/home-paths.ts";
import { parseHostPort } from "../../common/validation/host-port.ts";
import type { IdentityPair } from "../../common/pki/identity-pair.ts";
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
  /** How often the database is asked whether a CA rotation step landed (default 2 s). */
  caCheckMs?: number;
  /** Counts refused Enroll/Renew requests (the controller's metrics). */
  onEnrollmentRefused?: (method: "enroll" | "renew", reason: Refusal) => void;
  /** The daemon's metrics: certificate expiry and renewals are reported there. */
  metrics?: ControllerMetrics;
  /** How often certificates are checked for renewal, the controller's and mail TLS (default hourly). */
  certificateCheckMs?: number;
  /** How often the database is probed for reachability (default 2 s). */
  databaseCheckMs?: number;
}

export interface ControllerDaemon {
  port: number;
  fleet: Fleet;
  /** Re-reads the CA material and our certificate from the home and swaps them in without a
   *  restart: the enrollment endpoint's TLS context and the fleet's links. */
  reloadIdentity(): Promise<void>;
  /** Applies a CA rotation step now instead of at the next poll. */
  checkCa(): Promise<void>;
  /** The certificates the servers present now. */
  presented(): Record<PresentedCertificate, string>;
  /** Renews the controller's certificate now and swaps it into the running servers. */
  renewControllerCertificate(): Promise<RenewedIdentity>;
  /** One certificate check now (what the periodic timer runs). */
  checkCertificates(): Promise<void>;
  close(): Promise<void>;
}

/** Everything TLS and signing need: the CA material in the home and our key and certificate. */
function readIdentity(paths: HomePaths, pair: IdentityPair): { enrollment: EnrollmentMaterial; fleet: FleetIdentity } {
  const ca = readCaFiles(paths);
  const { certPem, keyPem } = pair;
  return {
    enrollment: { ca, certPem, keyPem, chainPem: ca.chainPem },
    fleet: { caPem: ca.trustPem, certPem: withChain(certPem, ca.chainPem), keyPem, issuingCaPin: caPin(ca.caCertPem) },
  };
}

export async function startControllerDaemon(options: ControllerDaemonOptions): Promise<ControllerDaemon> {
  const renewalOptions = {
    paths: options.paths,
    db: options.db,
    validSeconds: options.config.controllerCertificateSeconds,
    name: options.config.name,
    log: options.log.child({ component: "controller-certificate" }),
  };
  const pair = await loadOrRenewControllerIdentity(renewalOptions);
  const identity = readIdentity(options.paths, pair);
  const { host, port } = parseHostPort(options.listen ?? options.config.listen, "listen");
  const enrollment = await startEnrollmentServer({
    db: options.db,
    ...identity.enrollment,
    agentCertificateSeconds: options.config.agentCertificateSeconds,
    log: options.log.child({ component: "enrollment" }),
    host,
    port,
    ...(options.enrollmentLimits ? { limits: options.enrollmentLimits } : {}),
    ...(options.onEnrollmentRefused ? { onRefused: options.onEnrollmentRefused } : {}),
  });
  // The reconciler delivers over the fleet's own links (one connection per vnode); links are
  // asked for only once reports arrive, after the fleet below exists.
  const mailTls = mailTlsIssuerFor(options.paths, options.config.mailTlsCertificateSeconds);
  const deliver = createDeliverService({
    db: options.db,
    paths: options.paths,
    mailTls,
    linkFor: (name) => {
      const link = fleet.link(name);
      return link ? { client: link.client, connected: link.connected } : undefined;
    },
  });
  const fleet = startFleet({
    db: options.db,
    ...identity.fleet,
    log: options.log.child({ component: "fleet" }),
    deliver,
    ...(options.healthIntervalMs ? { healthIntervalMs: options.healthIntervalMs } : {}),
    ...(options.staleAfterMs ? { staleAfterMs: options.staleAfterMs } : {}),
    ...(options.metrics ? { onHealth: options.metrics.health } : {}),
  });
  options.metrics?.watchConnects(() => fleet.connects);
  const renewal = startControllerRenewal({
    ...renewalOptions,
    initial: pair,
    ...(options.certificateCheckMs !== undefined ? { intervalMs: options.certificateCheckMs } : {}),
    async apply(next) {
      const material = readIdentity(options.paths, next);
      enrollment.setMaterial(material.enrollment);
      await fleet.setIdentity(material.fleet);
      options.log.info("controller identity reloaded", { issuing_ca: material.fleet.issuingCaPin });
    },
    onRenewal: (result) => options.metrics?.certificateRenewal("controller", result),
  });
  const reloadIdentity = (): Promise<void> => renewal.reload();
  const mailTlsSweep = startMailTlsSweep({
    db: options.db,
    deliver,
    issuer: mailTls,
    log: options.log.child({ component: "mail-tls" }),
    ...(options.certificateCheckMs !== undefined ? { intervalMs: options.certificateCheckMs } : {}),
    onRenewal: (result) => options.metrics?.certificateRenewal("mail_tls", result),
  });
  const presented = (): Record<PresentedCertificate, string> => ({
    controller: renewal.current().certPem,
    enrollment: enrollment.certPem,
  });
  options.metrics?.watchCertificates(() => {
    const { controller, enrollment: served } = presented();
    return { controller: inspectCertificate(controller).notAfter, enrollment: inspectCertificate(served).notAfter };
  });
  const caWatch = await watchCaChanges({
    db: options.db,
    log: options.log,
    ...(options.caCheckMs ? { intervalMs: options.caCheckMs } : {}),
    // A CA step: the new identity now; the mail certificates the old CA issued in the background
    // (one vnode at a time, each a whole-state push that may wait on an unreachable vnode).
    onChange: async () => {
      await reloadIdentity();
      mailTlsSweep
        .sweep()
        .catch((error: unknown) => options.log.warn("mail TLS sweep failed", { error: String(error) }));
    },
  });
  const databaseWatch = watchDatabase({
    db: options.db,
    log: options.log.child({ component: "database" }),
    ...(options.databaseCheckMs !== undefined ? { intervalMs: options.databaseCheckMs } : {}),
    onChange: (up) => options.metrics?.databaseReachable(up),
  });
  options.log.info("controller serving", { port: enrollment.port });
  return {
    port: enrollment.port,
    fleet,
    reloadIdentity,
    checkCa: () => caWatch.check(),
    presented,
    renewControllerCertificate: () => renewal.renew(),
    async checkCertificates() {
      await renewal.check();
      await mailTlsSweep.sweep();
    },
    async close() {
      databaseWatch.stop();
      caWatch.stop();
      renewal.stop();
      mailTlsSweep.stop();
      await fleet.close();
      await enrollment.close();
    },
  };
}
