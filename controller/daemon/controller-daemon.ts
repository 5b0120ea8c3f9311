// `netserva-mail serve`: the enrollment endpoint and the fleet (links + health) in one process.
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
}

export interface ControllerDaemon {
  port: number;
  fleet: Fleet;
  close(): Promise<void>;
}

export async function startControllerDaemon(options: ControllerDaemonOptions): Promise<ControllerDaemon> {
  const caPem = readFileSync(options.paths.caCert, "utf8");
  const certPem = readFileSync(options.paths.cert, "utf8");
  const keyPem = readFileSync(options.paths.key, "utf8");
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
  options.log.info("controller serving", { port: enrollment.port });
  return {
    port: enrollment.port,
    fleet,
    async close() {
      await fleet.close();
      await enrollment.close();
    },
  };
}
