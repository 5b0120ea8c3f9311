// `netserva-mail agent serve`: the gRPC server, the metrics endpoint and certificate renewal,
// wired from the agent's home.
import { inspectCertificate } from "../common/pki/inspect.ts";
import type { Logger } from "../common/log.ts";
import { createAppliedState } from "./server/applied-state.ts";
import { startAgentServer } from "./server/agent-server.ts";
import type { MailHostPort } from "./server/mail-port.ts";
import { createRevocations } from "./server/revocations.ts";
import { createAgentMetrics } from "./metrics/agent-metrics.ts";
import { startMetricsServer } from "./metrics/metrics-server.ts";
import { agentHomePaths, loadAgentIdentity } from "./home/agent-home.ts";
import { scheduleRenewal } from "./enroll/renewal.ts";
import { splitHostPort } from "./enroll/enroll.ts";

export const AGENT_VERSION = "0.1.0";

export interface AgentDaemonOptions {
  home: string;
  listen: string;
  metricsListen?: string;
  log: Logger;
  mailHost?: MailHostPort;
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
  const revocations = createRevocations({ file: paths.revocations });
  const metrics = createAgentMetrics({ vnode, version: AGENT_VERSION });
  const server = await startAgentServer({
    vnode,
    version: AGENT_VERSION,
    caPem: identity.caPem,
    certPem: identity.certPem,
    keyPem: identity.keyPem,
    certificateNotAfter: inspectCertificate(identity.certPem).notAfter,
    revocations,
    applied: createAppliedState({ file: paths.applied }),
    metrics,
    log,
    listen: options.listen,
    ...(options.mailHost ? { mailHost: options.mailHost } : {}),
  });
  const metricsServer = options.metricsListen
    ? await startMetricsServer({ registry: metrics.registry, caPem: identity.caPem, certPem: identity.certPem, keyPem: identity.keyPem, revocations, ...splitHostPort(options.metricsListen, "metrics-listen") })
    : undefined;
  const renewal = scheduleRenewal({
    identity,
    paths,
    log,
    onRenewed(certPem, keyPem, notAfter) {
      server.setIdentity(certPem, keyPem, notAfter);
      metricsServer?.setIdentity(certPem, keyPem);
    },
  });
  log.info("agent serving", { port: server.port, metrics_port: metricsServer?.port });
  return {
    vnode,
    port: server.port,
    metricsPort: metricsServer?.port,
    async close() {
      renewal.stop();
      await Promise.all([server.close(), metricsServer?.close()]);
    },
  };
}
