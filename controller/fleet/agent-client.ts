// The controller's client to one agent: grpc-js over mutual TLS with the controller's
// certificate. The agent must present a CA-issued certificate with the agent role for exactly
// this vnode, not revoked; otherwise the connection is refused before any call is made.
// A renewed controller certificate (setIdentity) opens a new channel for the calls that follow;
// the old one is closed once the calls and streams still on it have ended.
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
  /** New calls use this key and certificate (a new connection); calls under way finish on the old. */
  setIdentity(certPem: string, keyPem: string): void;
  close(): void;
}

/** One grpc-js channel and how many calls and streams still use it. */
interface Channel {
  client: Client & Record<string, unknown>;
  inFlight: number;
  retired: boolean;
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
  const open = (certPem: string, keyPem: string): Channel => {
    const credentials = ChannelCredentials.createSsl(
      Buffer.from(options.caPem),
      Buffer.from(keyPem),
      Buffer.from(certPem),
      { checkServerIdentity },
    );
    const client = new AgentGrpcClient(options.address, credentials, {
      "grpc.ssl_target_name_override": options.vnode,
      "grpc.default_authority": options.vnode,
      "grpc.max_receive_message_length": MAX_MESSAGE_BYTES,
      "grpc.max_send_message_length": MAX_MESSAGE_BYTES,
      "grpc.keepalive_time_ms": 10_000,
      "grpc.keepalive_timeout_ms": 5_000,
      "grpc.initial_reconnect_backoff_ms": 500,
      "grpc.max_reconnect_backoff_ms": 5_000,
    }) as Client & Record<string, unknown>;
    return { client, inFlight: 0, retired: false };
  };
  let active = open(options.certPem, options.keyPem);
  let closed = false;
  const take = (): Channel => {
    active.inFlight += 1;
    return active;
  };
  const release = (channel: Channel): void => {
    channel.inFlight -= 1;
    if (channel.retired && channel.inFlight === 0) channel.client.close();
  };
  return {
    call(method, request, callOptions) {
      const deadline = new Date(Date.now() + (callOptions?.timeoutMs ?? options.timeoutMs ?? 10_000));
      const channel = take();
      return new Promise((resolve, reject) => {
        const fn = channel.client[method] as (
          req: unknown,
          md: Metadata,
          opts: object,
          cb: (e: ServiceError | null, r: unknown) => void,
        ) => void;
        fn.call(channel.client, request, new Metadata(), { deadline }, (error, response) => {
          release(channel);
          if (error) reject(errorFromGrpc(error));
          else resolve(response as never);
        });
      });
    },
    watchHealth(request) {
      const channel = take();
      const fn = channel.client["watchHealth"] as (req: unknown) => ClientReadableStream<Output<"watchHealth">>;
      const stream = fn.call(channel.client, request);
      // 'status' comes once at the end of every stream, whether it ended, failed or was cancelled.
      stream.once("status", () => release(channel));
      return stream;
    },
    setIdentity(certPem, keyPem) {
      if (closed) return;
      const old = active;
      active = open(certPem, keyPem);
      old.retired = true;
      if (old.inFlight === 0) old.client.close();
    },
    close() {
      closed = true;
      active.client.close();
    },
  };
}

/** Expiry of a PEM certificate, for status displays. */
export function certificateNotAfter(pem: string): Date {
  return new Date(new X509Certificate(pem).validTo);
}
