// The controller's client to one agent: grpc-js over mutual TLS with the controller's
// certificate. The agent must present a CA-issued certificate with the agent role for exactly
// this vnode, not revoked; otherwise the connection is refused before any call is made.
import { X509Certificate } from "node:crypto";
import type { PeerCertificate } from "node:tls";
import { ChannelCredentials, Metadata, makeGenericClientConstructor } from "@grpc/grpc-js";
import type { Client, ClientReadableStream, ServiceError } from "@grpc/grpc-js";
import type { DescMessage, MessageShape } from "@bufbuild/protobuf";
import { AgentService } from "../../common/gen/netserva/mail/v1/agent_pb.ts";
import { roleFromSubjectAltName, normalizeSerial } from "../../common/identity/peer.ts";
import { grpcServiceDefinition } from "../../common/rpc/grpc-service.ts";
import { errorFromGrpc } from "../../common/rpc/status.ts";
import { MAX_MESSAGE_BYTES } from "../../common/rpc/limits.ts";

type Methods = typeof AgentService.method;
type Input<K extends keyof Methods> = MessageShape<Methods[K]["input"] & DescMessage>;
type Output<K extends keyof Methods> = MessageShape<Methods[K]["output"] & DescMessage>;

export interface AgentClientOptions {
  vnode: string;
  /** host:port the agent listens on */
  address: string;
  caPem: string;
  certPem: string;
  keyPem: string;
  isRevoked?: (serial: string) => boolean;
  /** Per-call deadline in ms (default 10 s). */
  timeoutMs?: number;
}

export interface AgentClient {
  call<K extends Exclude<keyof Methods, "watchHealth">>(
    method: K,
    request: Input<K>,
    options?: { timeoutMs?: number },
  ): Promise<Output<K>>;
  watchHealth(request: Input<"watchHealth">): ClientReadableStream<Output<"watchHealth">>;
  close(): void;
}

const AgentGrpcClient = makeGenericClientConstructor(grpcServiceDefinition(AgentService), AgentService.typeName);

export function createAgentClient(options: AgentClientOptions): AgentClient {
  const checkServerIdentity = (_host: string, cert: PeerCertificate): Error | undefined => {
    const role = roleFromSubjectAltName(cert.subjectaltname);
    if (!role || role.role !== "agent")
      return new Error(`peer is not an agent (certificate role ${role?.role ?? "none"})`);
    if (role.identity !== options.vnode)
      return new Error(`peer is agent '${role.identity}', expected '${options.vnode}'`);
    if (options.isRevoked?.(normalizeSerial(cert.serialNumber)))
      return new Error(`agent certificate ${cert.serialNumber} is revoked`);
    return undefined;
  };
  const credentials = ChannelCredentials.createSsl(
    Buffer.from(options.caPem),
    Buffer.from(options.keyPem),
    Buffer.from(options.certPem),
    { checkServerIdentity },
  );
  const client: Client & Record<string, unknown> = new AgentGrpcClient(options.address, credentials, {
    "grpc.ssl_target_name_override": options.vnode,
    "grpc.default_authority": options.vnode,
    "grpc.max_receive_message_length": MAX_MESSAGE_BYTES,
    "grpc.max_send_message_length": MAX_MESSAGE_BYTES,
    "grpc.keepalive_time_ms": 10_000,
    "grpc.keepalive_timeout_ms": 5_000,
    "grpc.initial_reconnect_backoff_ms": 500,
    "grpc.max_reconnect_backoff_ms": 5_000,
  }) as Client & Record<string, unknown>;
  return {
    call(method, request, callOptions) {
      const deadline = new Date(Date.now() + (callOptions?.timeoutMs ?? options.timeoutMs ?? 10_000));
      return new Promise((resolve, reject) => {
        const fn = client[method] as (
          req: unknown,
          md: Metadata,
          opts: object,
          cb: (e: ServiceError | null, r: unknown) => void,
        ) => void;
        fn.call(client, request, new Metadata(), { deadline }, (error, response) => {
          if (error) reject(errorFromGrpc(error));
          else resolve(response as never);
        });
      });
    },
    watchHealth(request) {
      const fn = client["watchHealth"] as (req: unknown) => ClientReadableStream<Output<"watchHealth">>;
      return fn.call(client, request);
    },
    close: () => client.close(),
  };
}

/** Expiry of a PEM certificate, for status displays. */
export function certificateNotAfter(pem: string): Date {
  return new Date(new X509Certificate(pem).validTo);
}
