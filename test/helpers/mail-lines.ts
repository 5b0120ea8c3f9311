// A CRLF line reader over TCP or TLS, with STARTTLS upgrade and a deadline on every read: the
// shared transport of the tiny POP3 and ManageSieve clients. Server certificates are verified
// against the test CA and the mail host name, as a real client would.
import { connect as tcp, type Socket } from "node:net";
import { connect as tlsConnect, type TLSSocket } from "node:tls";

export interface LineTarget {
  readonly host: string;
  readonly port: number;
  readonly ca: string;
  readonly servername: string;
  readonly implicitTls?: boolean;
}

export interface LineConn {
  /** The next line without its CRLF. */
  readLine(): Promise<string>;
  /** Exactly n raw bytes (a literal). */
  readBytes(n: number): Promise<string>;
  write(data: string): void;
  /** Switch the connection to TLS (after the protocol's STARTTLS/STLS was accepted). */
  upgrade(): Promise<void>;
  readonly tls: boolean;
  close(): void;
}

export async function openLines(t: LineTarget, timeoutMs = 10_000): Promise<LineConn> {
  let sock: Socket | TLSSocket = await new Promise((resolve, reject) => {
    const s = t.implicitTls
      ? tlsConnect({ host: t.host, port: t.port, ca: t.ca, servername: t.servername }, () => resolve(s))
      : tcp({ host: t.host, port: t.port }, () => resolve(s));
    s.once("error", reject);
  });
  let buf = Buffer.alloc(0);
  let wake: (() => void) | undefined;
  let failure: Error | undefined;
  let tls = t.implicitTls === true;
  const attach = (s: Socket | TLSSocket): void => {
    s.on("data", (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      wake?.();
    });
    s.on("error", (err) => {
      failure = err;
      wake?.();
    });
    s.on("close", () => {
      failure ??= new Error("connection closed");
      wake?.();
    });
  };
  attach(sock);

  const take = <T>(what: string, attempt: () => T | undefined): Promise<T> =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`${what}: timeout; buffered ${JSON.stringify(buf.toString("latin1"))}`)),
        timeoutMs,
      );
      const tryTake = (): void => {
        const got = attempt();
        if (got !== undefined) {
          clearTimeout(timer);
          wake = undefined;
          resolve(got);
        } else if (failure) {
          clearTimeout(timer);
          wake = undefined;
          reject(failure);
        }
      };
      wake = tryTake;
      tryTake();
    });

  return {
    readLine: () =>
      take("line", () => {
        const at = buf.indexOf("\r\n");
        if (at < 0) return undefined;
        const line = buf.subarray(0, at).toString("utf8");
        buf = buf.subarray(at + 2);
        return line;
      }),
    readBytes: (n) =>
      take(`${n} bytes`, () => {
        if (buf.length < n) return undefined;
        const out = buf.subarray(0, n).toString("utf8");
        buf = buf.subarray(n);
        return out;
      }),
    write: (data) => void sock.write(data),
    async upgrade() {
      sock.removeAllListeners("data");
      sock.removeAllListeners("close");
      sock = await new Promise<TLSSocket>((resolve, reject) => {
        const s = tlsConnect({ socket: sock, ca: t.ca, servername: t.servername }, () => resolve(s));
        s.once("error", reject);
      });
      attach(sock);
      tls = true;
    },
    get tls() {
      return tls;
    },
    close: () => sock.destroy(),
  };
}
