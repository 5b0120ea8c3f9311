// The one place where our error codes meet gRPC status codes, in both directions, for both gRPC
// stacks (grpc-js on the agent channel, Connect on enrollment: the same numbers).
import { status as GrpcStatus } from "@grpc/grpc-js";
import type { ServiceError } from "@grpc/grpc-js";
import { NetservaError } from "../errors.ts";
import type { ErrorCode } from "../errors.ts";

const toGrpc: Record<ErrorCode, GrpcStatus> = {
  invalid_argument: GrpcStatus.INVALID_ARGUMENT,
  usage: GrpcStatus.INVALID_ARGUMENT,
  not_found: GrpcStatus.NOT_FOUND,
  already_exists: GrpcStatus.ALREADY_EXISTS,
  failed_precondition: GrpcStatus.FAILED_PRECONDITION,
  unauthenticated: GrpcStatus.UNAUTHENTICATED,
  permission_denied: GrpcStatus.PERMISSION_DENIED,
  unavailable: GrpcStatus.UNAVAILABLE,
  deadline_exceeded: GrpcStatus.DEADLINE_EXCEEDED,
  internal: GrpcStatus.INTERNAL,
};

const fromGrpc = new Map<number, ErrorCode>([
  [GrpcStatus.INVALID_ARGUMENT, "invalid_argument"],
  [GrpcStatus.OUT_OF_RANGE, "invalid_argument"],
  [GrpcStatus.RESOURCE_EXHAUSTED, "invalid_argument"],
  [GrpcStatus.NOT_FOUND, "not_found"],
  [GrpcStatus.ALREADY_EXISTS, "already_exists"],
  [GrpcStatus.FAILED_PRECONDITION, "failed_precondition"],
  [GrpcStatus.ABORTED, "failed_precondition"],
  [GrpcStatus.UNAUTHENTICATED, "unauthenticated"],
  [GrpcStatus.PERMISSION_DENIED, "permission_denied"],
  [GrpcStatus.UNAVAILABLE, "unavailable"],
  [GrpcStatus.CANCELLED, "unavailable"],
  [GrpcStatus.DEADLINE_EXCEEDED, "deadline_exceeded"],
]);

/** Header carrying the refused field's name, so the field survives the wire. */
export const FIELD_METADATA_KEY = "netserva-field";

/** The gRPC status code of an error; Connect's `Code` uses the same numbers. */
export function grpcStatusOf(error: NetservaError): number {
  return toGrpc[error.code];
}

/** Connect percent-encodes grpc-message like encodeURIComponent; grpc-js decodes it like decodeURI,
 *  which leaves reserved characters escaped ("token%3A …"). Whatever is left is undone here. */
function undoPercentEncoding(text: string): string {
  if (!/%[0-9A-Fa-f]{2}/.test(text)) return text;
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

export function errorFromGrpc(error: unknown): NetservaError {
  if (error instanceof NetservaError) return error;
  const serviceError = error as Partial<ServiceError>;
  if (typeof serviceError.code === "number") {
    const code = fromGrpc.get(serviceError.code) ?? "internal";
    const fieldValue = serviceError.metadata?.get(FIELD_METADATA_KEY)[0];
    const field = typeof fieldValue === "string" ? fieldValue : undefined;
    const message = undoPercentEncoding(serviceError.details || serviceError.message || "call failed");
    return new NetservaError(code, message, field === undefined ? { cause: error } : { field, cause: error });
  }
  return NetservaError.from(error);
}
