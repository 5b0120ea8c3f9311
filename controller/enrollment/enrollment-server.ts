// The controller's enrollment endpoint, served with Connect's Node adapter over HTTP/2 + TLS
// (gRPC protocol). Enroll needs no client certificate (the join token is the credential); Renew
// requires the agent's current certificate, which we read from the TLS socket and pass on as a
// context value (Connect handlers do not see the socket).
import { createSecureServer } from "node:http2";
import type { Http2SecureServer } from "node:http2";
import type { PeerCertificate, TLSSocket } from "node:tls";
import { ConnectError, createContextKey, createContextValues } from "@connectrpc/connect";
import type { ConnectRouter } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { EnrollmentService } from "../../common/gen/netserva/mail/v1/enrollment_pb.ts";
import { NetservaError } from "../../common/errors.ts";
import { peerIdentity } from "../../common/identity/peer.ts";
import type { Logger } from "../../common/log.ts";
import { FIELD_METADATA_KEY, grpcStatusOf } from "../../common/rpc/status.ts";
import type { Database } from "../db/open-database.ts";
import { revokedSerials } from "../pki/certificate-records.ts";
import { audited } from "../audit/audit.ts";
import { enrollAgent, renewAgent } from "./enroll-agent.ts";
import type { CaMaterial } from "./enroll-agent.ts";

const peerKey = createContextKey<{ authorized: boolean; certificate: PeerCertificate | undefined }>({
  authorized: false,
  certificate: undefined,
});

function toConnectError(reason: unknown): ConnectError {
  const error = NetservaError.from(reason);
  const headers = error.field ? new Headers({ [FIELD_METADATA_KEY]: error.field }) : undefined;
  // Connect's codes are gRPC's status codes, number for number: one map serves both stacks.
  return new ConnectError(error.message, grpcStatusOf(error), headers);
}

export interface EnrollmentServerOptions {
  db: Database;
  ca: CaMaterial;
  certPem: string;
  keyPem: string;
  agentCertificateSeconds: number;
  log: Logger;
  host: string;
  port: number;
}

export interface EnrollmentServer {
  readonly port: number;
  close(): Promise<void>;
}

export async function startEnrollmentServer(options: EnrollmentServerOptions): Promise<EnrollmentServer> {
  const routes = (router: ConnectRouter): void => {
    router.service(EnrollmentService, {
      async enroll(request) {
        const em = options.db.em();
        try {
          const result = await audited(
            em,
            { actor: "agent", command: "agent enroll", args: { agent_version: request.agentVersion.slice(0, 32) } },
            () =>
              enrollAgent(em, options.ca, {
                token: request.token,
                csrPem: request.csrPem,
                validSeconds: options.agentCertificateSeconds,
              }),
          );
          options.log.info("agent enrolled", { vnode: result.vnode.name });
          return { vnode: result.vnode.name, certificatePem: result.certPem, caCertificatePem: options.ca.caCertPem };
        } catch (reason) {
          options.log.warn("enrollment refused", { error: NetservaError.from(reason).message });
          throw toConnectError(reason);
        }
      },
      async renew(request, context) {
        const em = options.db.em();
        try {
          const peer = context.values.get(peerKey);
          if (!peer.authorized || !peer.certificate)
            throw new NetservaError("unauthenticated", "renewal needs the agent's current certificate");
          const identity = peerIdentity(peer.certificate);
          if (identity.role !== "agent")
            throw new NetservaError("permission_denied", `a ${identity.role} certificate cannot renew an agent`);
          if ((await revokedSerials(em)).includes(identity.serial))
            throw new NetservaError("permission_denied", `certificate ${identity.serial} is revoked`);
          const certificatePem = await audited(
            em,
            { actor: `agent:${identity.identity}`, command: "agent renew", vnodeName: identity.identity },
            () =>
              renewAgent(em, options.ca, {
                vnodeName: identity.identity,
                serial: identity.serial,
                csrPem: request.csrPem,
                validSeconds: options.agentCertificateSeconds,
              }),
          );
          options.log.info("agent certificate renewed", { vnode: identity.identity });
          return { certificatePem };
        } catch (reason) {
          options.log.warn("renewal refused", { error: NetservaError.from(reason).message });
          throw toConnectError(reason);
        }
      },
    });
  };
  const handler = connectNodeAdapter({
    routes,
    grpc: true,
    connect: false,
    grpcWeb: false,
    readMaxBytes: 1024 * 1024,
    contextValues(req) {
      const socket = "stream" in req ? (req.stream.session?.socket as TLSSocket | undefined) : undefined;
      const certificate = socket?.getPeerCertificate();
      const peer = {
        authorized: socket?.authorized === true,
        certificate: certificate && certificate.raw ? certificate : undefined,
      };
      return createContextValues().set(peerKey, peer);
    },
  });
  const server: Http2SecureServer = createSecureServer(
    {
      key: options.keyPem,
      // Send the CA after our certificate so an enrolling agent can check it against its pin.
      cert: options.certPem + (options.certPem.endsWith("\n") ? "" : "\n") + options.ca.caCertPem,
      ca: options.ca.caCertPem,
      requestCert: true,
      rejectUnauthorized: false,
      minVersion: "TLSv1.2",
    },
    handler,
  );
  server.on("tlsClientError", (error) =>
    options.log.warn("enrollment TLS handshake refused", { error: error.message }),
  );
  await new Promise<void>((resolve, reject) => {
    server.once("error", (error) =>
      reject(
        new NetservaError("unavailable", `cannot listen on ${options.host}:${options.port}: ${error.message}`, {
          field: "listen",
        }),
      ),
    );
    server.listen(options.port, options.host, () => resolve());
  });
  const address = server.address();
  return {
    port: typeof address === "object" && address ? address.port : options.port,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
