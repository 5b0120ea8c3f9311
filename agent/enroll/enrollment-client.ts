// The agent's grpc-js client to the controller's enrollment service (a Connect server: two
// independent gRPC implementations on the wire). The controller must show the controller role.
import type { PeerCertificate } from "node:tls";
import { ChannelCredentials, Metadata, makeGenericClientConstructor } from "@grpc/grpc-js";
import type { Client, ServiceError } from "@grpc/grpc-js";
import { EnrollmentService } from "../../common/gen/netserva/mail/v1/enrollment_pb.ts";
import type {
  EnrollRequest,
  EnrollResponse,
  RenewRequest,
  RenewResponse,
} from "../../common/gen/netserva/mail/v1/enrollment_pb.ts";
import { roleFromSubjectAltName } from "../../common/identity/peer.ts";
import { grpcServiceDefinition } from "../../common/rpc/grpc-service.ts";
import { errorFromGrpc } from "../../common/rpc/status.ts";

const EnrollmentGrpcClient = makeGenericClientConstructor(
  grpcServiceDefinition(EnrollmentService),
  EnrollmentService.typeName,
);

export interface EnrollmentClient {
  enroll(request: EnrollRequest): Promise<EnrollResponse>;
  renew(request: RenewRequest): Promise<RenewResponse>;
  close(): void;
}

export function createEnrollmentClient(options: {
  address: string;
  caPem: string;
  certPem?: string;
  keyPem?: string;
  timeoutMs?: number;
  /** Only this controller certificate (enrolling: the one checked against the join token's pin). */
  expectFingerprint256?: string;
}): EnrollmentClient {
  const checkServerIdentity = (_host: string, cert: PeerCertificate): Error | undefined => {
    if (roleFromSubjectAltName(cert.subjectaltname)?.role !== "controller")
      return new Error("peer is not a netserva-mail controller");
    if (options.expectFingerprint256 !== undefined && cert.fingerprint256 !== options.expectFingerprint256)
      return new Error("controller certificate changed since it was checked against the join token's pin");
    return undefined;
  };
  const credentials = ChannelCredentials.createSsl(
    Buffer.from(options.caPem),
    options.keyPem ? Buffer.from(options.keyPem) : null,
    options.certPem ? Buffer.from(options.certPem) : null,
    { checkServerIdentity },
  );
  const client = new EnrollmentGrpcClient(options.address, credentials, {
    "grpc.ssl_target_name_override": "localhost",
  }) as Client & Record<string, unknown>;
  const unary = <Req, Res>(method: string, request: Req): Promise<Res> =>
    new Promise((resolve, reject) => {
      const fn = client[method] as (
        req: Req,
        md: Metadata,
        opts: object,
        cb: (e: ServiceError | null, r: Res) => void,
      ) => void;
      fn.call(
        client,
        request,
        new Metadata(),
        { deadline: new Date(Date.now() + (options.timeoutMs ?? 15_000)) },
        (error, response) => (error ? reject(errorFromGrpc(error)) : resolve(response)),
      );
    });
  return {
    enroll: (request) => unary("enroll", request),
    renew: (request) => unary("renew", request),
    close: () => client.close(),
  };
}
