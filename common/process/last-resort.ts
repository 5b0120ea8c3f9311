// The net under every connection handler of a daemon. Each socket and stream has its own 'error'
// handler (that is the fix); this only catches what one of them missed, so a service manager does
// not restart the whole controller because one client hung up. Every catch is logged and counted
// (a metric the tests require to stay at zero). A rejected promise nobody awaited, or an error
// event from a connection (reset, broken pipe, TLS or HTTP/2 failure), leaves the process's state
// as it was: keep serving. Anything else may have left it half-changed: exit non-zero, so the
// service manager restarts a clean process.
import type { Logger } from "../log.ts";

export type LastResortKind = "uncaught_exception" | "unhandled_rejection";

export interface LastResortOptions {
  log: Logger;
  /** Called on every catch, before the decision to go on or exit (count it). */
  onCatch(kind: LastResortKind): void;
  /** How to stop when it is not safe to go on (tests pass their own). */
  exit?: (code: number) => void;
}

const CONNECTION_CODES = new Set(["ECONNRESET", "EPIPE", "ECONNABORTED", "ETIMEDOUT", "ECANCELED", "EHOSTUNREACH"]);

/** An error that belongs to one connection: the peer is gone, the process is intact. */
export function isConnectionError(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const code: unknown = Reflect.get(error, "code");
  if (typeof code !== "string") return false;
  return (
    CONNECTION_CODES.has(code) ||
    code.startsWith("ERR_STREAM_") ||
    code.startsWith("ERR_HTTP2_") ||
    code.startsWith("ERR_SSL_") ||
    code.startsWith("ERR_TLS_")
  );
}

function describe(error: unknown): Record<string, unknown> {
  if (!(error instanceof Error)) return { error: String(error) };
  const code: unknown = Reflect.get(error, "code");
  return { error: error.message, code: typeof code === "string" ? code : null, stack: error.stack ?? null };
}

/** Installs the handlers; returns a function that removes them. */
export function installLastResort(options: LastResortOptions): () => void {
  const exit = options.exit ?? ((code: number) => process.exit(code));
  const onException = (error: unknown): void => {
    options.onCatch("uncaught_exception");
    if (isConnectionError(error)) {
      options.log.error("last resort: uncaught connection error, still serving", describe(error));
      return;
    }
    options.log.error("last resort: uncaught exception, exiting for a clean restart", describe(error));
    exit(70);
  };
  const onRejection = (reason: unknown): void => {
    options.onCatch("unhandled_rejection");
    options.log.error("last resort: unhandled promise rejection, still serving", describe(reason));
  };
  process.on("uncaughtException", onException);
  process.on("unhandledRejection", onRejection);
  return () => {
    process.off("uncaughtException", onException);
    process.off("unhandledRejection", onRejection);
  };
}
