// A steady stream of test mail into one vnode over SMTP port 25, sent the way a real MTA sends:
// one message per transaction, each with its own Message-ID, and a transaction that fails with a
// 4xx or a dropped/hung connection is tried again later with the same Message-ID and bytes. A
// message counts as accepted only when DATA got 250. Every message carries the phase it was first
// tried in (X-Chaos-Phase), so a duplicate found later is attributed to the fault that caused it.
import { randomBytes } from "node:crypto";
import { connect, type Socket } from "node:net";
import { ImapFlow } from "imapflow";

export const HELO = "mta.sender.test";

export interface StreamMessage {
  readonly id: string;
  readonly to: string;
  /** Phase when the message was first tried. */
  readonly phase: string;
  attempts: number;
  /** Attempts that failed after the final dot was sent (the server may have queued them). */
  ambiguous: number;
}

export interface PhaseTally {
  sent: number;
  retries: number;
  ambiguous: number;
}

export interface StreamOptions {
  readonly host: string;
  readonly port: number;
  /** Envelope and header sender: a mailbox on the vnode, so a bounce would be found there. */
  readonly from: string;
  readonly recipients: readonly string[];
  /** Concurrent senders. */
  readonly workers: number;
  /** New messages started per second across all senders (pacing, not a readiness wait); a sender
   * busy retrying starts its next message late, as a real MTA's queue would. */
  readonly perSecond: number;
  /** First retry delay, doubled up to 8 times that. */
  readonly retryMs?: number;
  /** A message not accepted after this many attempts is given up on (reported, never retried). */
  readonly maxAttempts?: number;
}

export interface MailStream {
  setPhase(name: string): void;
  readonly phase: string;
  /** Accepted (250 after DATA) messages, by Message-ID. */
  readonly accepted: ReadonlyMap<string, StreamMessage>;
  /** Permanent refusals (5xx): a real MTA would bounce these. */
  readonly refused: ReadonlyArray<{ readonly message: StreamMessage; readonly reply: string }>;
  /** Messages given up on after maxAttempts temporary failures (with the last reason). */
  readonly abandoned: ReadonlyArray<{ readonly message: StreamMessage; readonly reason: string }>;
  readonly tally: ReadonlyMap<string, PhaseTally>;
  /** Stop starting new messages and wait for every message in flight to be accepted or given up. */
  stop(): Promise<void>;
}

type Attempt =
  | { readonly kind: "accepted" }
  | { readonly kind: "permanent"; readonly reply: string }
  | { readonly kind: "temporary"; readonly reason: string; readonly afterDot: boolean };

/** Generous: only catches a hung server (the sender then drops and retries, as an MTA would). */
const REPLY_TIMEOUT_MS = 60_000;

/** One SMTP transaction on a fresh connection; every failure is classified, never thrown. */
export function submitOnce(
  o: { host: string; port: number },
  from: string,
  to: string,
  data: string,
): Promise<Attempt> {
  return new Promise((resolve) => {
    const sock: Socket = connect({ host: o.host, port: o.port });
    let buf = "";
    let step = 0;
    let afterDot = false;
    let done = false;
    const finish = (a: Attempt): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      // Accepted: say goodbye properly; anything else: just drop the connection.
      if (a.kind === "accepted") sock.end("QUIT\r\n");
      else sock.destroy();
      resolve(a);
    };
    let timer = setTimeout(() => finish({ kind: "temporary", reason: "reply timeout", afterDot }), REPLY_TIMEOUT_MS);
    const send = (line: string): void => {
      sock.write(line);
      clearTimeout(timer);
      timer = setTimeout(() => finish({ kind: "temporary", reason: "reply timeout", afterDot }), REPLY_TIMEOUT_MS);
    };
    // The conversation: what each reply must be, and what to send next.
    const script: Array<{ want: number; next: () => string }> = [
      { want: 220, next: () => `EHLO ${HELO}\r\n` },
      { want: 250, next: () => `MAIL FROM:<${from}>\r\n` },
      { want: 250, next: () => `RCPT TO:<${to}>\r\n` },
      { want: 250, next: () => "DATA\r\n" },
      {
        want: 354,
        next: () => {
          afterDot = true;
          return `${data.replace(/^\./gm, "..")}\r\n.\r\n`;
        },
      },
      { want: 250, next: () => "" },
    ];
    sock.setEncoding("latin1");
    sock.on("error", (e) => finish({ kind: "temporary", reason: `connection: ${e.message}`, afterDot }));
    sock.on("close", () => finish({ kind: "temporary", reason: "connection closed", afterDot }));
    sock.on("data", (chunk: string) => {
      buf += chunk;
      for (;;) {
        const m = /^(\d{3}) [^\n]*\n/m.exec(buf);
        if (!m) return;
        const text = buf.slice(0, m.index + m[0].length).trim();
        buf = buf.slice(m.index + m[0].length);
        const code = Number(m[1]);
        const expected = script[step];
        if (!expected) return;
        if (code !== expected.want) {
          if (code >= 500) finish({ kind: "permanent", reply: text });
          else finish({ kind: "temporary", reason: text, afterDot });
          return;
        }
        step += 1;
        // 250 to the final dot: accepted, whatever happens to QUIT.
        if (step === script.length) {
          finish({ kind: "accepted" });
          return;
        }
        send(expected.next());
      }
    });
  });
}

export function buildStreamMessage(
  from: string,
  to: string,
  phase: string,
  serial: number,
): { id: string; data: string } {
  const id = `<${serial}.${randomBytes(8).toString("hex")}@stream.sender.test>`;
  const data = [
    `From: ${from}`,
    `To: ${to}`,
    `Subject: stream ${serial}`,
    `Date: ${new Date().toUTCString().replace("GMT", "+0000")}`,
    `Message-ID: ${id}`,
    `X-Chaos-Phase: ${phase}`,
    "MIME-Version: 1.0",
    "Content-Type: text/plain; charset=utf-8",
    "",
    `Message ${serial}, first tried during ${phase}.`,
  ].join("\r\n");
  return { id, data };
}

export function startMailStream(o: StreamOptions): MailStream {
  const retryMs = o.retryMs ?? 200;
  const maxAttempts = o.maxAttempts ?? 200;
  const accepted = new Map<string, StreamMessage>();
  const refused: Array<{ message: StreamMessage; reply: string }> = [];
  const abandoned: Array<{ message: StreamMessage; reason: string }> = [];
  const tally = new Map<string, PhaseTally>();
  let phase = "start";
  let running = true;
  let serial = 0;
  const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
  const tallyOf = (p: string): PhaseTally => {
    let t = tally.get(p);
    if (!t) tally.set(p, (t = { sent: 0, retries: 0, ambiguous: 0 }));
    return t;
  };

  async function deliverOne(to: string): Promise<void> {
    const n = ++serial;
    const built = buildStreamMessage(o.from, to, phase, n);
    const message: StreamMessage = { id: built.id, to, phase, attempts: 0, ambiguous: 0 };
    tallyOf(phase).sent += 1;
    let delay = retryMs;
    for (;;) {
      message.attempts += 1;
      const a = await submitOnce(o, o.from, to, built.data);
      if (a.kind === "accepted") {
        accepted.set(message.id, message);
        return;
      }
      if (a.kind === "permanent") {
        refused.push({ message, reply: a.reply });
        return;
      }
      // Retries are charged to the phase in which they happen (the fault that caused them).
      tallyOf(phase).retries += 1;
      if (a.afterDot) {
        message.ambiguous += 1;
        tallyOf(phase).ambiguous += 1;
      }
      if (message.attempts >= maxAttempts) {
        abandoned.push({ message, reason: a.reason });
        return;
      }
      await sleep(delay);
      delay = Math.min(delay * 2, retryMs * 8);
    }
  }

  const intervalMs = (1000 * o.workers) / o.perSecond;
  const workers = Array.from({ length: o.workers }, async (_, w) => {
    let i = w;
    let next = Date.now() + (w * intervalMs) / o.workers;
    while (running) {
      if (next > Date.now()) await sleep(next - Date.now());
      if (!running) break;
      next = Math.max(next + intervalMs, Date.now());
      const to = o.recipients[i % o.recipients.length] ?? "";
      i += o.workers;
      await deliverOne(to);
    }
  });

  return {
    setPhase(name) {
      phase = name;
    },
    get phase() {
      return phase;
    },
    accepted,
    refused,
    abandoned,
    tally,
    async stop() {
      running = false;
      await Promise.all(workers);
    },
  };
}

export interface InboxCount {
  /** Message-ID → how many copies are in the INBOX. */
  readonly ids: Map<string, number>;
  /** Messages without one of our Message-IDs (a bounce, a DSN): subject and sender. */
  readonly foreign: Array<{ readonly messageId: string; readonly subject: string; readonly from: string }>;
}

/** Every message in the user's INBOX, counted by Message-ID over IMAP (implicit TLS, verified). */
export async function countInbox(
  o: { host: string; port: number; ca: string; servername: string },
  user: string,
  pass: string,
  ours: (messageId: string) => boolean,
): Promise<InboxCount> {
  const client = new ImapFlow({
    host: o.host,
    port: o.port,
    secure: true,
    auth: { user, pass },
    tls: { ca: o.ca, servername: o.servername },
    logger: false,
  });
  client.on("error", () => undefined);
  const ids = new Map<string, number>();
  const foreign: InboxCount["foreign"] = [];
  await client.connect();
  try {
    const lock = await client.getMailboxLock("INBOX");
    try {
      const exists = client.mailbox === false ? 0 : client.mailbox.exists;
      if (exists > 0)
        for await (const m of client.fetch("1:*", { envelope: true })) {
          const id = m.envelope?.messageId ?? "";
          if (ours(id)) ids.set(id, (ids.get(id) ?? 0) + 1);
          else
            foreign.push({
              messageId: id,
              subject: m.envelope?.subject ?? "",
              from: m.envelope?.from?.map((a) => a.address ?? "").join(",") ?? "",
            });
        }
    } finally {
      lock.release();
    }
  } finally {
    await client.logout().catch(() => client.close());
  }
  return { ids, foreign };
}
