// A socket read as protocol lines with a deadline on every wait, for the SMTP and IMAP probes.
// Failures become NetservaErrors whose message says what happened (refused, timeout, reset), so
// each step can report why it failed instead of hanging.
import { connect as tcpConnect, type Socket } from "node:net";
import { connect as tlsConnect, type ConnectionOptions, type TLSSocket } from "node:tls";
import { NetservaError } from "../errors.ts";

export interface LineSocket {
  readonly socket: Socket | TLSSocket;
  /** Resolves with the next lines once `complete(lines)` says a whole reply is there. */
  readUntil(complete: (lines: string[]) => boolean, timeoutMs: number, what: string): Promise<string[]>;
  write(text: string): void;
  /** Wraps the connection in TLS (STARTTLS); the handshake is bounded by timeoutMs. */
  upgrade(options: ConnectionOptions, timeoutMs: number): Promise<TLSSocket>;
  close(): void;
}

/** Names a socket error the way an operator reads it. */
export function describeSocketError(error: NodeJS.ErrnoException, where: string): NetservaError {
  const reason =
    error.code === "ECONNREFUSED"
      ? "connection refused"
      : error.code === "ECONNRESET"
        ? "connection reset by peer"
        : error.code === "EHOSTUNREACH" || error.code === "ENETUNREACH"
          ? "host unreachable"
          : error.code === "ETIMEDOUT"
            ? "timed out"
            : error.message;
  return new NetservaError("unavailable", `${where}: ${reason}`, { cause: error });
}

/** Runs `start` with a deadline. Its cleanup learns whether the deadline passed: a socket still
 * connecting or handshaking then is destroyed there, never left without an 'error' listener (a
 * late reset on it would otherwise be an uncaught error that ends the whole process). */
function bounded<T>(
  timeoutMs: number,
  what: string,
  start: (resolve: (v: T) => void, reject: (e: unknown) => void) => (timedOut: boolean) => void,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let cleanup = (_timedOut: boolean): void => undefined;
    const timer = setTimeout(() => {
      cleanup(true);
      reject(new NetservaError("deadline_exceeded", `${what}: timeout after ${timeoutMs} ms`));
    }, timeoutMs);
    cleanup = start(
      (v) => {
        clearTimeout(timer);
        cleanup(false);
        resolve(v);
      },
      (e) => {
        clearTimeout(timer);
        cleanup(false);
        reject(e);
      },
    );
  });
}

/** Detaches a pending socket's error handler; past the deadline, also ends the socket for good. */
function release(s: Socket | TLSSocket, onError: (e: NodeJS.ErrnoException) => void, timedOut: boolean): void {
  if (timedOut) {
    s.on("error", () => undefined);
    s.destroy();
  }
  s.off("error", onError);
}

/** What a probe keeps of a server's unanswered output: an SMTP reply line is at most 512 bytes,
 *  a whole EHLO answer a few kB. A server that sends more without completing a reply is cut off. */
export const MAX_BUFFER_BYTES = 256 * 1024;

export async function openLineSocket(o: {
  host: string;
  port: number;
  timeoutMs: number;
  tls?: ConnectionOptions;
  maxBufferBytes?: number;
}): Promise<LineSocket> {
  const where = `${o.host}:${o.port}`;
  const raw = await bounded<Socket>(o.timeoutMs, `connect to ${where}`, (resolve, reject) => {
    const s = o.tls ? tlsConnect({ ...o.tls, host: o.host, port: o.port }) : tcpConnect({ host: o.host, port: o.port });
    const onError = (e: NodeJS.ErrnoException): void => {
      s.destroy();
      reject(describeSocketError(e, `connect to ${where}`));
    };
    s.once(o.tls ? "secureConnect" : "connect", () => resolve(s));
    s.once("error", onError);
    return (timedOut) => release(s, onError, timedOut);
  });
  return wrap(raw, where, o.maxBufferBytes ?? MAX_BUFFER_BYTES);
}

function wrap(initial: Socket | TLSSocket, where: string, maxBufferBytes: number): LineSocket {
  let socket: Socket | TLSSocket = initial;
  let buffer = "";
  let ended: NetservaError | undefined;
  let wake: (() => void) | undefined;
  const attach = (s: Socket | TLSSocket): void => {
    s.setEncoding("latin1");
    s.on("data", (d: string) => {
      if (ended) return;
      // latin1: one character per byte, so the length is the byte count.
      if (buffer.length + d.length > maxBufferBytes) {
        ended = new NetservaError(
          "unavailable",
          `${where}: the server sent over ${maxBufferBytes} bytes without completing a reply`,
        );
        buffer = "";
        s.destroy();
      } else buffer += d;
      wake?.();
    });
    s.on("error", (e: NodeJS.ErrnoException) => {
      ended = describeSocketError(e, where);
      wake?.();
    });
    s.on("close", () => {
      ended ??= new NetservaError("unavailable", `${where}: connection closed by the server`);
      wake?.();
    });
  };
  attach(socket);
  return {
    get socket() {
      return socket;
    },
    readUntil(complete, timeoutMs, what) {
      return bounded<string[]>(timeoutMs, what, (resolve, reject) => {
        const check = (): void => {
          const end = buffer.lastIndexOf("\n");
          if (end >= 0) {
            const lines = buffer
              .slice(0, end)
              .split("\n")
              .map((l) => l.replace(/\r$/, ""));
            if (complete(lines)) {
              buffer = buffer.slice(end + 1);
              resolve(lines);
              return;
            }
          }
          if (ended) reject(ended);
        };
        wake = check;
        check();
        return () => {
          wake = undefined;
        };
      });
    },
    write(text) {
      socket.write(text);
    },
    async upgrade(options, timeoutMs) {
      const plain = socket;
      plain.removeAllListeners("data");
      plain.removeAllListeners("close");
      plain.removeAllListeners("error");
      // The TLS socket reports the connection's errors from here on; the plain one must not throw.
      plain.on("error", () => undefined);
      const secure = await bounded<TLSSocket>(timeoutMs, "TLS handshake", (resolve, reject) => {
        const s = tlsConnect({ ...options, socket: plain });
        const onError = (e: NodeJS.ErrnoException): void => reject(describeSocketError(e, "TLS handshake"));
        s.once("secureConnect", () => resolve(s));
        s.once("error", onError);
        return (timedOut) => release(s, onError, timedOut);
      });
      socket = secure;
      attach(secure);
      return secure;
    },
    close() {
      socket.destroy();
    },
  };
}
