// A database that cannot be reached is not a bug in the command that needed it: the operator is
// told the database is unreachable (exit 5, like any other unreachable peer) instead of seeing a
// driver's message with exit 70. Recognised by the driver's error codes and messages (pg, knex's
// pool, MikroORM's ConnectionException), since they come from three layers. By name, not by class:
// the CLI's error path must not load MikroORM.
import { NetservaError } from "../../common/errors.ts";

const SOCKET_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EPIPE",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
  "57P01", // admin_shutdown: the server is stopping
  "57P02", // crash_shutdown
  "57P03", // cannot_connect_now: starting up or shutting down
]);

const MESSAGES = [
  /connection terminated/i,
  /timeout acquiring a connection/i,
  /timeout exceeded when trying to connect/i, // pg-pool: connectionTimeoutMillis
  /Query read timeout/i, // pg: query_timeout
  /Connection terminated due to connection timeout/i,
  /^timeout expired$/i, // pg's own Client (the migration lock's connection): connectionTimeoutMillis
  /connection error/i,
  /the database system is (starting up|shutting down)/i,
  /Connection ended unexpectedly/i,
];

function connectionFailure(error: unknown, depth = 0): boolean {
  if (!(error instanceof Error) || depth > 4) return false;
  if (error.name === "ConnectionException") return true;
  const code: unknown = Reflect.get(error, "code");
  if (typeof code === "string" && SOCKET_CODES.has(code)) return true;
  if (MESSAGES.some((m) => m.test(error.message))) return true;
  const errors: unknown = Reflect.get(error, "errors"); // AggregateError: one per address tried
  if (Array.isArray(errors) && errors.some((e) => connectionFailure(e, depth + 1))) return true;
  return connectionFailure(error.cause, depth + 1);
}

/** The error as the CLI reports it: an unreachable database becomes `unavailable` (exit 5). */
export function asDatabaseError(reason: unknown): NetservaError {
  if (reason instanceof NetservaError && reason.code !== "internal") return reason;
  if (!connectionFailure(reason instanceof NetservaError ? (reason.cause ?? reason) : reason))
    return NetservaError.from(reason);
  const detail = reason instanceof Error ? reason.message : String(reason);
  return new NetservaError("unavailable", `the database is unreachable: ${detail}`, {
    cause: reason,
  });
}
