// Inbound load on :25 with Postfix's own smtp-source (C, one message per connection as most
// inbound MX traffic comes), its CPU measured by GNU time, the stack's CPU from /proc, and the
// stage times Postfix logs for each delivery (delays=a/b/c/d).
import { execFile, spawn } from "node:child_process";
import { closeSync, existsSync, openSync, readSync, statSync } from "node:fs";
import { performance } from "node:perf_hooks";
import nodemailer from "nodemailer";
import { watchCpu, type CpuReport } from "./cpu.ts";
import { countFiles, PASSWORD as SUBMIT_PASSWORD, type Stack } from "./stacks.ts";

const SUBMIT_PER_CONNECTION = 20;

export interface LoadOptions {
  readonly messages: number;
  readonly sessions: number;
  /** Message body length, bytes (smtp-source -l). */
  readonly size: number;
}

/** Medians of Postfix's delays=a/b/c/d, seconds: before qmgr (smtpd+cleanup), in qmgr, LMTP connect, LMTP transfer. */
export interface Delays {
  readonly a: number;
  readonly b: number;
  readonly c: number;
  readonly d: number;
  readonly n: number;
}

export interface LoadResult {
  readonly sent: number;
  /** Messages the client could not send, and the first reason. */
  readonly failures?: string;
  /** In the maildir, or for relayed mail: logged by Postfix as sent to the sink. */
  readonly delivered: number;
  /** smtp-source's run (all SMTP transactions answered), ms. */
  readonly smtpMs: number;
  /** From the first connection until every message is in the maildir, ms. */
  readonly totalMs: number;
  /** smtp-source's own CPU (user + system), ms. */
  readonly loadgenCpuMs: number;
  /** The relay sink's own CPU (smtp-sink), ms, when the messages went to it. */
  readonly sinkCpuMs?: number;
  readonly cpu: CpuReport;
  readonly delays: Delays;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Every run starts with no dirty pages left by the one before. Dovecot does not fsync each
 * message (mail_fsync = optimized), and in a 6-round run the stack that went second in a round
 * was ~10 % slower; the kernel writing the first one's mail back meanwhile is the likely cause.
 */
async function settle(): Promise<void> {
  await new Promise<void>((resolve, reject) =>
    execFile("sync", [], { timeout: 120_000 }, (error) => (error ? reject(error) : resolve())),
  );
  await sleep(300);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? ((s[(s.length - 1) >> 1] ?? 0) + (s[s.length >> 1] ?? 0)) / 2 : Number.NaN;
}

function readFrom(file: string, offset: number): string {
  if (!existsSync(file)) return "";
  const size = statSync(file).size;
  if (size <= offset) return "";
  const fd = openSync(file, "r");
  try {
    const buf = Buffer.alloc(size - offset);
    readSync(fd, buf, 0, buf.length, offset);
    return buf.toString("utf8");
  } finally {
    closeSync(fd);
  }
}

export function parseDelays(log: string, to: string): Delays {
  const cols: number[][] = [[], [], [], []];
  for (const line of log.split("\n")) {
    if (!line.includes(`to=<${to}>`) || !line.includes("status=sent")) continue;
    const m = /delays=([\d.]+)\/([\d.]+)\/([\d.]+)\/([\d.]+)/.exec(line);
    if (m) for (let i = 0; i < 4; i++) cols[i]?.push(Number(m[i + 1]));
  }
  const [a = [], b = [], c = [], d = []] = cols;
  return { a: median(a), b: median(b), c: median(c), d: median(d), n: a.length };
}

function smtpSource(stack: Stack, o: LoadOptions): Promise<{ cpuMs: number }> {
  const args = [
    "-f",
    "%U %S",
    "smtp-source",
    "-s",
    String(o.sessions),
    "-m",
    String(o.messages),
    "-l",
    String(o.size),
    "-M",
    "client.sender.test",
    "-f",
    "load@sender.test",
    "-t",
    stack.to,
    "-S",
    "bench-mail load",
    `${stack.ns.nsAddress}:25`,
  ];
  return new Promise((resolve, reject) => {
    const child = spawn("/usr/bin/time", args, { stdio: ["ignore", "ignore", "pipe"] });
    let err = "";
    const timer = setTimeout(() => child.kill("SIGKILL"), 300_000);
    child.stderr.on("data", (d: Buffer) => void (err += d.toString()));
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      const last = err.trim().split("\n").pop() ?? "";
      const m = /^([\d.]+) ([\d.]+)$/.exec(last);
      if (code !== 0 || !m) return reject(new Error(`smtp-source exited ${code}: ${err.trim().slice(0, 500)}`));
      resolve({ cpuMs: (Number(m[1]) + Number(m[2])) * 1000 });
    });
  });
}

/** `o.messages` messages to the stack's load mailbox; returns when all are delivered (or after 120 s). */
export async function blast(stack: Stack, o: LoadOptions): Promise<LoadResult> {
  await settle();
  const before = countFiles(stack.newDir);
  const logOffset = existsSync(stack.postfixLog) ? statSync(stack.postfixLog).size : 0;
  const cpu = watchCpu(stack.ns.name, stack.sharedCpu);
  const t0 = performance.now();
  const { cpuMs } = await smtpSource(stack, o);
  const smtpMs = performance.now() - t0;
  const deadline = Date.now() + 120_000;
  while (countFiles(stack.newDir) < before + o.messages && Date.now() < deadline) await sleep(5);
  const totalMs = performance.now() - t0;
  const report = cpu.stop();
  // postlogd writes the last lines a moment after the delivery.
  await sleep(300);
  return {
    sent: o.messages,
    delivered: countFiles(stack.newDir) - before,
    smtpMs,
    totalMs,
    loadgenCpuMs: cpuMs,
    cpu: report,
    delays: parseDelays(readFrom(stack.postfixLog, logOffset), stack.to),
  };
}

/**
 * The submitted messages, written out once and numbered, so the client spends its CPU on SMTP and
 * TLS rather than on composing MIME: `size` bytes of text in 72-character lines.
 */
function submission(from: string, to: string, size: number): (i: number) => string {
  const text = "lorem ipsum dolor sit amet ".repeat(Math.ceil(size / 27) + 1).slice(0, size);
  const body = (text.match(/.{1,72}/g) ?? []).join("\r\n");
  const date = new Date().toUTCString().replace("GMT", "+0000");
  const run = `${process.pid}.${Date.now()}`;
  return (i) =>
    `From: <${from}>\r\nTo: <${to}>\r\nSubject: bench-mail submission ${i}\r\nDate: ${date}\r\n` +
    `Message-ID: <${run}.${i}@client.sender.test>\r\nMIME-Version: 1.0\r\n` +
    `Content-Type: text/plain; charset=us-ascii\r\n\r\n${body}\r\n`;
}

/** Lines Postfix logged since `offset` for `to` with status=sent, read as the log grows. */
function sentCounter(file: string, to: string): () => number {
  let offset = existsSync(file) ? statSync(file).size : 0;
  let partial = "";
  let n = 0;
  return () => {
    const chunk = readFrom(file, offset);
    offset += Buffer.byteLength(chunk);
    const lines = (partial + chunk).split("\n");
    partial = lines.pop() ?? "";
    for (const line of lines) if (line.includes(`to=<${to}>`) && line.includes("status=sent")) n++;
    return n;
  };
}

export interface SubmitTarget {
  /** The recipient; when it is not the stack's own load mailbox, the stack relays it. */
  readonly to: string;
  /** The sink's namespace, for its CPU beside the client's. */
  readonly sink?: string;
}

/**
 * Submission on 587 with STARTTLS and AUTH PLAIN through nodemailer's pool (`sessions`
 * connections, each re-connecting and re-authenticating every SUBMIT_PER_CONNECTION
 * messages), from the load mailbox: to itself (Postfix's submission service, Dovecot's SASL
 * check, then the same delivery path; done when the messages are in the maildir), or to a remote
 * recipient the stack relays by MX (done when Postfix has logged status=sent for each). The
 * client's CPU (this process) is the load generator's.
 */
export async function submit(
  stack: Stack,
  o: LoadOptions,
  servername: string,
  target: SubmitTarget = { to: stack.to },
): Promise<LoadResult> {
  if (stack.ca === undefined) throw new Error(`${stack.name} has no TLS for submission`);
  const tls = { ca: stack.ca, servername };
  await settle();
  const relayed = target.to !== stack.to;
  const logOffset = existsSync(stack.postfixLog) ? statSync(stack.postfixLog).size : 0;
  const sentCount = sentCounter(stack.postfixLog, target.to);
  const before = countFiles(stack.newDir);
  const arrived = (): number => (relayed ? sentCount() : countFiles(stack.newDir) - before);
  const transport = nodemailer.createTransport({
    host: stack.ns.nsAddress,
    port: 587,
    secure: false,
    requireTLS: true,
    name: "client.sender.test",
    auth: { user: stack.to, pass: SUBMIT_PASSWORD },
    tls,
    pool: true,
    maxConnections: o.sessions,
    maxMessages: SUBMIT_PER_CONNECTION,
  });
  const message = submission(stack.to, target.to, o.size);
  const cpu = watchCpu(stack.ns.name, stack.sharedCpu);
  const sinkCpu = target.sink === undefined ? undefined : watchCpu(target.sink);
  const client0 = process.cpuUsage();
  const t0 = performance.now();
  let failed = 0;
  let firstError = "";
  try {
    const sent = await Promise.allSettled(
      Array.from({ length: o.messages }, (_, i) =>
        transport.sendMail({ envelope: { from: stack.to, to: [target.to] }, raw: message(i) }),
      ),
    );
    for (const r of sent)
      if (r.status === "rejected") {
        failed++;
        firstError ||= (r.reason as Error).message;
      }
  } finally {
    transport.close();
  }
  const smtpMs = performance.now() - t0;
  const client = process.cpuUsage(client0);
  const deadline = Date.now() + 120_000;
  while (arrived() < o.messages - failed && Date.now() < deadline) await sleep(relayed ? 20 : 5);
  const totalMs = performance.now() - t0;
  const report = cpu.stop();
  const sinkReport = sinkCpu?.stop();
  if (!relayed) await sleep(300); // postlogd writes the last lines a moment after the delivery
  return {
    sent: o.messages - failed,
    ...(failed ? { failures: `${failed} not sent, e.g. ${firstError}` } : {}),
    delivered: arrived(),
    smtpMs,
    totalMs,
    loadgenCpuMs: (client.user + client.system) / 1000,
    ...(sinkReport ? { sinkCpuMs: sinkReport.totalMs } : {}),
    cpu: report,
    delays: parseDelays(readFrom(stack.postfixLog, logOffset), target.to),
  };
}
