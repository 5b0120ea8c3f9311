// The certificate a mail listener presents, as a client that verifies sees it: implicit TLS, or
// STARTTLS after the protocol's own greeting and command (SMTP EHLO + STARTTLS, IMAP STARTTLS).
import { connect as tcp, type Socket } from "node:net";
import { connect as tlsConnect } from "node:tls";

export interface ServedCertTarget {
  readonly host: string;
  readonly port: number;
  /** CA PEMs the client trusts (several concatenated are fine). */
  readonly ca: string;
  readonly servername: string;
  readonly starttls?: "smtp" | "imap";
  /** false: take whatever certificate comes (to see which one a name falls back to). */
  readonly rejectUnauthorized?: boolean;
}

/** Reads lines until one matches `done`, failing on `timeoutMs` or a closed connection. */
function until(s: Socket, done: RegExp, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = "";
    const timer = setTimeout(() => finish(new Error(`no ${String(done)} within ${timeoutMs} ms: ${buf}`)), timeoutMs);
    const onData = (d: Buffer): void => {
      buf += d.toString("latin1");
      if (buf.split("\r\n").some((l) => done.test(l))) finish();
    };
    const onEnd = (): void => finish(new Error(`connection closed: ${buf}`));
    const finish = (err?: Error): void => {
      clearTimeout(timer);
      s.off("data", onData).off("end", onEnd).off("error", onEnd);
      if (err) reject(err);
      else resolve(buf);
    };
    s.on("data", onData).on("end", onEnd).on("error", onEnd);
  });
}

/** SHA-256 fingerprint of the leaf the listener presents; rejects if the chain does not verify. */
export async function servedFingerprint(t: ServedCertTarget, timeoutMs = 10_000): Promise<string> {
  let plain: Socket | undefined;
  if (t.starttls) {
    plain = await new Promise<Socket>((resolve, reject) => {
      const s = tcp({ host: t.host, port: t.port }, () => resolve(s));
      s.once("error", reject);
    });
    try {
      if (t.starttls === "smtp") {
        await until(plain, /^220 /, timeoutMs);
        plain.write("EHLO probe.sender.test\r\n");
        await until(plain, /^250 /, timeoutMs);
        plain.write("STARTTLS\r\n");
        await until(plain, /^220 /, timeoutMs);
      } else {
        await until(plain, /^\* OK/, timeoutMs);
        plain.write("a STARTTLS\r\n");
        await until(plain, /^a OK/, timeoutMs);
      }
    } catch (err) {
      plain.destroy();
      throw err;
    }
  }
  return new Promise((resolve, reject) => {
    const opts = {
      ca: t.ca,
      servername: t.servername,
      timeout: timeoutMs,
      rejectUnauthorized: t.rejectUnauthorized ?? true,
    };
    const s = tlsConnect(plain ? { ...opts, socket: plain } : { ...opts, host: t.host, port: t.port }, () => {
      const fp = s.getPeerCertificate().fingerprint256;
      s.destroy();
      resolve(fp);
    });
    s.once("error", (err) => {
      s.destroy();
      reject(err);
    });
    s.once("timeout", () => s.destroy(new Error("TLS handshake timed out")));
  });
}
