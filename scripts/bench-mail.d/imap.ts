// IMAP load: a fixed mix per session — connect with TLS on 993, LOGIN, SELECT INBOX, FETCH the
// envelope, flags and structure of the newest ten messages, APPEND one message to a folder of
// its own, LOGOUT — from many clients at once, each on a mailbox of its own (ImapFlow, the
// IMAP client the tests use; Debian has no imaptest). The stack's CPU from /proc as for SMTP,
// the client's as this process's CPU.
import { performance } from "node:perf_hooks";
import { ImapFlow } from "imapflow";
import { watchCpu, type CpuReport } from "./cpu.ts";
import { DOMAIN, PASSWORD, type Stack } from "./stacks.ts";

export interface ImapMixOptions {
  /** Concurrent clients, each with its own mailbox. */
  readonly clients: number;
  /** Sessions in all, shared out as the clients finish theirs. */
  readonly sessions: number;
}

export interface ImapMixResult {
  readonly sessions: number;
  readonly failures?: string;
  readonly totalMs: number;
  /** Each session's duration (connect … logout), ms. */
  readonly sessionMs: readonly number[];
  readonly clientCpuMs: number;
  readonly cpu: CpuReport;
}

export interface ImapTls {
  readonly ca: string;
  readonly servername: string;
}

const FOLDER = "Bench";
const FETCHED = 10;

/** The mailboxes the clients use: u0@, u1@, … (startRendered makes them, the hand stack copies them). */
export const imapUsers = (clients: number): string[] => Array.from({ length: clients }, (_, i) => `u${i}@${DOMAIN}`);

function client(stack: Stack, user: string, tls: ImapTls): ImapFlow {
  return new ImapFlow({
    host: stack.ns.nsAddress,
    port: 993,
    secure: true,
    tls: { ca: [tls.ca], servername: tls.servername },
    auth: { user, pass: PASSWORD },
    logger: false,
    // The mix is login/select/fetch/append: no IDLE between commands, no compression.
    disableAutoIdle: true,
    disableCompression: true,
  });
}

function message(user: string, n: number): string {
  return [
    `From: <${user}>`,
    `To: <${user}>`,
    `Subject: bench-mail imap ${n}`,
    `Message-ID: <imap-${n}-${process.pid}@bench.test>`,
    `Date: ${new Date().toUTCString()}`,
    "",
    "lorem ipsum dolor sit amet ".repeat(40),
    "",
  ].join("\r\n");
}

/** Every mailbox gets its folder and FETCHED messages in its INBOX, so every session has work. */
export async function prepareImap(stack: Stack, users: readonly string[], tls: ImapTls): Promise<void> {
  await Promise.all(
    users.map(async (user) => {
      const c = client(stack, user, tls);
      await c.connect();
      try {
        const folders = await c.list();
        if (!folders.some((f) => f.path === FOLDER)) await c.mailboxCreate(FOLDER);
        const inbox = await c.status("INBOX", { messages: true });
        for (let i = inbox ? (inbox.messages ?? 0) : 0; i < FETCHED; i++) await c.append("INBOX", message(user, i));
      } finally {
        await c.logout().catch(() => undefined);
      }
    }),
  );
}

async function session(stack: Stack, user: string, n: number, tls: ImapTls): Promise<void> {
  const c = client(stack, user, tls);
  await c.connect();
  try {
    const box = await c.mailboxOpen("INBOX");
    const from = Math.max(1, box.exists - FETCHED + 1);
    let fetched = 0;
    for await (const _ of c.fetch(`${from}:*`, { envelope: true, flags: true, bodyStructure: true })) fetched++;
    if (fetched === 0) throw new Error(`${user}: FETCH returned nothing`);
    await c.append(FOLDER, message(user, n));
  } finally {
    await c.logout().catch(() => undefined);
  }
}

export async function imapMix(
  stack: Stack,
  users: readonly string[],
  o: ImapMixOptions,
  tls: ImapTls,
): Promise<ImapMixResult> {
  const durations: number[] = [];
  let next = 0;
  let failed = 0;
  let firstError = "";
  const cpu = watchCpu(stack.ns.name, stack.sharedCpu);
  const client0 = process.cpuUsage();
  const t0 = performance.now();
  await Promise.all(
    users.slice(0, o.clients).map(async (user) => {
      while (next < o.sessions) {
        const n = next++;
        const s0 = performance.now();
        try {
          await session(stack, user, n, tls);
          durations.push(performance.now() - s0);
        } catch (error) {
          failed++;
          firstError ||= (error as Error).message;
        }
      }
    }),
  );
  const totalMs = performance.now() - t0;
  const used = process.cpuUsage(client0);
  return {
    sessions: durations.length,
    ...(failed ? { failures: `${failed} sessions failed, e.g. ${firstError}` } : {}),
    totalMs,
    sessionMs: durations,
    clientCpuMs: (used.user + used.system) / 1000,
    cpu: cpu.stop(),
  };
}
