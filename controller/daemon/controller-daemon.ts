// `netserva-mail serve`: the enrollment endpoint and the fleet (links + health) in one process,
// and the upkeep of certificates: the controller's own (renewed and swapped into both servers) and
// the vnodes' mail TLS certificates (renewed and delivered before they expire).
import { startHashThread, stopHashThread } from "../../common/password/hash-worker.ts";
import type { Logger } from "../../common/log.ts";
import type { Database } from "../db/open-database.ts";
import { startEnrollmentServer } from "../enrollment/enrollment-server.ts";
import type { EnrollmentLimits, EnrollmentMaterial, Refusal } from "../enrollment/enrollment-server.ts";
import { startFleet } from "../fleet/fleet.ts";
import { startLeaseKeeper } from "../fleet/lease-keeper.ts";
import type { LeaseKeeper } from "../fleet/lease-keeper.ts";
import { listenForChanges } from "../fleet/change-listener.ts";
import { createChangePusher } from "../fleet/change-pusher.ts";
import { createDeliverService } from "../fleet/deliver.ts";
import type { DeliverService } from "../fleet/deliver.ts";
import { mailTlsIssuerFor } from "../pki/mail-tls.ts";
import type { Fleet, FleetIdentity } from "../fleet/fleet.ts";
import { readCaFiles, withChain } from "../pki/ca-files.ts";
import { caPin } from "../../common/pki/pin.ts";
import { watchCaChanges } from "./ca-watch.ts";
import { watchDatabase } from "./database-watch.ts";
import { startMailTlsSweep } from "../pki/mail-tls-sweep.ts";
import { startAcmeSweep } from "../acme/acme-sweep.ts";
import { readDnsConfig } from "../dns/dns-config.ts";
import { createPowerDnsProvider } from "../dns/powerdns-provider.ts";
import type { DnsProvider } from "../dns/dns-provider.ts";
import type { ControllerConfig } from "../home/controller-config.ts";
import type { HomePaths } from "../home/home-paths.ts";
import { parseHostPort } from "../../common/validation/host-port.ts";
import type { IdentityPair } from "../../common/pki/identity-pair.ts";
import { inspectCertificate } from "../../common/pki/inspect.ts";
import { fromSigningCa, loadOrRenewControllerIdentity, startControllerRenewal } from "../pki/controller-renewal.ts";
import { kekIds, type Kek } from "../pki/ca-seal.ts";
import { materializeCa } from "../pki/ca-store.ts";
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
  /** Fault switch for the fencing test (lease-keeper.ts): never stop on our own clock. */
  ignoreLeaseLapse?: boolean;
  /** The DNS provider ACME's DNS-01 challenges go through; default: PowerDNS from controller.json. */
  dns?: () => DnsProvider | undefined;
  /** The CA key-encryption key (ca-seal.ts): on PostgreSQL the CA files come from the database. */
  kek?: Kek;
}

export interface ControllerDaemon {
  port: number;
  fleet: Fleet;
  /** On PostgreSQL: the vnode leases this controller holds (several controllers share the fleet). */
  leases: LeaseKeeper | undefined;
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
  /** Pushes over the fleet's live links (commands run in this process use it, cli-context.ts). */
  deliver: DeliverService;
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
  // Several controllers: the CA as the database keeps it (a rotation made while this one was down
  // lands here before anything is signed). A missing or wrong KEK stops the start with the reason.
  const materialize = async (): Promise<void> => {
    if (options.db.kind === "postgresql") await materializeCa(options.db.em().fork(), options.paths, options.kek);
  };
  await materialize();
  const pair = await loadOrRenewControllerIdentity(renewalOptions);
  let checkCa = async (): Promise<void> => undefined;
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
    ...(options.db.kind === "postgresql" ? { beforeSign: () => checkCa() } : {}),
  });
  // The reconciler delivers over the fleet's own links (one connection per vnode); links are
  // asked for only once reports arrive, after the fleet below exists.
  const mailTls = mailTlsIssuerFor(options.paths, options.config.mailTlsCertificateSeconds);
  // On PostgreSQL several serve processes may share the fleet: each drives the vnodes whose lease
  // it holds (lease-keeper.ts), stamps its epoch on every command, and pushes the changes any
  // process commits for them (change-feed.ts). PGlite belongs to one process: no leases.
  let onLeases = (_gained: string[]): void => undefined;
  const leases =
    options.db.kind === "postgresql"
      ? startLeaseKeeper({
          db: options.db,
          name: options.config.name,
          kekIds: kekIds(options.kek),
          log: options.log.child({ component: "leases" }),
          ...(options.ignoreLeaseLapse ? { ignoreLapse: true } : {}),
          onChange: (gained) => onLeases(gained.map((lease) => lease.vnode)),
        })
      : undefined;
  const holds = (vnode: string): boolean => leases === undefined || leases.epochOf(vnode) !== undefined;
  const deliver = createDeliverService({
    db: options.db,
    paths: options.paths,
    mailTls,
    linkFor: (name) => {
      const link = fleet.link(name);
      return link ? { client: link.client, connected: link.connected } : undefined;
    },
    ...(leases ? { epochFor: (vnode: string) => leases.epochOf(vnode) } : {}),
  });
  const pusher = createChangePusher({ db: options.db, deliver, log: options.log.child({ component: "change-feed" }) });
  const listener =
    leases && options.db.url
      ? listenForChanges({
          url: options.db.url,
          log: options.log.child({ component: "change-feed" }),
          onChange: (vnode) => {
            if (holds(vnode)) pusher.push(vnode);
          },
          onListening: () => {
            for (const lease of leases.held()) pusher.push(lease.vnode);
          },
        })
      : undefined;
  const fleet = startFleet({
    db: options.db,
    ...identity.fleet,
    log: options.log.child({ component: "fleet" }),
    deliver,
    ...(leases ? { holds } : {}),
    ...(options.healthIntervalMs ? { healthIntervalMs: options.healthIntervalMs } : {}),
    ...(options.staleAfterMs ? { staleAfterMs: options.staleAfterMs } : {}),
    ...(options.metrics ? { onHealth: options.metrics.health, onFleetWork: options.metrics.fleetWork } : {}),
  });
  options.metrics?.watchConnects(() => fleet.connects);
  // A lease gained (a takeover, or this serve starting): a link to the vnode at once, our epoch
  // announced, and what was committed and not applied yet pushed at once through the change feed
  // (a command committed with no live holder waits for exactly this push; the reconciler's
  // catch-up would wait for the first health report and its lag grace). One query finds the
  // vnodes that owe anything; an unreachable one is left to the reconciler.
  const log = options.log.child({ component: "leases" });
  onLeases = (gained) => {
    const refreshed = fleet
      .refresh()
      .catch((error: unknown) => options.log.warn("fleet refresh failed", { error: String(error) }));
    if (gained.length === 0) return;
    const behind = options.db
      .em()
      .getConnection()
      .execute<Array<{ name: string; generation: string | number; applied: string | number }>>(
        `select name, generation, applied_generation as applied from vnodes
          where name in (${gained.map(() => "?").join(", ")}) and generation > applied_generation`,
        gained,
      )
      .then((rows) => new Map(rows.map((r) => [r.name, r])))
      .catch((error: unknown) => {
        log.warn("reading what the gained vnodes owe failed", { error: String(error) });
        return new Map<string, { generation: string | number; applied: string | number }>();
      });
    for (const vnode of gained) {
      // Through the links' connect gate: a restart gains every lease at once, and a thousand
      // pings on links not connected yet were a thousand TLS handshakes in one instant.
      const announced = async (): Promise<string | undefined> => {
        const release = await fleet.connects.acquire();
        try {
          return await deliver.announce?.(vnode);
        } finally {
          release();
        }
      };
      void refreshed
        .then(announced)
        .then(async (failed) => {
          if (failed) return log.warn("new lease epoch not announced", { vnode, reason: failed });
          const owed = (await behind).get(vnode);
          if (!owed || !holds(vnode)) return;
          log.info("lease gained: pushing what the vnode has not applied", {
            vnode,
            applied: Number(owed.applied),
            generation: Number(owed.generation),
          });
          pusher.push(vnode);
        })
        .catch((error: unknown) =>
          // A database too busy to answer in time (a restart's first minute at 1,000 vnodes): the
          // reconciler catches the vnode up from its reports instead. Unhandled, these were a
          // thousand "last resort" errors.
          log.warn("new lease epoch not announced", { vnode, reason: String(error) }),
        );
    }
  };
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
    owns: holds,
  });
  const acmeSweep = startAcmeSweep({
    db: options.db,
    deliver,
    dns:
      options.dns ??
      (() => {
        const config = readDnsConfig(options.paths.config, {});
        return config.powerdns ? createPowerDnsProvider(config.powerdns) : undefined;
      }),
    retry: { retryMs: options.config.acmeRetrySeconds * 1000, maxMs: options.config.acmeRetryMaxSeconds * 1000 },
    log: options.log.child({ component: "acme" }),
    ...(options.certificateCheckMs !== undefined ? { intervalMs: options.certificateCheckMs } : {}),
    onOrder: (result) => options.metrics?.acmeOrder(result),
    onStates: (states) => options.metrics?.acmeStates(states),
    owns: holds,
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
      await materialize();
      await reloadIdentity();
      // A rotation another controller began: our own certificate from the new CA, once.
      if (!fromSigningCa(options.paths, renewal.current().certPem)) await renewal.renew("ca rotation");
      mailTlsSweep
        .sweep()
        .catch((error: unknown) => options.log.warn("mail TLS sweep failed", { error: String(error) }));
    },
  });
  checkCa = () => caWatch.check();
  const databaseWatch = watchDatabase({
    db: options.db,
    log: options.log.child({ component: "database" }),
    ...(options.databaseCheckMs !== undefined ? { intervalMs: options.databaseCheckMs } : {}),
    onChange: (up) => options.metrics?.databaseReachable(up),
  });
  // Commands run here (admin socket) hash passwords off this event loop (hash-worker.ts).
  startHashThread();
  options.log.info("controller serving", { port: enrollment.port });
  return {
    port: enrollment.port,
    fleet,
    leases,
    reloadIdentity,
    checkCa: () => caWatch.check(),
    presented,
    renewControllerCertificate: () => renewal.renew(),
    deliver,
    async checkCertificates() {
      await renewal.check();
      await mailTlsSweep.sweep();
      await acmeSweep.sweep();
    },
    async close() {
      await databaseWatch.stop();
      await caWatch.stop();
      renewal.stop();
      mailTlsSweep.stop();
      await listener?.close();
      // Handed back before the links close: the others take over without waiting for the TTL.
      await leases?.stop();
      await pusher.idle();
      acmeSweep.stop();
      await fleet.close();
      await enrollment.close();
      await stopHashThread();
    },
  };
}
