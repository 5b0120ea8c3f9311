// `netserva-mail-agent serve`: the gRPC server, the metrics endpoint and certificate renewal,
// wired from the agent's home.
import { previewMailFiles } from "./mail/mail-preview.ts";
import { inspectCertificate } from "../common/pki/inspect.ts";
import type { Logger } from "../common/log.ts";
import { createAppliedState } from "./server/applied-state.ts";
import { startAgentServer } from "./server/agent-server.ts";
import { openMailPort, type MailHostPort } from "./server/mail-port.ts";
import { createRevocations } from "./server/revocations.ts";
import { createLeaseFence } from "./server/lease-fence.ts";
import { createAgentMetrics } from "./metrics/agent-metrics.ts";
import { startMetricsServer } from "./metrics/metrics-server.ts";
import { agentHomePaths, loadAgentIdentity } from "./home/agent-home.ts";
import { scheduleRenewal } from "./enroll/renewal.ts";
import { createTrustUpdate } from "./enroll/trust-update.ts";
import { createTrustStore } from "./home/trust-store.ts";
import { parseHostPort } from "../common/validation/host-port.ts";
import { createMailHost } from "./mail/mail-host.ts";
import { createServedWeb } from "./web/web-host.ts";
import type { FilterOptions } from "./mail/filter-config.ts";
import { createVnodePaths } from "./paths.ts";
import { createServiceControl, detectInitSystem } from "./sc/service-control.ts";
import type { InitKind, ServiceControl } from "./sc/service-control.ts";
import { createSwitchableMail, type SwitchableMail } from "./server/switchable-mail.ts";
import { NETSERVA_SYSADM_DB } from "./mail/management.ts";
import { join } from "node:path";
import { createMailHealth } from "./health/mail-health.ts";
import { createRspamdPaths } from "./rspamd/paths.ts";
import { createClamavPaths } from "./clamav/paths.ts";
import { registerMailMetrics } from "./metrics/mail-metrics.ts";
import { AGENT_VERSION } from "./version.ts";
import { installLastResort } from "../common/process/last-resort.ts";

export interface AgentMailOptions {
  /** Everything the agent manages lives under this root ("/" on a real vnode). */
  root: string;
  /** Addresses the mail daemons listen on (overrides the controller's setting). */
  listen?: string[];
  /** Init system for sc(); detected when absent. */
  initKind?: InitKind;
  /** Test instances only: no Dovecot auth penalty after a failed login. */
  authPenalty?: boolean;
  /** Rspamd/ClamAV tuning (offline vnodes, tests). */
  filter?: FilterOptions;
  /** How often mailbox usage is rescanned on disk (default 30 s). */
  usageIntervalMs?: number;
  /** NetServa's sysadm DB (default: NetServa 3.0's path under root): its presence means hands off. */
  sysadmDb?: string;
}

export interface AgentDaemonOptions {
  home: string;
  listen: string;
  metricsListen?: string;
  log: Logger;
  /** Manage real mail daemons; without it the agent serves the channel only. */
  mail?: AgentMailOptions;
  /** A mail host made by the caller instead of `mail`: the scale harness (test/swarm/) swaps in
   *  one that records what it is told, so a thousand agents share one process without daemons. */
  mailPort?: MailHostPort;
  /** The agent's own process (`serve`): install the process-level last resort, counted in metrics.
   * Off for agents run inside another process (tests), which owns its process handlers. */
  lastResort?: boolean;
}

async function openManagedMail(
  options: AgentMailOptions,
  sc: ServiceControl,
  log: Logger,
): Promise<{ port: MailHostPort; close(): Promise<void> }> {
  const paths = createVnodePaths(options.root);
  // MTA-STS, autoconfig, autodiscover: served again at once from what the last state committed.
  const web = createServedWeb({ paths, log: log.child({ component: "web" }) });
  await web.restore();
  const host = await createMailHost({
    root: options.root,
    sc,
    web,
    log: log.child({ component: "mail" }),
    ...(options.listen ? { listen: options.listen } : {}),
    ...(options.authPenalty === false ? { authPenalty: false } : {}),
    ...(options.filter ? { filter: options.filter } : {}),
  });
  const health = createMailHealth({
    paths,
    clamavDbDir: createClamavPaths(options.root).dbDir,
    rspamdControllerSocket: createRspamdPaths(options.root).controllerSocket,
    web: () => web.health(),
    ...(options.usageIntervalMs !== undefined ? { usageIntervalMs: options.usageIntervalMs } : {}),
  });
  const port = await openMailPort(host, sc, health, { log: log.child({ component: "supervisor" }) });
  return {
    port,
    close: async () => {
      port.close?.();
      host.close();
      await web.close();
    },
  };
}

export const sysadmDbOf = (options: AgentMailOptions): string =>
  options.sysadmDb ?? join(createVnodePaths(options.root).root, NETSERVA_SYSADM_DB);

/** The vnode's mail: unmanaged (hands off) or managed, switchable by SetManagement. */
async function createMailPort(options: AgentMailOptions, log: Logger): Promise<SwitchableMail> {
  const paths = createVnodePaths(options.root);
  const sc = createServiceControl({ kind: options.initKind ?? detectInitSystem(), paths });
  return createSwitchableMail({
    paths,
    sysadmDb: sysadmDbOf(options),
    sc,
    preview: (state) =>
      previewMailFiles(
        {
          paths,
          sc,
          ...(options.listen ? { listen: options.listen } : {}),
          ...(options.authPenalty === false ? { authPenalty: false } : {}),
          ...(options.filter ? { filter: options.filter } : {}),
        },
        state,
      ),
    open: () => openManagedMail(options, sc, log),
    log: log.child({ component: "mail" }),
  });
}

export interface AgentDaemon {
  vnode: string;
  port: number;
  metricsPort: number | undefined;
  close(): Promise<void>;
}

export async function startAgentDaemon(options: AgentDaemonOptions): Promise<AgentDaemon> {
  const paths = agentHomePaths(options.home);
  const identity = loadAgentIdentity(paths);
  const vnode = identity.config.vnode;
  const log = options.log.child({ vnode });
  for (const repair of identity.repairs) log.warn("agent identity repaired at start-up", { repair });
  const revocations = createRevocations({ file: paths.revocations });
  const applied = createAppliedState({ file: paths.applied });
  const fence = createLeaseFence({ file: paths.leaseEpoch });
  // A torn state file is reported and started from empty: generation 0 makes the controller
  // send the whole state, and it pushes its revocation list on connecting.
  for (const problem of [revocations.problem, applied.problem, fence.problem])
    if (problem) log.warn("agent state file unusable, starting from empty", { problem });
  const metrics = createAgentMetrics({ vnode, version: AGENT_VERSION });
  // The net under the connection handlers: a miss is logged and counted, and the agent keeps
  // serving when the error belonged to one connection (see common/process/last-resort.ts).
  const uninstallLastResort = options.lastResort
    ? installLastResort({ log, onCatch: (kind) => metrics.lastResort(kind) })
    : () => undefined;
  const mail = options.mail ? await createMailPort(options.mail, options.log) : undefined;
  const mailHost = mail?.port ?? options.mailPort;
  if (mailHost) registerMailMetrics(metrics.registry, mailHost);
  // Late-bound: the servers and the renewal below exist only after the trust pieces are made.
  let onTrustChange = (_pem: string): void => undefined;
  let renewNow = (): void => undefined;
  const trustStore = createTrustStore({ file: paths.ca, pem: identity.caPem, onChange: (pem) => onTrustChange(pem) });
  let ownCertPem = identity.certPem;
  const trust = createTrustUpdate({
    store: trustStore,
    log,
    ownCertPem: () => ownCertPem,
    renewNow: () => renewNow(),
  });
  const server = await startAgentServer({
    vnode,
    version: AGENT_VERSION,
    caPem: identity.caPem,
    certPem: identity.certPem,
    keyPem: identity.keyPem,
    certificateNotAfter: inspectCertificate(identity.certPem).notAfter,
    revocations,
    applied,
    fence,
    metrics,
    log,
    listen: options.listen,
    trust,
    ...(mailHost ? { mailHost } : {}),
    ...(mail ? { mail } : {}),
    ...(options.mail ? { sysadmDb: sysadmDbOf(options.mail) } : {}),
  });
  const metricsServer = options.metricsListen
    ? await startMetricsServer({
        registry: metrics.registry,
        caPem: identity.caPem,
        certPem: identity.certPem,
        keyPem: identity.keyPem,
        revocations,
        log: log.child({ component: "metrics" }),
        ...parseHostPort(options.metricsListen, "metrics-listen"),
      })
    : undefined;
  onTrustChange = (pem) => {
    server.setCa(pem);
    metricsServer?.setCa(pem);
  };
  const renewal = scheduleRenewal({
    identity,
    paths,
    log,
    trustPem: () => trustStore.pem(),
    onTrust: (bundlePem, certPem) => trust.fromRenewal(bundlePem, certPem),
    onRenewed(certPem, keyPem, notAfter) {
      ownCertPem = certPem;
      server.setIdentity(certPem, keyPem, notAfter);
      metricsServer?.setIdentity(certPem, keyPem);
    },
  });
  renewNow = () => renewal.renewNow();
  log.info("agent serving", { port: server.port, metrics_port: metricsServer?.port });
  return {
    vnode,
    port: server.port,
    metricsPort: metricsServer?.port,
    async close() {
      renewal.stop();
      await Promise.all([server.close(), metricsServer?.close()]);
      await mail?.close();
      uninstallLastResort();
    },
  };
}
