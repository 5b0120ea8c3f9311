// A tiny SMTP client for tests that need every reply code (RCPT 550 vs 552, AUTH refusals), with
// STARTTLS and implicit TLS verified against the test CA. Messages look like real mail: Date,
// Message-ID and a proper HELO name, so filters do not score them as junk for being sloppy.
import { randomBytes } from "node:crypto";
import { connect as tcp, type Socket } from "node:net";
import { connect as tlsConnect, type TLSSocket } from "node:tls";

export interface SmtpReply {
  readonly code: number;
  readonly text: string;
}

export interface SmtpTarget {
  readonly host: string;
  readonly port: number;
  /** CA and name to verify the server certificate against. */
  readonly ca: string;
  readonly servername: string;
  readonly implicitTls?: boolean;
}

export interface SmtpSession {
  readonly greeting: SmtpReply;
  cmd(line: string): Promise<SmtpReply>;
  startTls(): Promise<SmtpReply>;
  close(): void;
}

export const HELO = "client.sender.test";

export async function smtpConnect(t: SmtpTarget): Promise<SmtpSession> {
  let sock: Socket | TLSSocket = await open(t);
  let buf = "";
  let waiter: (() => void) | undefined;
  const attach = (s: Socket | TLSSocket): void => {
    s.setEncoding("latin1");
    s.on("data", (d: string) => {
      buf += d;
      waiter?.();
    });
    s.on("error", () => waiter?.());
  };
  attach(sock);
  const read = (): Promise<SmtpReply> =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`SMTP reply timeout; got ${JSON.stringify(buf)}`)), 15_000);
      const tryParse = (): void => {
        const m = /^(\d{3}) [^\n]*\n/m.exec(buf);
        if (!m) return;
        const end = m.index + m[0].length;
        const text = buf.slice(0, end);
        buf = buf.slice(end);
        clearTimeout(timer);
        waiter = undefined;
        resolve({ code: Number(m[1]), text: text.trim() });
      };
      waiter = tryParse;
      tryParse();
    });
  const greeting = await read();
  const cmd = (line: string): Promise<SmtpReply> => {
    sock.write(`${line}\r\n`);
    return read();
  };
  return {
    greeting,
    cmd,
    async startTls() {
      const r = await cmd("STARTTLS");
      if (r.code !== 220) return r;
      sock.removeAllListeners("data");
      sock = await new Promise<TLSSocket>((resolve, reject) => {
        const s = tlsConnect({ socket: sock, ca: t.ca, servername: t.servername }, () => resolve(s));
        s.once("error", reject);
      });
      attach(sock);
      return r;
    },
    close: () => sock.destroy(),
  };
}

function open(t: SmtpTarget): Promise<Socket | TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = t.implicitTls
      ? tlsConnect({ host: t.host, port: t.port, ca: t.ca, servername: t.servername }, () => resolve(s))
      : tcp({ host: t.host, port: t.port }, () => resolve(s));
    s.once("error", reject);
  });
}

export function buildMessage(o: {
  from: string;
  to: string;
  subject: string;
  body: string;
  headers?: Record<string, string>;
}): { id: string; data: string } {
  const id = `<${Date.now()}.${randomBytes(6).toString("hex")}@sender.test>`;
  const extra = Object.entries(o.headers ?? {}).map(([k, v]) => `${k}: ${v}`);
  const lines = [
    `From: ${o.from}`,
    `To: ${o.to}`,
    `Subject: ${o.subject}`,
    `Date: ${new Date().toUTCString().replace("GMT", "+0000")}`,
    `Message-ID: ${id}`,
    "MIME-Version: 1.0",
    "Content-Type: text/plain; charset=utf-8",
    ...extra,
    "",
    o.body,
  ];
  return { id, data: lines.join("\r\n") };
}

export interface SendOutcome {
  /** The stage that answered last and its reply; "done" means DATA was accepted. */
  readonly stage: "greeting" | "ehlo" | "starttls" | "auth" | "mail" | "rcpt" | "data" | "done";
  readonly reply: SmtpReply;
}

/** One SMTP transaction; stops at the first refusal and says where. */
export async function sendMail(
  t: SmtpTarget & {
    from: string;
    to: string[];
    data: string;
    startTls?: boolean;
    auth?: { user: string; pass: string };
    size?: number;
  },
): Promise<SendOutcome> {
  const s = await smtpConnect(t);
  try {
    if (s.greeting.code !== 220) return { stage: "greeting", reply: s.greeting };
    let r = await s.cmd(`EHLO ${HELO}`);
    if (r.code !== 250) return { stage: "ehlo", reply: r };
    if (t.startTls) {
      r = await s.startTls();
      if (r.code !== 220) return { stage: "starttls", reply: r };
      r = await s.cmd(`EHLO ${HELO}`);
    }
    if (t.auth) {
      r = await s.cmd(`AUTH PLAIN ${Buffer.from(`\0${t.auth.user}\0${t.auth.pass}`).toString("base64")}`);
      if (r.code !== 235) return { stage: "auth", reply: r };
    }
    r = await s.cmd(`MAIL FROM:<${t.from}>${t.size ? ` SIZE=${t.size}` : ""}`);
    if (r.code !== 250) return { stage: "mail", reply: r };
    for (const rcpt of t.to) {
      r = await s.cmd(`RCPT TO:<${rcpt}>`);
      if (r.code !== 250) return { stage: "rcpt", reply: r };
    }
    r = await s.cmd("DATA");
    if (r.code !== 354) return { stage: "data", reply: r };
    r = await s.cmd(`${t.data.replace(/^\./gm, "..")}\r\n.`);
    if (r.code !== 250) return { stage: "data", reply: r };
    await s.cmd("QUIT").catch(() => undefined);
    return { stage: "done", reply: r };
  } finally {
    s.close();
  }
}
