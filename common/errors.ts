// One error class for the whole project. `code` is the kind of failure (mapped to gRPC status
// codes in common/rpc/status.ts and to CLI exit codes in common/exit-codes.ts);
// `field` names the input that was refused, so every refusal can say which field was wrong.

export type ErrorCode =
  | "invalid_argument" // refused input: exit 1, gRPC INVALID_ARGUMENT
  | "usage" // command-line usage: exit 2
  | "not_found" // exit 3, gRPC NOT_FOUND
  | "already_exists" // conflict: exit 4, gRPC ALREADY_EXISTS
  | "failed_precondition" // conflict with current state: exit 4, gRPC FAILED_PRECONDITION
  | "unauthenticated" // exit 5 (cannot talk to the peer), gRPC UNAUTHENTICATED
  | "permission_denied" // exit 5, gRPC PERMISSION_DENIED
  | "unavailable" // controller or vnode unreachable: exit 5, gRPC UNAVAILABLE
  | "deadline_exceeded" // exit 5, gRPC DEADLINE_EXCEEDED
  | "internal"; // exit 1... a bug: exit 70, gRPC INTERNAL

export class NetservaError extends Error {
  override readonly name = "NetservaError";
  readonly code: ErrorCode;
  readonly field: string | undefined;

  constructor(code: ErrorCode, message: string, options: { field?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.field = options.field;
  }

  /** Normalise anything thrown into a NetservaError; unknown errors become `internal`. */
  static from(reason: unknown, fallback: ErrorCode = "internal"): NetservaError {
    if (reason instanceof NetservaError) return reason;
    if (reason instanceof Error) return new NetservaError(fallback, reason.message, { cause: reason });
    return new NetservaError(fallback, String(reason));
  }
}

/** Refused input: the message names the field and says what is allowed. */
export function invalid(field: string, message: string): NetservaError {
  return new NetservaError("invalid_argument", `${field}: ${message}`, { field });
}

export function notFound(message: string): NetservaError {
  return new NetservaError("not_found", message);
}

export function conflict(
  message: string,
  code: "already_exists" | "failed_precondition" = "already_exists",
): NetservaError {
  return new NetservaError(code, message);
}
