// The controller's enrollment endpoint, served with Connect's Node adapter over HTTP/2 + TLS
// (gRPC protocol). Enroll needs no client certificate (the join token is the credential); Renew
// requires the agent's current certificate, which we read from the TLS socket and pass on as a
// context value (Connect handlers do not see the socket).
import { createSecureServer } from "node:http2";
import type { Http2SecureServer } from "node:http2";
import type { PeerCertificate, TLSSocket } from "node:tls";
import { Code, ConnectError, createContextKey, createContextValues } from "@connectrpc/connect";
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
import { createRateLimiter } from "./rate-limit.ts";
import { withChain } from "../pki/ca-files.ts";
import type { RateLimit } from "./rate-limit.ts";

const peerKey = createContextKey<{ authorized: boolean; certificate: PeerCertificate | undefined; address: string }>({
  authorized: false,
  certificate: undefined,
  address: "unknown",
});

/** Why a request was refused, for the controller's metrics. */
export type Refusal = "rate_limited" | "invalid" | "unauthenticated" | "permission_denied" | "other";

function refusalOf(reason: unknown): Refusal {
  const code = NetservaError.from(reason).code;
  if (code === "invalid_argument") return "invalid";
  if (code === "unauthenticated" || code === "permission_denied") return code;
  return "other";
}

/** How hard a client may knock. Enroll: refusals per source address (successes cost nothing, so a
 *  thousand agents enrolling from behind one address pass), attempts per join-token id. Renew:
 *  attempts per certificate identity, never per address. Nothing is keyed by address alone
 *  except refusals. Over all of them, one controller-wide cap on the requests that may cost a
 *  signature (Enroll and Renew past their own limits), so a flood spread over many tokens,
 *  certificates or addresses cannot take the controller's CPU: sized so a whole fleet enrolling
 *  or renewing at once (a thousand agents) passes. */
export interface EnrollmentLimits {
  enrollFailuresPerAddress: RateLimit;
  enrollAttemptsPerToken: RateLimit;
  renewAttemptsPerIdentity: RateLimit;
  /** Absent: DEFAULT_SIGNING_PER_CONTROLLER. */
  signingPerController?: RateLimit;
}

/** A thousand at once, then 200 a second: a signature costs about a millisecond. */
export const DEFAULT_SIGNING_PER_CONTROLLER: RateLimit = { burst: 1000, refillSeconds: 0.005 };

export const DEFAULT_ENROLLMENT_LIMITS: EnrollmentLimits = {
  enrollFailuresPerAddress: { burst: 20, refillSeconds: 3 },
  enrollAttemptsPerToken: { burst: 5, refillSeconds: 60 },
  renewAttemptsPerIdentity: { burst: 5, refillSeconds: 60 }, // at most; see below
  signingPerController: DEFAULT_SIGNING_PER_CONTROLLER,
};

/** The largest request body (a CSR is at most 16 KiB of PEM). */
const READ_MAX_BYTES = 64 * 1024;
/** A connection with no stream open for this long is closed. */
const IDLE_TIMEOUT_MS = 30_000;

function rateLimited(what: string, seconds: number): ConnectError {
  return new ConnectError(`too many ${what}: try again in ${seconds} s`, Code.ResourceExhausted);
}

function toConnectError(reason: unknown): ConnectError {
  const error = NetservaError.from(reason);
  const headers = error.field ? new Headers({ [FIELD_METADATA_KEY]: error.field }) : undefined;
  // Connect's codes are gRPC's status codes, number for number: one map serves both stacks.
  return new ConnectError(error.message, grpcStatusOf(error), headers);
}

/** What the endpoint signs with and presents; replaced whole when the CA rotates or the
 *  controller's certificate is renewed. */
export interface EnrollmentMaterial {
  ca: CaMaterial;
  certPem: string;
  keyPem: string;
  /** Sent after certPem (ca/chain.crt): lets an enrolling agent reach its pinned CA. */
  chainPem: string;
}

export interface EnrollmentServerOptions extends EnrollmentMaterial {
  db: Database;
  agentCertificateSeconds: number;
  log: Logger;
  host: string;
  port: number;
  limits?: EnrollmentLimits;
  /** Counts refusals (the controller's metrics). */
  onRefused?: (method: "enroll" | "renew", reason: Refusal) => void;
  /** Runs before each signature: several controllers make sure a CA step another one made has
   *  reached this one's material first, so an agent renewing here is not signed by the old CA. */
  beforeSign?: () => Promise<void>;
}

export interface EnrollmentServer {
  readonly port: number;
  /** New handshakes use it at once; open connections keep what they have. */
  setMaterial(material: EnrollmentMaterial): void;
  /** The certificate new TLS connections are shown. */
  readonly certPem: string;
  close(): Promise<void>;
}

export async function startEnrollmentServer(options: EnrollmentServerOptions): Promise<EnrollmentServer> {
  // An agent renews once per two thirds of its certificate's lifetime (retries a little more
  // often after a failure): short test lifetimes must not run into a limit made for days.
  const renewRefill = Math.min(60, Math.max(0.1, options.agentCertificateSeconds / 10));
  const limits = options.limits ?? {
    ...DEFAULT_ENROLLMENT_LIMITS,
    renewAttemptsPerIdentity: { burst: 5, refillSeconds: renewRefill },
  };
  const addressFailures = createRateLimiter(limits.enrollFailuresPerAddress);
  const tokenAttempts = createRateLimiter(limits.enrollAttemptsPerToken);
  const renewAttempts = createRateLimiter(limits.renewAttemptsPerIdentity);
  const signing = createRateLimiter(limits.signingPerController ?? DEFAULT_SIGNING_PER_CONTROLLER);
  const busy = (seconds: number): ConnectError =>
    rateLimited("enrollments and renewals at this controller right now", seconds);
  const refused = (method: "enroll" | "renew", reason: Refusal): void => options.onRefused?.(method, reason);
  let material: EnrollmentMaterial = options;

  const routes = (router: ConnectRouter): void => {
    router.service(EnrollmentService, {
      async enroll(request, context) {
        const { address } = context.values.get(peerKey);
        // Limits first: a refused request costs no database query and no signature operation.
        const addressWait = addressFailures.wait(address);
        if (addressWait > 0) {
          refused("enroll", "rate_limited");
          throw rateLimited("refused enrollments from this address", addressWait);
        }
        const tokenWait = tokenAttempts.take(`token:${request.token.split(".")[0]?.slice(0, 64) ?? ""}`);
        if (tokenWait > 0) {
          refused("enroll", "rate_limited");
          throw rateLimited("enrollment attempts with this join token", tokenWait);
        }
        const signingWait = signing.take("controller");
        if (signingWait > 0) {
          refused("enroll", "rate_limited");
          throw busy(signingWait);
        }
        const em = options.db.em();
        try {
          await options.beforeSign?.();
          const result = await audited(
            em,
            { actor: "agent", command: "agent enroll", args: { agent_version: request.agentVersion.slice(0, 32) } },
            () =>
              enrollAgent(em, material.ca, {
                token: request.token,
                csrPem: request.csrPem,
                validSeconds: options.agentCertificateSeconds,
              }),
          );
          options.log.info("agent enrolled", { vnode: result.vnode.name });
          return { vnode: result.vnode.name, certificatePem: result.certPem, caCertificatePem: material.ca.trustPem };
        } catch (reason) {
          addressFailures.take(address);
          refused("enroll", refusalOf(reason));
          options.log.warn("enrollment refused", { peer: address, error: NetservaError.from(reason).message });
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
          const wait = renewAttempts.take(identity.identity);
          if (wait > 0) {
            refused("renew", "rate_limited");
            throw rateLimited("renewals for this vnode", wait);
          }
          const signingWait = signing.take("controller");
          if (signingWait > 0) {
            refused("renew", "rate_limited");
            throw busy(signingWait);
          }
          if ((await revokedSerials(em)).includes(identity.serial))
            throw new NetservaError("permission_denied", `certificate ${identity.serial} is revoked`);
          await options.beforeSign?.();
          const certificatePem = await audited(
            em,
            { actor: `agent:${identity.identity}`, command: "agent renew", vnodeName: identity.identity },
            () =>
              renewAgent(em, material.ca, {
                vnodeName: identity.identity,
                serial: identity.serial,
                csrPem: request.csrPem,
                validSeconds: options.agentCertificateSeconds,
              }),
          );
          options.log.info("agent certificate renewed", { vnode: identity.identity });
          return { certificatePem, caBundlePem: material.ca.trustPem };
        } catch (reason) {
          if (reason instanceof ConnectError) throw reason;
          refused("renew", refusalOf(reason));
          options.log.warn("renewal refused", {
            peer: context.values.get(peerKey).address,
            error: NetservaError.from(reason).message,
          });
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
    readMaxBytes: READ_MAX_BYTES,
    contextValues(req) {
      const socket = "stream" in req ? (req.stream.session?.socket as TLSSocket | undefined) : undefined;
      const certificate = socket?.getPeerCertificate();
      const peer = {
        authorized: socket?.authorized === true,
        certificate: certificate && certificate.raw ? certificate : undefined,
        address: socket?.remoteAddress ?? "unknown",
      };
      return createContextValues().set(peerKey, peer);
    },
  });
  // The chain follows our certificate so an enrolling agent can check it against its pin.
  const tlsMaterial = (m: EnrollmentMaterial): { key: string; cert: string; ca: string } => ({
    key: m.keyPem,
    cert: withChain(m.certPem, m.chainPem),
    ca: m.ca.trustPem,
  });
  const server: Http2SecureServer = createSecureServer(
    {
      ...tlsMaterial(material),
      requestCert: true,
      rejectUnauthorized: false,
      minVersion: "TLSv1.2",
      handshakeTimeout: 10_000,
      // Bounds on what one client may hold: streams, headers, session memory (MB), bad frames.
      settings: { maxConcurrentStreams: 16, maxHeaderListSize: 16 * 1024 },
      maxHeaderListPairs: 64,
      maxSessionMemory: 4,
      maxSessionInvalidFrames: 100,
      maxSessionRejectedStreams: 100,
    },
    handler,
  );
  // With no 'timeout' listener, Node closes a session idle this long.
  server.setTimeout(IDLE_TIMEOUT_MS);
  // One client's broken session or stream ends that session, never the process.
  server.on("sessionError", (error, session) =>
    options.log.warn("enrollment session failed", {
      peer: session.socket?.remoteAddress ?? "unknown",
      error: error.message,
    }),
  );
  server.on("stream", (stream) => {
    // Handled streams get Connect's listeners too; this one keeps a stray error from the process.
    stream.on("error", (error) => options.log.warn("enrollment stream failed", { error: error.message }));
  });
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
  server.on("error", (error) => options.log.error("enrollment server failed", { error: error.message }));
  const address = server.address();
  return {
    port: typeof address === "object" && address ? address.port : options.port,
    get certPem() {
      return material.certPem;
    },
    setMaterial(next) {
      material = next;
      server.setSecureContext({ ...tlsMaterial(next), minVersion: "TLSv1.2" });
    },
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
