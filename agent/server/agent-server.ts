// The agent's gRPC server: AgentService + grpc.health.v1 over mutual TLS (grpc-js), requiring a
// client certificate from the controller's CA on every connection.
import { connect } from "node:tls";
import { Server, experimental } from "@grpc/grpc-js";
import type { ServerCredentials, ServiceDefinition } from "@grpc/grpc-js";
import { AgentService } from "../../common/gen/netserva/mail/v1/agent_pb.ts";
import { Health } from "../../common/gen/grpc/health/v1/health_pb.ts";
import { NetservaError } from "../../common/errors.ts";
import type { Logger } from "../../common/log.ts";
import { createCertificateSource } from "../../common/rpc/certificate-source.ts";
import { grpcServiceDefinition } from "../../common/rpc/grpc-service.ts";
import type { AgentMetrics } from "../metrics/agent-metrics.ts";
import type { AppliedState } from "./applied-state.ts";
import { createAgentService } from "./agent-service.ts";
import { createHealthService } from "./health-service.ts";
import { decodeApplyStateLater } from "./state-in-turns.ts";
import type { MailHostPort } from "./mail-port.ts";
import { MAX_MESSAGE_BYTES } from "../../common/rpc/limits.ts";
import { createRequestRecord } from "./request-record.ts";
import type { Revocations } from "./revocations.ts";
import type { LeaseFence } from "./lease-fence.ts";
import type { TrustUpdate } from "../enroll/trust-update.ts";
import type { SwitchableMail } from "./switchable-mail.ts";

export interface AgentServerOptions {
  vnode: string;
  version: string;
  caPem: string;
  certPem: string;
  keyPem: string;
  certificateNotAfter: Date;
  revocations: Revocations;
  applied: AppliedState;
  /** The lease fence (absent: none, every epoch passes). */
  fence?: LeaseFence;
  metrics: AgentMetrics;
  log: Logger;
  mailHost?: MailHostPort;
  /** The managed/unmanaged switch of the mail host (SetManagement). */
  mail?: SwitchableMail;
  /** NetServa's sysadm DB the inventory reads by default. */
  sysadmDb?: string;
  trust?: TrustUpdate;
  /** host:port; port 0 picks a free one */
  listen: string;
}

/** The TLS context arrives through the certificate provider a tick after bind: wait for a handshake. */
async function awaitTlsReady(
  listen: string,
  port: number,
  identity: { caPem: string; certPem: string; keyPem: string },
): Promise<void> {
  const rawHost = listen.slice(0, listen.lastIndexOf(":")).replace(/^\[|\]$/g, "");
  const host = rawHost === "0.0.0.0" || rawHost === "" ? "127.0.0.1" : rawHost === "::" ? "::1" : rawHost;
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect({
        host,
        port,
        ca: identity.caPem,
        cert: identity.certPem,
        key: identity.keyPem,
        rejectUnauthorized: false,
        ALPNProtocols: ["h2"],
      });
      socket.once("secureConnect", () => {
        socket.destroy();
        resolve(true);
      });
      socket.once("error", () => resolve(false));
    });
    if (ok) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new NetservaError("unavailable", `agent: TLS on port ${port} did not come up`);
}

export interface AgentServer {
  readonly port: number;
  setIdentity(certPem: string, keyPem: string, notAfter: Date): void;
  setCa(caPem: string): void;
  close(): Promise<void>;
}

/** ApplyState's rows are decoded by its handler, in turns (state-in-turns.ts). */
function agentServiceDefinition(): ServiceDefinition {
  const definition = grpcServiceDefinition(AgentService);
  const applyState = definition["applyState"];
  if (!applyState) throw new NetservaError("internal", "AgentService has no applyState method");
  return { ...definition, applyState: { ...applyState, requestDeserialize: decodeApplyStateLater } };
}

export async function startAgentServer(options: AgentServerOptions): Promise<AgentServer> {
  const source = createCertificateSource(options);
  let notAfter = options.certificateNotAfter;
  let serving = true;
  options.metrics.setCertificateExpiry(notAfter);
  options.metrics.setAppliedGeneration(Number(options.applied.generation));

  const server = new Server({
    "grpc.max_receive_message_length": MAX_MESSAGE_BYTES,
    "grpc.max_send_message_length": MAX_MESSAGE_BYTES,
    "grpc.keepalive_time_ms": 10_000,
    "grpc.keepalive_timeout_ms": 5_000,
    "grpc.keepalive_permit_without_calls": 1,
    "grpc.http2.min_ping_interval_without_data_ms": 4_000,
  });
  server.addService(
    agentServiceDefinition(),
    createAgentService({
      vnode: options.vnode,
      version: options.version,
      applied: options.applied,
      mailHost: options.mailHost,
      ...(options.mail ? { mail: options.mail } : {}),
      ...(options.sysadmDb ? { sysadmDb: options.sysadmDb } : {}),
      certificateNotAfter: () => notAfter,
      revocations: options.revocations,
      record: createRequestRecord(),
      metrics: options.metrics,
      log: options.log,
      ...(options.trust ? { trust: options.trust } : {}),
      ...(options.fence ? { fence: options.fence } : {}),
    }),
  );
  server.addService(
    grpcServiceDefinition(Health),
    createHealthService(() => serving),
  );

  const credentials: ServerCredentials = experimental.createCertificateProviderServerCredentials(source, source, true);
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(options.listen, credentials, (error, boundPort) => {
      if (error)
        reject(
          new NetservaError("unavailable", `agent: cannot listen on ${options.listen}: ${error.message}`, {
            field: "listen",
          }),
        );
      else resolve(boundPort);
    });
  });
  await awaitTlsReady(options.listen, port, options);
  return {
    port,
    setIdentity(certPem, keyPem, newNotAfter) {
      source.setIdentity(certPem, keyPem);
      notAfter = newNotAfter;
      options.metrics.setCertificateExpiry(newNotAfter);
    },
    setCa: (caPem) => source.setCa(caPem),
    close: () =>
      new Promise((resolve) => {
        serving = false;
        server.tryShutdown(() => resolve());
        // Streams (health watches) would hold a graceful shutdown open forever.
        setTimeout(() => server.forceShutdown(), 2000).unref();
      }),
  };
}
