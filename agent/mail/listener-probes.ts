// What a client sees on each mail listener after a reload: the greeting, and the TLS handshake
// (implicit, or after the protocol's STARTTLS) with the certificate the config names. A daemon
// that accepted a reload but could not bind a port, or whose OpenSSL refuses the new key, fails
// here even though its pid is alive and its other listeners answer.
import { connect as tcp, type Socket } from "node:net";
import { connect as tlsConnect, type TLSSocket } from "node:tls";
import type { MailDaemon } from "./daemon-log.ts";

type Protocol = "smtp" | "imap" | "pop3" | "sieve";

export interface Listener {
  readonly daemon: MailDaemon;
  readonly name: string;
  readonly port: number;
  readonly protocol: Protocol;
  readonly tls: "starttls" | "implicit";
}

/** The listeners master.cf and dovecot.conf render (postfix/render-master-cf.ts, dovecot/render-conf.ts). */
export const MAIL_LISTENERS: readonly Listener[] = [
  { daemon: "postfix", name: "smtp", port: 25, protocol: "smtp", tls: "starttls" },
  { daemon: "postfix", name: "submission", port: 587, protocol: "smtp", tls: "starttls" },
  { daemon: "postfix", name: "smtps", port: 465, protocol: "smtp", tls: "implicit" },
  { daemon: "dovecot", name: "imap", port: 143, protocol: "imap", tls: "starttls" },
  { daemon: "dovecot", name: "imaps", port: 993, protocol: "imap", tls: "implicit" },
  { daemon: "dovecot", name: "pop3", port: 110, protocol: "pop3", tls: "starttls" },
  { daemon: "dovecot", name: "pop3s", port: 995, protocol: "pop3", tls: "implicit" },
  { daemon: "dovecot", name: "sieve", port: 4190, protocol: "sieve", tls: "starttls" },
];

interface Dialogue {
  /** The line that ends a good greeting (multi-line greetings end with it). */
  readonly greeting: RegExp;
  /** A line that means no (the probe stops there). */
  readonly refusal: RegExp;
  /** Commands and the line that answers each, ending with the go-ahead for the TLS handshake. */
  readonly starttls: ReadonlyArray<readonly [string, RegExp]>;
}

const DIALOGUES: Record<Protocol, Dialogue> = {
  smtp: {
    greeting: /^220 /,
    refusal: /^[45]\d\d /,
    starttls: [
      ["EHLO netserva-verify.invalid", /^250 /],
      ["STARTTLS", /^220 /],
    ],
  },
  imap: { greeting: /^\* OK/, refusal: /^\* (BYE|NO|BAD)|^a (NO|BAD)/, starttls: [["a STARTTLS", /^a OK/]] },
  pop3: { greeting: /^\+OK/, refusal: /^-ERR/, starttls: [["STLS", /^\+OK/]] },
  sieve: { greeting: /^OK/, refusal: /^(NO|BYE)/, starttls: [["STARTTLS", /^OK/]] },
};

/** Line reader over one socket: each `expect` waits for a line matching `ok`. */
function lineReader(s: Socket | TLSSocket, where: string, timeoutMs: number) {
  let buf = "";
  let closed: string | undefined;
  let wake: (() => void) | undefined;
  const onData = (d: Buffer): void => {
    buf += d.toString("latin1");
    wake?.();
  };
  const onClose = (err?: Error): void => {
    closed = err ? err.message : "connection closed";
    wake?.();
  };
  s.on("data", onData);
  s.on("error", onClose);
  s.on("end", () => onClose());
  s.on("close", () => onClose());
  return {
    expect(ok: RegExp, refusal: RegExp): Promise<void> {
      return new Promise((resolve, reject) => {
        const settle = (problem?: string): void => {
          clearTimeout(timer);
          wake = undefined;
          if (problem === undefined) resolve();
          else reject(new Error(`${where}: ${problem}`));
        };
        const check = (): void => {
          for (let i = buf.indexOf("\n"); i >= 0; i = buf.indexOf("\n")) {
            const line = buf.slice(0, i).replace(/\r$/, "");
            buf = buf.slice(i + 1);
            if (ok.test(line)) return settle();
            if (refusal.test(line)) return settle(`answered "${line.slice(0, 200)}"`);
          }
          const partial = buf.trim().slice(0, 200);
          if (closed !== undefined) settle(`${closed}${partial ? ` after "${partial}"` : ""}`);
        };
        const timer = setTimeout(() => settle(`no answer within ${timeoutMs} ms`), timeoutMs);
        wake = check;
        check();
      });
    },
    detach(): void {
      s.off("data", onData);
      wake = undefined;
    },
  };
}

function open(host: string, port: number, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = tcp({ host, port, timeout: timeoutMs });
    s.once("connect", () => resolve(s));
    s.on("error", (e) => reject(e));
    s.once("timeout", () => s.destroy(new Error(`no connection within ${timeoutMs} ms`)));
  });
}

function handshake(o: { socket: Socket } | { host: string; port: number }, timeoutMs: number): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    // The exact leaf is compared below: stricter than a chain check, and needs no trust store.
    const s = tlsConnect({ ...o, rejectUnauthorized: false, timeout: timeoutMs });
    s.once("secureConnect", () => resolve(s));
    // OpenSSL's reason ("packet length too long"), not its multi-line error stack.
    s.on("error", (e: Error & { reason?: string }) =>
      reject(new Error(`TLS handshake failed: ${e.reason ?? e.message}`)),
    );
    s.once("timeout", () => s.destroy(new Error(`no TLS handshake within ${timeoutMs} ms`)));
  });
}

const addressOf = (host: string, port: number): string =>
  host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;

/**
 * Greets and completes a TLS handshake presenting the certificate with SHA-256 fingerprint
 * `fingerprint` ("AB:CD:…", as X509Certificate reports it). Returns what went wrong, or undefined.
 */
export async function probeListener(
  host: string,
  l: Listener,
  fingerprint: string,
  timeoutMs = 3_000,
): Promise<string | undefined> {
  const where = `${l.name} on ${addressOf(host, l.port)}`;
  const d = DIALOGUES[l.protocol];
  const sockets: Socket[] = [];
  try {
    let secure: TLSSocket;
    if (l.tls === "implicit") {
      secure = await handshake({ host, port: l.port }, timeoutMs);
      sockets.push(secure);
    } else {
      const plain = await open(host, l.port, timeoutMs);
      sockets.push(plain);
      const r = lineReader(plain, where, timeoutMs);
      await r.expect(d.greeting, d.refusal);
      for (const [command, answer] of d.starttls) {
        plain.write(`${command}\r\n`);
        await r.expect(answer, d.refusal);
      }
      r.detach();
      secure = await handshake({ socket: plain }, timeoutMs);
      sockets.push(secure);
    }
    const served = secure.getPeerCertificate().fingerprint256;
    if (served !== fingerprint) return `${where}: presents certificate ${served}, not the configured ${fingerprint}`;
    if (l.tls === "implicit") await lineReader(secure, where, timeoutMs).expect(d.greeting, d.refusal);
    return undefined;
  } catch (err) {
    const msg = (err instanceof Error ? err.message : String(err)).replace(/\s+/g, " ").trim();
    return msg.startsWith(where) ? msg : `${where}: ${msg}`;
  } finally {
    // Outermost first: destroying a plain socket under a live TLS socket crashed Node 24 (SIGSEGV).
    for (const s of sockets.reverse()) {
      s.on("error", () => undefined);
      s.destroy();
    }
  }
}
