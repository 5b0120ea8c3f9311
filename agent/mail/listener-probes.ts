// What a client sees on each mail listener after a reload: the greeting, and the TLS handshake
// (implicit, or after the protocol's STARTTLS) with the certificate the config names. A daemon
// that accepted a reload but could not bind a port, or whose OpenSSL refuses the new key, fails
// here even though its pid is alive and its other listeners answer.
import type { TLSSocket } from "node:tls";
import { openLineSocket, type LineSocket } from "../../common/smtp-probe/line-socket.ts";
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

/** Waits for a line matching `ok`; a line matching `refusal` (or the connection ending) throws. */
async function expectLine(s: LineSocket, ok: RegExp, refusal: RegExp, timeoutMs: number, what: string): Promise<void> {
  let refused: string | undefined;
  const answered = (line: string): boolean => {
    if (ok.test(line)) return true;
    if (refusal.test(line)) refused = line;
    return refused !== undefined;
  };
  await s.readUntil((lines) => lines.some(answered), timeoutMs, what);
  if (refused !== undefined) throw new Error(`answered "${refused.slice(0, 200)}" to ${what}`);
}

/** One line for the refusal: OpenSSL's reason ("packet length too long"), not its error stack. */
function describe(err: unknown, address: string): string {
  const cause = err instanceof Error ? (err.cause as { message?: string; reason?: string } | undefined) : undefined;
  let msg = err instanceof Error ? err.message : String(err);
  if (cause?.reason && cause.message) msg = msg.replace(cause.message, cause.reason);
  // line-socket names the address again ("connect to 127.0.0.1:993: …"): the caller already does.
  for (const prefix of [`connect to ${address}: `, `${address}: `])
    if (msg.startsWith(prefix)) msg = msg.slice(prefix.length);
  return msg.replace(/\s+/g, " ").trim();
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
  // The exact leaf is compared below: stricter than a chain check, and needs no trust store.
  const tls = { rejectUnauthorized: false };
  let s: LineSocket | undefined;
  try {
    s = await openLineSocket({ host, port: l.port, timeoutMs, ...(l.tls === "implicit" ? { tls } : {}) });
    if (l.tls === "starttls") {
      await expectLine(s, d.greeting, d.refusal, timeoutMs, "the greeting");
      for (const [command, answer] of d.starttls) {
        s.write(`${command}\r\n`);
        await expectLine(s, answer, d.refusal, timeoutMs, command);
      }
      await s.upgrade(tls, timeoutMs);
    }
    const served = (s.socket as TLSSocket).getPeerCertificate().fingerprint256;
    if (served !== fingerprint) return `${where}: presents certificate ${served}, not the configured ${fingerprint}`;
    if (l.tls === "implicit") await expectLine(s, d.greeting, d.refusal, timeoutMs, "the greeting");
    return undefined;
  } catch (err) {
    return `${where}: ${describe(err, `${host}:${l.port}`)}`;
  } finally {
    s?.close();
  }
}
