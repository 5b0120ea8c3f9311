// Benchmark: how fast a change is live on a vnode, and how much mail the rendered stack moves.
// 1. addvmail (in-process CLI → controller → agent in its own namespace) → first IMAP login and
//    first accepted SMTP delivery of the new mailbox, at 100 and at 100,000 mailboxes on the vnode:
//    two vnodes (each with its own controller and database), one of each size, sampled in turns.
// 2. The same change made the NetServa way: `ssh root@127.0.0.1 bash -s` with a script that
//    inserts the row with sqlite3, makes the maildir and runs `postfix reload` in the namespace.
// 3. Messages/s through the rendered Postfix → LMTP → Dovecot, without and then with the Rspamd
//    milter, side by side with a hand-rendered "Debian default plus the minimum to deliver" Postfix + Dovecot in a second
//    namespace. Run by scripts/bench-apply; loopback and its own namespaces only; every wait is
//    bounded; everything it starts is stopped by PID and removed, also on failure or Ctrl-C.
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { connect } from "node:net";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { DatabaseSync } from "node:sqlite";
import { parseArgs } from "node:util";
import { ImapFlow } from "imapflow";
import { hashPassword } from "../common/password/index.ts";
import { createVnodePaths } from "../agent/paths.ts";
import { lookupUser } from "../agent/mail/vmail-user.ts";
import { freePort, startHarness } from "../test/helpers/controller-harness.ts";
import { spawnThrowawaySshd } from "./throwaway-sshd.ts";
import type { Harness } from "../test/helpers/controller-harness.ts";
import { createTestNetns } from "../test/helpers/netns.ts";
import type { TestNetns } from "../test/helpers/netns.ts";
import { startAgentProcess } from "../test/helpers/agent-process.ts";
import type { AgentProcess } from "../test/helpers/agent-process.ts";
import { canLogin } from "../test/helpers/mail-imap.ts";
import { buildMessage, HELO, smtpConnect } from "../test/helpers/mail-smtp.ts";
import { startBare } from "./bench-mail.d/stacks.ts";
import { createCleanups } from "./bench-mail.d/cleanups.ts";
import { onPhases } from "../common/phase-timing.ts";

const { values: opts } = parseArgs({
  options: {
    samples: { type: "string", default: "30" },
    "ssh-samples": { type: "string", default: "10" },
    mailboxes: { type: "string", default: "100000" },
    messages: { type: "string", default: "500" },
    concurrency: { type: "string", default: "8" },
    "no-throughput": { type: "boolean", default: false },
    "no-ssh": { type: "boolean", default: false },
    breakdown: { type: "boolean", default: false },
    ab: { type: "boolean", default: false },
    keep: { type: "boolean", default: false },
    "agent-cpu-prof": { type: "string" },
  },
});
const count = (name: string, v: string | undefined, min: number, max: number): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) throw new Error(`--${name} must be an integer ${min}..${max}`);
  return n;
};
const SAMPLES = count("samples", opts.samples, 1, 1000);
const SSH_SAMPLES = count("ssh-samples", opts["ssh-samples"], 1, 100);
const BIG = count("mailboxes", opts.mailboxes, 200, 200_000);
const MESSAGES = count("messages", opts.messages, 1, 10_000);
const CONCURRENCY = count("concurrency", opts.concurrency, 1, 64);
const SMALL = 100;
const BREAKDOWN = opts.breakdown;
/** Each sample twice: run as serve runs it (pushed over the daemon's live link to the vnode) and as a
 *  CLI process of its own on the embedded database would (its own connection, opened ahead), in turns. */
const AB = opts.ab;
/** A directory for the agents' V8 CPU profiles (node --cpu-prof), written when each agent stops. */
const AGENT_CPU_PROF = opts["agent-cpu-prof"];

const HOST = "mail.bench.test";
const DOMAIN = "bench.test";
const PASSWORD = "Bench-apply-pass-1";
const FILTER_CACHE = "/tmp/nsm-filter-hs-cache";
const POLL_MS = 5;
/** A change the push could not deliver waits for the reconciler (next health report, 5 s). */
const SAMPLE_DEADLINE_MS = 60_000;
const ATTEMPT_MS = 3_000;

// --- small utilities -----------------------------------------------------------------------------

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const log = (line: string): void => void process.stderr.write(`bench-apply: ${line}\n`);

async function until<T>(
  probe: () => Promise<T | undefined> | T | undefined,
  ms: number,
  what: string,
  every = 50,
): Promise<T> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const value = await probe();
    if (value !== undefined) return value;
    await sleep(every);
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}`);
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i] ?? Number.NaN;
}

/** Quote one word for the remote bash (the NetServa script is a shell script by nature). */
const shq = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

const { onCleanup, cleanup } = createCleanups(log);

async function stopChild(child: ChildProcess, graceMs = 3000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
  await exited;
  clearTimeout(timer);
}

// --- the vnode ---------------------------------------------------------------------------------

interface Vnode {
  /** The vnode's name; each vnode has its own controller (its own database) and namespace. */
  name: string;
  harness: Harness;
  ns: TestNetns;
  root: string;
  caPem: string;
  /** The agent process; the daemons it started keep running without it (the vnode owns its mail). */
  startAgent(): Promise<void>;
  stopAgent(): Promise<void>;
  /**
   * Wait until the agent has logged nothing (no apply) for `quietMs` and used less than
   * AGENT_IDLE_SHARE of a core over that time: background work after a bulk load (the
   * maildir heal) is over, as it is on a vnode in its steady state. Returns the wait, ms.
   */
  agentQuiet(quietMs: number, maxMs: number): Promise<number>;
  /** The running agent's log file (its "changes applied" lines time the agent's side). */
  agentLog(): string | undefined;
  /** CPU the running agent process has used so far, ms. */
  agentCpu(): number;
  /** The agent log's size now, and what it logged since such a size. */
  agentLogSize(): number;
  agentLogSince(offset: number): string;
}

async function cliOk(harness: Harness, argv: string[], stdin?: string): Promise<string> {
  const r = await harness.cli(argv, stdin);
  if (r.code !== 0) throw new Error(`${argv.slice(0, 2).join(" ")} exited ${r.code}: ${r.err.trim()}`);
  return r.out;
}

async function vnodeStatus(
  harness: Harness,
  vnode: string,
): Promise<{ generation: number; applied: number; connected: boolean }> {
  const rows = JSON.parse(await cliOk(harness, ["status", "--json"])) as Array<Record<string, unknown>>;
  const row = rows.find((r) => r["vnode"] === vnode);
  return {
    generation: Number(row?.["generation"] ?? -1),
    applied: Number(row?.["appliedGeneration"] ?? -2),
    connected: row?.["connected"] === true,
  };
}

async function waitApplied(v: Pick<Vnode, "harness" | "name">, ms: number, what: string): Promise<void> {
  await until(
    async () => {
      const s = await vnodeStatus(v.harness, v.name);
      return s.connected && s.applied === s.generation ? true : undefined;
    },
    ms,
    what,
    100,
  );
}

/**
 * Postfix's sqlite maps set no busy timeout: a lookup that meets a writer's lock fails and that
 * smtpd process dies (fatal; the client is dropped). How often it has happened on the vnode.
 */
function smtpdLockDeaths(root: string): number {
  const file = createVnodePaths(root).postfixLog;
  return existsSync(file)
    ? readFileSync(file, "utf8")
        .split("\n")
        .filter((l) => l.includes("fatal: dict_sqlite_lookup")).length
    : 0;
}

function lookupCount(root: string): number {
  const db = new DatabaseSync(createVnodePaths(root).lookupDb, { readOnly: true });
  try {
    db.exec("PRAGMA busy_timeout=5000");
    return Number((db.prepare("SELECT count(*) AS n FROM vmails").get() as { n: number }).n);
  } finally {
    db.close();
  }
}

/** Below this share of one core an agent counts as idle (health reports, the paced usage scan). */
const AGENT_IDLE_SHARE = 0.12;
const CLOCK_TICK_MS = 10; // USER_HZ is 100 on Linux

/** CPU time the agent process has used so far, ms (`ip netns exec` execs into it: same PID). */
function agentCpuMs(agent: AgentProcess | undefined): number {
  const pid = agent?.child.pid;
  if (pid === undefined) return 0;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) * CLOCK_TICK_MS;
  } catch {
    return 0; // gone: nothing running
  }
}

async function startVnode(workDir: string, name: string): Promise<Vnode> {
  // The production default health interval (serve --health-interval 5000).
  const harness = await startHarness({ healthIntervalMs: 5000 });
  // Commands run as serve runs them for an operator's CLI (addvmailSample's --ab also measures
  // the other way: a CLI process with a connection of its own).
  harness.commandsInDaemon = true;
  onCleanup("controller", () => harness.close());
  const caPem = readFileSync(join(harness.home, "ca", "ca.crt"), "utf8");
  const ns = await createTestNetns(`bench${name}`);
  onCleanup(`namespace ${ns.name}`, () => ns.destroy());
  const root = join(workDir, name);
  mkdirSync(root, { mode: 0o755 });
  chmodSync(workDir, 0o755);
  const port = 7444;
  const token =
    (await cliOk(harness, ["vnode", "add", name, "--address", `${ns.nsAddress}:${port}`])).trim().split("\n").pop() ??
    "";
  const agentHome = join(harness.dir, `agent-${name}`);
  await cliOk(harness, [
    "agent",
    "enroll",
    "--controller",
    harness.controllerAddress,
    "--token",
    token,
    "--home",
    agentHome,
  ]);
  await cliOk(harness, ["vnode", "set", name, "--mail-hostname", HOST, "--mail-listen", ns.nsAddress]);
  const logDir = join(workDir, `logs-${name}`);
  mkdirSync(logDir);
  let agent: AgentProcess | undefined;
  const startAgent = async (): Promise<void> => {
    agent = await startAgentProcess({
      ns,
      home: agentHome,
      root,
      port,
      logDir,
      extraArgs: ["--filter-offline", "--filter-cache", FILTER_CACHE],
      ...(AGENT_CPU_PROF === undefined ? {} : { nodeArgs: ["--cpu-prof", "--cpu-prof-dir", AGENT_CPU_PROF] }),
    });
  };
  const stopAgent = async (): Promise<void> => {
    // A profiling agent writes its profile on a clean exit: give it time before SIGKILL.
    log(`stopping ${name}'s agent (pid ${agent?.child.pid ?? "-"})`);
    await agent?.stop(AGENT_CPU_PROF === undefined ? undefined : 60_000);
    agent = undefined;
  };
  // The agent goes before the namespace (whose destruction SIGKILLs the daemons left in it).
  onCleanup("agent", stopAgent);
  await startAgent();
  await waitApplied({ harness, name }, 90_000, `the reconciler to apply ${name}'s first state`);
  // 100,000 × 1G is more than this disk: without overcommit the storage rule would (rightly) refuse.
  await cliOk(harness, ["addvmaildomain", name, DOMAIN, "--skip-dns-check", "--overcommit"]);
  const agentQuiet = async (quietMs: number, maxMs: number): Promise<number> => {
    const t0 = Date.now();
    let size = -1;
    let since = Date.now();
    let cpu = agentCpuMs(agent);
    await until(
      () => {
        const now = agent ? statSync(agent.logFile).size : -1;
        const used = agentCpuMs(agent);
        const elapsed = Date.now() - since;
        if (now !== size || (elapsed >= quietMs && used - cpu > elapsed * AGENT_IDLE_SHARE)) {
          size = now;
          since = Date.now();
          cpu = used;
          return undefined;
        }
        return elapsed >= quietMs ? true : undefined;
      },
      maxMs,
      `${name}'s agent to be idle`,
      100,
    );
    return Date.now() - t0;
  };
  return {
    name,
    harness,
    ns,
    root,
    caPem,
    startAgent,
    stopAgent,
    agentQuiet,
    agentLog: () => agent?.logFile,
    agentCpu: () => agentCpuMs(agent),
    agentLogSize: () => (agent ? statSync(agent.logFile).size : 0),
    agentLogSince: (offset) => (agent ? readFileSync(agent.logFile).subarray(offset).toString("utf8") : ""),
  };
}

/** mail:import a JSON file of `n` mailbox rows that share one precomputed hash. */
async function bulkLoad(
  v: Vnode,
  dir: string,
  prefix: string,
  n: number,
  hash: string,
): Promise<{
  importMs: number;
  liveMs: number;
  idleMs: number;
  notPushed: number;
  /** The agent's CPU from the import's start until live, and from live until idle, ms. */
  cpuToLiveMs: number;
  cpuAfterLiveMs: number;
}> {
  const rows = Array.from({ length: n }, (_, i) => ({
    kind: "mailbox",
    address: `${prefix}${String(i).padStart(6, "0")}@${DOMAIN}`,
    passwordHash: hash,
  }));
  const file = join(dir, `${prefix}import.json`);
  writeFileSync(file, JSON.stringify({ version: 1, vnode: v.name, rows }));
  const expected = lookupCount(v.root) + n;
  const logAt = v.agentLogSize();
  const cpu0 = v.agentCpu();
  const t0 = performance.now();
  const r = await v.harness.cli(["mail:import", file]); // default --batch 500: one push per batch
  if (r.code !== 0) throw new Error(`mail:import exited ${r.code}: ${r.err.trim().slice(0, 500)}`);
  const importMs = performance.now() - t0;
  const notPushed = r.err.split("\n").filter((l) => l.includes("not pushed")).length;
  if (notPushed)
    log(
      `mail:import: ${notPushed} batch pushes not delivered, e.g. ${
        r.err
          .split("\n")
          .find((l) => l.includes("not pushed"))
          ?.slice(0, 300) ?? ""
      }`,
    );
  // Live = every row in the vnode's sysadm.db, the vnode at its generation, and the agent idle
  // (no apply logged for two seconds), so the samples that follow do not meet a reconcile.
  await until(
    async () => {
      if (lookupCount(v.root) < expected) return undefined;
      const st = await vnodeStatus(v.harness, v.name);
      return st.connected && st.applied === st.generation ? true : undefined;
    },
    300_000,
    `${expected} mailboxes live on the vnode`,
    200,
  );
  const liveMs = performance.now() - t0;
  const cpuLive = v.agentCpu();
  // Idle = the maildir heal of the last whole state applied (a big import ends with one) has
  // ended (its one log line), then nothing logged and under AGENT_IDLE_SHARE for 3 s. Quiet
  // alone is not enough: under load the paced heal can get less than that share of a core.
  const healOver = (): true | undefined => {
    const lines = v
      .agentLogSince(logAt)
      .split("\n")
      .flatMap((l): Array<Record<string, unknown>> => {
        try {
          return l.startsWith("{") ? [JSON.parse(l) as Record<string, unknown>] : [];
        } catch {
          return []; // a line still being written
        }
      });
    const at = lines.findLastIndex((l) => l["msg"] === "state applied");
    const applied = lines[at]?.["generation"];
    // An agent before the heal line named its generation: the first heal line after the apply.
    const healed = (l: Record<string, unknown>, i: number): boolean =>
      l["msg"] === "maildirs healed" && (l["generation"] === applied || (l["generation"] === undefined && i > at));
    return at < 0 || lines.some(healed) ? true : undefined;
  };
  await until(healOver, 600_000, "the maildir heal", 200);
  await v.agentQuiet(3000, 300_000);
  const idleMs = performance.now() - t0;
  rmSync(file);
  return { importMs, liveMs, idleMs, notPushed, cpuToLiveMs: cpuLive - cpu0, cpuAfterLiveMs: v.agentCpu() - cpuLive };
}

// --- probes ----------------------------------------------------------------------------------------

function imapClient(v: Vnode, user: string): ImapFlow {
  return new ImapFlow({
    host: v.ns.nsAddress,
    port: 993,
    secure: true,
    auth: { user, pass: PASSWORD },
    tls: { ca: v.caPem, servername: HOST },
    logger: false,
    connectionTimeout: ATTEMPT_MS,
    greetingTimeout: ATTEMPT_MS,
    socketTimeout: 10_000,
  });
}

/** One attempt, false after ATTEMPT_MS (a server that drops the connection mid-reply must not stall the poll). */
function attempt(ok: () => Promise<boolean>): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    ok().catch(() => false),
    new Promise<boolean>((r) => (timer = setTimeout(() => r(false), ATTEMPT_MS))),
  ]).finally(() => clearTimeout(timer));
}

/** Polls every POLL_MS from `t0` until `ok()` succeeds; the time from t0 to the success and the attempts. */
async function pollFrom(t0: number, ok: () => Promise<boolean>, what: string): Promise<{ ms: number; tries: number }> {
  const deadline = t0 + SAMPLE_DEADLINE_MS;
  let tries = 0;
  while (performance.now() < deadline) {
    tries++;
    if (await attempt(ok)) return { ms: performance.now() - t0, tries };
    await sleep(POLL_MS);
  }
  throw new Error(`no ${what} within ${SAMPLE_DEADLINE_MS} ms`);
}

/**
 * One SMTP transaction on :25 (EHLO, MAIL, RCPT, DATA): true when DATA is accepted. Unlike the
 * test helper it gives up as soon as the server closes the connection (an smtpd that dies on
 * a failed lookup), so a dropped session costs the poll nothing extra.
 */
function smtpAccepted(host: string, to: string): Promise<boolean> {
  const msg = buildMessage({ from: "probe@sender.test", to, subject: "bench-apply probe", body: "probe" });
  const script: Array<[string | undefined, number]> = [
    [undefined, 220],
    [`EHLO ${HELO}`, 250],
    ["MAIL FROM:<probe@sender.test>", 250],
    [`RCPT TO:<${to}>`, 250],
    ["DATA", 354],
    [`${msg.data}\r\n.`, 250],
  ];
  return new Promise((resolve) => {
    const sock = connect({ host, port: 25 });
    let step = 0;
    let buf = "";
    const done = (ok: boolean): void => {
      if (ok) sock.end("QUIT\r\n");
      else sock.destroy();
      resolve(ok);
    };
    sock.setEncoding("latin1");
    sock.on("error", () => done(false));
    sock.on("close", () => done(false));
    sock.on("data", (d: string) => {
      buf += d;
      for (let m = /^(\d{3}) [^\n]*\n/m.exec(buf); m; m = /^(\d{3}) [^\n]*\n/m.exec(buf)) {
        buf = buf.slice(m.index + m[0].length);
        if (Number(m[1]) !== script[step]?.[1]) return done(false);
        step++;
        if (step === script.length) return done(true);
        sock.write(`${script[step]?.[0] ?? ""}\r\n`);
      }
    });
  });
}

interface Sample {
  /** addvmail said "live on <vnode>" (pushed at once), not "not pushed" (left to the reconciler). */
  pushed: boolean;
  callMs: number;
  imapMs: number;
  smtpMs: number;
  /** --breakdown: where the time went, ms by phase (see BREAKDOWN). */
  phases?: Record<string, number>;
}

/** IMAP login and SMTP acceptance, polled side by side from t0. */
async function probeBoth(
  v: Vnode,
  user: string,
  t0: number,
): Promise<{ imapMs: number; smtpMs: number; imapTries: number; smtpTries: number }> {
  const [imap, smtp] = await Promise.all([
    pollFrom(t0, () => canLogin(imapClient(v, user)), `IMAP login for ${user}`),
    pollFrom(t0, () => smtpAccepted(v.ns.nsAddress, user), `SMTP acceptance for ${user}`),
  ]);
  return { imapMs: imap.ms, smtpMs: smtp.ms, imapTries: imap.tries, smtpTries: smtp.tries };
}

/** The agent's "changes applied" line written since `offset` in its log, if any. */
function agentApplyLine(v: Vnode, offset: number): Record<string, unknown> | undefined {
  const file = v.agentLog();
  if (!file || !existsSync(file)) return undefined;
  const text = readFileSync(file).subarray(offset).toString("utf8");
  const line = text.split("\n").find((l) => l.includes('"msg":"changes applied"'));
  return line ? (JSON.parse(line) as Record<string, unknown>) : undefined;
}

/** `inServe`: the command as serve runs it for the admin socket (the default, what an operator's
 *  CLI gets with serve running); false: as a CLI process of its own, which connects to the agent. */
async function addvmailSample(v: Vnode, user: string, inServe = true): Promise<Sample> {
  v.harness.commandsInDaemon = inServe;
  const controllerPhases: Record<string, number> = {};
  const logFile = v.agentLog();
  const logOffset = BREAKDOWN && logFile && existsSync(logFile) ? statSync(logFile).size : 0;
  const stop = BREAKDOWN
    ? onPhases((p) => void (controllerPhases[p.name] = (controllerPhases[p.name] ?? 0) + p.ms))
    : () => undefined;
  const t0 = performance.now();
  const r = await v.harness.cli(["addvmail", v.name, user, "--password-stdin"], `${PASSWORD}\n`).finally(() => {
    stop();
    v.harness.commandsInDaemon = true;
  });
  const returned = performance.now();
  if (r.code !== 0) throw new Error(`addvmail ${v.name} ${user}: exit ${r.code} ${r.out.trim()} ${r.err.trim()}`);
  const pushed = r.out.includes(`live on ${v.name}`);
  if (!pushed) log(`addvmail ${v.name} ${user}: ${r.err.trim()}`);
  const probe = await probeBoth(v, user, returned);
  const sample: Sample = { pushed, callMs: returned - t0, imapMs: probe.imapMs, smtpMs: probe.smtpMs };
  if (!BREAKDOWN) return sample;
  // The same probes once more on the now-known mailbox: what first touch costs over a second one.
  const again = await probeBoth(v, user, performance.now());
  const agent = agentApplyLine(v, logOffset);
  const num = (k: string): number => (typeof agent?.[k] === "number" ? agent[k] : Number.NaN);
  return {
    ...sample,
    phases: {
      ...controllerPhases,
      "agent.apply": num("apply_ms"),
      "agent.lookup-commit": num("lookup_ms"),
      "agent.generation-file": num("generation_ms"),
      "probe.imap-tries": probe.imapTries,
      "probe.smtp-tries": probe.smtpTries,
      "probe.imap-again": again.imapMs,
      "probe.smtp-again": again.smtpMs,
    },
  };
}

/**
 * `n` samples on each vnode, taken in turns (ABBA order, so neither side always goes first):
 * whatever the machine does meanwhile (other processes, page cache, CPU frequency) falls on
 * both sides alike, and the ratio between them measures the vnodes, not the minute.
 */
async function addvmailSamples(vnodes: readonly Vnode[], tag: string, n: number): Promise<Sample[][]> {
  const out = vnodes.map((): Sample[] => []);
  const cold = vnodes.map((): Sample[] => []);
  for (let i = -2; i < n; i++) {
    const user = `${tag}${i < 0 ? `w${-i}` : i}@${DOMAIN}`;
    const order = vnodes.map((v, k) => ({ v, k }));
    if (i % 2 !== 0) order.reverse();
    for (const { v, k } of order) {
      // --ab: the same round once more with a connection of its own, first or second in turns.
      const ahead = AB && i % 4 >= 2 ? await addvmailSample(v, `x${user}`, false) : undefined;
      const sample = await addvmailSample(v, user);
      const after = AB && i % 4 < 2 ? await addvmailSample(v, `x${user}`, false) : undefined;
      if (i >= 0) out[k]?.push(sample); // i < 0: two warm-up samples
      const without = ahead ?? after;
      if (i >= 0 && without) cold[k]?.push(without);
    }
  }
  return [...out, ...cold];
}

// --- the NetServa way ------------------------------------------------------------------------------

interface Sshd {
  port: number;
  key: string;
}

async function startSshd(dir: string): Promise<Sshd> {
  const { port, proc } = spawnThrowawaySshd(dir, await freePort());
  onCleanup("sshd", () => stopChild(proc));
  const sshd = { port, key: join(dir, "client_key") };
  await until(
    async () => {
      if (proc.exitCode !== null) throw new Error(`sshd exited ${proc.exitCode}`);
      return (await sshScript(sshd, "echo pong\n").then(
        (o) => o.trim() === "pong",
        () => false,
      ))
        ? true
        : undefined;
    },
    10_000,
    "sshd",
    100,
  );
  return sshd;
}

function sshScript(s: Sshd, script: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      "ssh",
      [
        "-p",
        String(s.port),
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "BatchMode=yes",
        "-o",
        "LogLevel=ERROR",
        "-o",
        "ConnectTimeout=10",
        "-i",
        s.key,
        "root@127.0.0.1",
        "bash",
        "-s",
      ],
      { stdio: ["pipe", "pipe", "pipe"] },
    );
    let out = "";
    let err = "";
    const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
    child.stdout.on("data", (d: Buffer) => void (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => void (err += d.toString()));
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`ssh bash -s exited ${code}: ${err.trim()}`));
    });
    child.stdin.end(script);
  });
}

/** What a NetServa addvmail does over ssh: row into sysadm.db, maildir, postfix reload. */
function netservaScript(v: Vnode, local: string, hash: string, vmail: { uid: number; gid: number }): string {
  if (!/^[a-z0-9]{1,32}$/.test(local)) throw new Error(`unsafe local part ${local}`);
  const paths = createVnodePaths(v.root);
  const user = `${local}@${DOMAIN}`;
  const home = paths.mailHome(DOMAIN, local);
  const sql =
    `INSERT INTO vmails(hid, user, pass, home, uid, gid, active, quota, sieve, name) ` +
    `SELECT id, '${user}', '${hash}', '${home}', uid, gid, 1, 0, '', '' FROM vhosts WHERE domain = '${DOMAIN}';`;
  return [
    "set -euo pipefail",
    `sqlite3 -cmd '.timeout 5000' ${shq(paths.lookupDb)} ${shq(sql)}`,
    `install -d -o ${vmail.uid} -g ${vmail.gid} -m 0700 ${shq(home)} ${shq(join(home, "Maildir"))} ${shq(join(home, "Maildir/cur"))} ${shq(join(home, "Maildir/new"))} ${shq(join(home, "Maildir/tmp"))}`,
    `ip netns exec ${shq(v.ns.name)} postfix -c ${shq(paths.postfixDir)} reload 2>/dev/null`,
    "",
  ].join("\n");
}

/**
 * A NetServa vnode has no agent: with ours running, the reconciler would see the hand-inserted
 * row as drift and put the controller's state back within one health interval. So the agent is
 * stopped for these samples (Postfix and Dovecot keep running: same daemons, files and data)
 * and started again afterwards, when the reconciler removes the hand-made rows.
 */
async function netservaSamples(v: Vnode, sshd: Sshd, tag: string, n: number, hash: string): Promise<Sample[]> {
  const vmail = lookupUser("vmail");
  if (!vmail) throw new Error("no vmail user on this machine (the agent creates it)");
  const rowsBefore = lookupCount(v.root);
  await v.stopAgent();
  try {
    return await netservaRun(v, sshd, tag, n, hash, vmail);
  } finally {
    await v.startAgent();
    await waitApplied(v, 180_000, "the agent to be back");
    // The reconciler finds the hand-made rows (drift) and puts the controller's state back.
    await until(
      () => (lookupCount(v.root) <= rowsBefore ? true : undefined),
      180_000,
      "the reconciler to remove the hand-made rows",
      200,
    );
    await v.agentQuiet(2000, 180_000);
  }
}

async function netservaRun(
  v: Vnode,
  sshd: Sshd,
  tag: string,
  n: number,
  hash: string,
  vmail: { uid: number; gid: number },
): Promise<Sample[]> {
  const out: Sample[] = [];
  for (let i = -1; i < n; i++) {
    const local = `${tag}${i < 0 ? "w" : i}`;
    const user = `${local}@${DOMAIN}`;
    const script = netservaScript(v, local, hash, vmail);
    const t0 = performance.now();
    const [callMs, probe] = await Promise.all([
      sshScript(sshd, script).then(() => performance.now() - t0),
      probeBoth(v, user, t0),
    ]);
    if (i >= 0) out.push({ pushed: true, callMs, imapMs: probe.imapMs, smtpMs: probe.smtpMs });
  }
  return out;
}

// --- throughput ------------------------------------------------------------------------------------

interface Throughput {
  sent: number;
  refused: number;
  delivered: number;
  smtpMs: number;
  totalMs: number;
}

const countFiles = (dir: string): number => (existsSync(dir) ? readdirSync(dir).length : 0);

/** MESSAGES messages over CONCURRENCY SMTP sessions (each sends its share, one after another). */
async function blast(host: string, to: string, newDir: string): Promise<Throughput> {
  const before = countFiles(newDir);
  let next = 0;
  let sent = 0;
  let refused = 0;
  const worker = async (): Promise<void> => {
    const s = await smtpConnect({ host, port: 25, ca: "", servername: HOST });
    try {
      if ((await s.cmd(`EHLO ${HELO}`)).code !== 250) throw new Error("EHLO refused");
      while (next < MESSAGES) {
        next++;
        const msg = buildMessage({
          from: "load@sender.test",
          to,
          subject: `bench-apply load ${next}`,
          body: `message ${next}\r\n${"lorem ipsum dolor sit amet ".repeat(40)}`,
        });
        const steps = [`MAIL FROM:<load@sender.test>`, `RCPT TO:<${to}>`, "DATA"];
        const want = [250, 250, 354];
        let ok = true;
        for (let k = 0; k < steps.length && ok; k++) ok = (await s.cmd(steps[k] as string)).code === want[k];
        if (ok) ok = (await s.cmd(`${msg.data.replace(/^\./gm, "..")}\r\n.`)).code === 250;
        if (ok) sent++;
        else {
          refused++;
          await s.cmd("RSET");
        }
      }
      await s.cmd("QUIT").catch(() => undefined);
    } finally {
      s.close();
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  const smtpMs = performance.now() - t0;
  const target = before + sent;
  await until(
    () => (countFiles(newDir) >= target ? true : undefined),
    60_000,
    `${sent} messages in ${newDir}`,
    10,
  ).catch((e: Error) => log(e.message));
  return { sent, refused, delivered: countFiles(newDir) - before, smtpMs, totalMs: performance.now() - t0 };
}

/** A second Postfix + Dovecot: Debian's stock main.cf/master.cf plus the minimum to deliver
 * (bench-mail's "bare" stack), warmed up until it has delivered one message. */
async function startMinimal(dir: string): Promise<{ ns: TestNetns; newDir: string; to: string }> {
  const { ns, newDir, to } = await startBare(dir, onCleanup);
  await until(
    async () => ((await smtpAccepted(ns.nsAddress, to)) ? true : undefined),
    20_000,
    "the minimal instance to accept mail",
    100,
  );
  await until(
    () => (countFiles(newDir) >= 1 ? true : undefined),
    20_000,
    "the minimal instance to deliver its first message",
    20,
  );
  return { ns, newDir, to };
}

// --- report ------------------------------------------------------------------------------------------

/** Controller phases that the call is made of (the rest is the CLI, the session and the report). */
const CALL_PHASES = [
  "mutation.prepare",
  "mutation.transaction",
  "deliver.vnode",
  "deliver.client",
  "deliver.connect",
  "deliver.apply-changes",
  "deliver.bookkeeping",
  "mutation.capacity",
  "deliver.warm-wait",
];

/** --ab: in serve (the default) against a CLI process's own connection, back to back in every round. */
function printAb(...sizes: Array<[number, Sample[], Sample[]]>): void {
  console.log("");
  console.log("in serve (its live link) / a CLI process's own connection (opened ahead), p50 ms, back to back");
  console.log("mailboxes  measure                          in serve  own conn.  ratio");
  for (const [at, on, off] of sizes)
    for (const [name, pick] of [
      ["addvmail call", (s: Sample) => s.callMs],
      ["start -> IMAP login", (s: Sample) => s.callMs + s.imapMs],
      ["start -> SMTP accepted", (s: Sample) => s.callMs + s.smtpMs],
    ] as const) {
      const a = percentile(on.map(pick), 50);
      const b = percentile(off.map(pick), 50);
      const paired = on.map((s, i) => pick(s) / pick(off[i] ?? s));
      console.log(
        `${String(at).padStart(9)}  ${name.padEnd(31)}  ${f1(a).padStart(8)}  ${f1(b).padStart(9)}  ${(a / b).toFixed(2)}x (paired median ${percentile(paired, 50).toFixed(2)}x)`,
      );
    }
}

/** --breakdown: p50 of each phase per size, from the same samples as the table above. */
function printBreakdown(...sizes: Array<[number, Sample[]]>): void {
  const rows: Array<[string, (s: Sample) => number]> = [
    ["addvmail call (whole, in-process)", (s) => s.callMs],
    ["  mutation.prepare (parse, hash)", (s) => s.phases?.["mutation.prepare"] ?? Number.NaN],
    ["    of which the password hash", (s) => s.phases?.["mutation.hash"] ?? Number.NaN],
    ["  mutation.transaction (PGlite + ORM)", (s) => s.phases?.["mutation.transaction"] ?? Number.NaN],
    ["  deliver: read the vnode row", (s) => s.phases?.["deliver.vnode"] ?? Number.NaN],
    ["  deliver: revocations + gRPC client", (s) => s.phases?.["deliver.client"] ?? Number.NaN],
    ["  deliver: connect (TLS) + ping", (s) => s.phases?.["deliver.connect"] ?? Number.NaN],
    ["  deliver: ApplyChanges round trip", (s) => s.phases?.["deliver.apply-changes"] ?? Number.NaN],
    ["    agent: apply (rows + maildir)", (s) => s.phases?.["agent.apply"] ?? Number.NaN],
    ["      agent: SQLite transaction", (s) => s.phases?.["agent.lookup-commit"] ?? Number.NaN],
    ["    agent: applied-generation file", (s) => s.phases?.["agent.generation-file"] ?? Number.NaN],
    ["  deliver: bookkeeping (applied gen.)", (s) => s.phases?.["deliver.bookkeeping"] ?? Number.NaN],
    ["  mutation.capacity (storage rule)", (s) => s.phases?.["mutation.capacity"] ?? Number.NaN],
    ["  deliver: wait for the warmed link", (s) => s.phases?.["deliver.warm-wait"] ?? Number.NaN],
    ["    warm: read the vnode row", (s) => s.phases?.["warm.vnode"] ?? Number.NaN],
    ["    warm: revocations + gRPC client", (s) => s.phases?.["warm.client"] ?? Number.NaN],
    ["    warm: connect (TLS) + ping", (s) => s.phases?.["warm.ping"] ?? Number.NaN],
    ["  cli: build the program", (s) => s.phases?.["cli.program"] ?? Number.NaN],
    ["  cli: parse + action", (s) => s.phases?.["cli.parse"] ?? Number.NaN],
    ["  session: open the database", (s) => s.phases?.["session.open-db"] ?? Number.NaN],
    ["  session: the command's work", (s) => s.phases?.["session.work"] ?? Number.NaN],
    ["  session: close", (s) => s.phases?.["session.close"] ?? Number.NaN],
    ["  rest (CLI, session, report)", (s) => s.callMs - CALL_PHASES.reduce((t, k) => t + (s.phases?.[k] ?? 0), 0)],
    ["return -> IMAP login (first touch)", (s) => s.imapMs],
    ["  the same login again (known user)", (s) => s.phases?.["probe.imap-again"] ?? Number.NaN],
    ["return -> SMTP accepted (first touch)", (s) => s.smtpMs],
    ["  the same delivery again", (s) => s.phases?.["probe.smtp-again"] ?? Number.NaN],
    ["IMAP attempts until login (p50)", (s) => s.phases?.["probe.imap-tries"] ?? Number.NaN],
    ["SMTP attempts until accepted (p50)", (s) => s.phases?.["probe.smtp-tries"] ?? Number.NaN],
  ];
  const head = ["where the time goes (p50 ms)", ...sizes.map(([at]) => `at ${at}`)];
  const table = rows.map(([name, pick]) => [name, ...sizes.map(([, xs]) => f1(percentile(xs.map(pick), 50)))]);
  const w = head.map((h, i) => Math.max(h.length, ...table.map((r) => (r[i] ?? "").length)));
  const out = (cells: string[]): string =>
    cells.map((c, i) => (i === 0 ? c.padEnd(w[i] ?? 0) : c.padStart(w[i] ?? 0))).join("  ");
  console.log("");
  console.log(out(head));
  console.log(w.map((n) => "-".repeat(n)).join("  "));
  for (const r of table) console.log(out(r));
  console.log("");
}

const f1 = (v: number): string => (Number.isFinite(v) ? v.toFixed(1) : "-");

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error("run as root: it creates network namespaces and runs Postfix/Dovecot");
  const started = performance.now();
  const load0 = readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
  const workDir = mkdtempSync(join(tmpdir(), "nsm-bench-apply-"));
  onCleanup("work dir", () => (opts.keep ? log(`kept ${workDir}`) : rmSync(workDir, { recursive: true, force: true })));
  const hash = await hashPassword(PASSWORD);

  log("starting two vnodes (each its own controller, namespace and agent process with --root) …");
  const [vs, vb] = await Promise.all([startVnode(workDir, "vn1"), startVnode(workDir, "vn2")]);
  const sshDir = join(workDir, "ssh");
  mkdirSync(sshDir, { mode: 0o700 });
  const sshd = await startSshd(sshDir);

  const loadTo = async (
    v: Vnode,
    n: number,
    prefix: string,
  ): Promise<Awaited<ReturnType<typeof bulkLoad>> | undefined> => {
    const missing = n - lookupCount(v.root);
    return missing > 0 ? bulkLoad(v, workDir, prefix, missing, hash) : undefined;
  };
  await loadTo(vs, SMALL, "f");
  const atSmall = lookupCount(vs.root);
  const toLoad = BIG - lookupCount(vb.root);
  log(`bulk-loading ${toLoad} mailboxes onto ${vb.name} (mail:import, one precomputed hash) …`);
  const load = (await loadTo(vb, BIG, "b")) ?? {
    importMs: 0,
    liveMs: 0,
    idleMs: 0,
    notPushed: 0,
    cpuToLiveMs: 0,
    cpuAfterLiveMs: 0,
  };
  const atBig = lookupCount(vb.root);
  log(
    `${vs.name}: ${atSmall} mailboxes, ${vb.name}: ${atBig} (import ${(load.importMs / 1000).toFixed(1)} s, live ${(load.liveMs / 1000).toFixed(1)} s, agent idle ${(load.idleMs / 1000).toFixed(1)} s)`,
  );

  const deaths = { addvmail: 0, netserva: 0 };
  const lockDeaths = (): number => smtpdLockDeaths(vs.root) + smtpdLockDeaths(vb.root);
  const counted = async <T>(kind: keyof typeof deaths, work: () => Promise<T>): Promise<T> => {
    const d0 = lockDeaths();
    const result = await work();
    deaths[kind] += lockDeaths() - d0;
    return result;
  };
  log(`${SAMPLES} addvmail samples on each vnode, in turns …`);
  const [small = [], big = [], smallCold = [], bigCold = []] = await counted("addvmail", () =>
    addvmailSamples([vs, vb], "a", SAMPLES),
  );
  let smallSsh: Sample[] = [];
  let bigSsh: Sample[] = [];
  if (!opts["no-ssh"]) {
    log(`NetServa way: ${SSH_SAMPLES} samples on ${vs.name} …`);
    smallSsh = await counted("netserva", () => netservaSamples(vs, sshd, "s", SSH_SAMPLES, hash));
    log(`NetServa way: ${SSH_SAMPLES} samples on ${vb.name} …`);
    bigSsh = await counted("netserva", () => netservaSamples(vb, sshd, "t", SSH_SAMPLES, hash));
  }
  const v = vb;
  const atBigEnd = lookupCount(v.root);

  let rendered: Throughput | undefined;
  let unfiltered: Throughput | undefined;
  let minimal: Throughput | undefined;
  let throughputNote = "";
  if (!opts["no-throughput"]) {
    try {
      const to = `load@${DOMAIN}`;
      await cliOk(v.harness, ["addvmail", v.name, to, "--password-stdin"], `${PASSWORD}\n`);
      const newDir = join(createVnodePaths(v.root).maildir(DOMAIN, "load"), "new");
      await until(
        async () => ((await smtpAccepted(v.ns.nsAddress, to)) ? true : undefined),
        60_000,
        "the rendered stack to accept mail",
        100,
      );
      await until(() => (countFiles(newDir) >= 1 ? true : undefined), 30_000, "the first message", 20);
      log(`${MESSAGES} messages, ${CONCURRENCY} connections → rendered stack without Rspamd …`);
      unfiltered = await blast(v.ns.nsAddress, to, newDir);
      log(`throughput: enabling Rspamd on ${v.name} …`);
      const tp0 = performance.now();
      await cliOk(v.harness, ["vnode", "set", v.name, "--rspamd", "1"]);
      await waitApplied(v, 120_000, "the vnode to apply --rspamd 1");
      await until(
        async () => ((await smtpAccepted(v.ns.nsAddress, to)) ? true : undefined),
        60_000,
        "the rendered stack to accept mail with Rspamd",
        100,
      );
      const through = countFiles(newDir) + 1;
      await smtpAccepted(v.ns.nsAddress, to);
      await until(() => (countFiles(newDir) >= through ? true : undefined), 30_000, "a message through Rspamd", 20);
      log(
        `Rspamd on (${((performance.now() - tp0) / 1000).toFixed(1)} s); ${MESSAGES} messages, ${CONCURRENCY} connections → rendered stack …`,
      );
      rendered = await blast(v.ns.nsAddress, to, newDir);
      log("minimal Debian-default Postfix + Dovecot in a second namespace …");
      const min = await startMinimal(workDir);
      log(`${MESSAGES} messages, ${CONCURRENCY} connections → minimal stack …`);
      minimal = await blast(min.ns.nsAddress, min.to, min.newDir);
    } catch (error) {
      throughputNote = `throughput part failed: ${(error as Error).message}`;
      log(throughputNote);
    }
  }

  // --- the table
  const header = ["measure", "mailboxes", "n", "p50 ms", "p99 ms", "command"];
  const rows: string[][] = [];
  const lat = (name: string, at: number, xs: number[], command: string): void =>
    void rows.push([name, String(at), String(xs.length), f1(percentile(xs, 50)), f1(percentile(xs, 99)), command]);
  const addCmd = (vnode: string): string => `addvmail ${vnode} aN@${DOMAIN} --password-stdin (in-process CLI)`;
  const sshCmd =
    "ssh root@127.0.0.1 -p PORT bash -s (sqlite3 INSERT; install -d maildir; ip netns exec NS postfix -c ROOT/etc/postfix reload)";
  for (const [at, s, ss, vnode] of [
    [atSmall, small, smallSsh, vs.name],
    [atBig, big, bigSsh, vb.name],
  ] as const) {
    const late = s.filter((x) => !x.pushed).length;
    lat(
      "addvmail call (returns when live)",
      at,
      s.map((x) => x.callMs),
      late ? `${addCmd(vnode)}; ${late} of ${s.length} NOT pushed (reconciler)` : addCmd(vnode),
    );
    lat(
      "addvmail return -> IMAP login",
      at,
      s.map((x) => x.imapMs),
      "ImapFlow LOGIN over TLS :993, polled every 5 ms",
    );
    lat(
      "addvmail return -> SMTP accepted",
      at,
      s.map((x) => x.smtpMs),
      "SMTP :25 RCPT 250 + DATA 250, polled every 5 ms",
    );
    lat(
      "addvmail start -> IMAP login",
      at,
      s.map((x) => x.callMs + x.imapMs),
      "call + return->login",
    );
    lat(
      "addvmail start -> SMTP accepted",
      at,
      s.map((x) => x.callMs + x.smtpMs),
      "call + return->accepted",
    );
    lat(
      "NetServa ssh script (exits)",
      at,
      ss.map((x) => x.callMs),
      sshCmd,
    );
    lat(
      "NetServa ssh start -> IMAP login",
      at,
      ss.map((x) => x.imapMs),
      "same IMAP probe, from ssh start",
    );
    lat(
      "NetServa ssh start -> SMTP accepted",
      at,
      ss.map((x) => x.smtpMs),
      "same SMTP probe, from ssh start",
    );
  }
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => (i === 0 || i === cells.length - 1 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0)))
      .join("  ")
      .trimEnd();
  const p50 = (xs: Sample[], k: (s: Sample) => number): number => percentile(xs.map(k), 50);
  const totalImap = (s: Sample): number => s.callMs + s.imapMs;
  console.log(
    `scripts/bench-apply${process.argv.length > 2 ? " " + process.argv.slice(2).join(" ") : ""}   (${SAMPLES} addvmail and ${SSH_SAMPLES} ssh samples per size; load average at start ${load0})`,
  );
  console.log("");
  console.log(line(header));
  console.log(widths.map((w) => "-".repeat(w)).join("  "));
  for (const r of rows) console.log(line(r));
  console.log("");
  if (BREAKDOWN) printBreakdown([atSmall, small], [atBig, big]);
  if (AB) printAb([atSmall, small, smallCold], [atBig, big, bigCold]);
  const ratioBig = p50(big, totalImap) / p50(small, totalImap);
  const ratioBigAfter = p50(big, (s) => s.imapMs) / p50(small, (s) => s.imapMs);
  console.log(
    `bulk load: mail:import of ${toLoad} mailboxes (batches of 500, one precomputed hash) ${(load.importMs / 1000).toFixed(1)} s, all in sysadm.db and the vnode at its generation after ${(load.liveMs / 1000).toFixed(1)} s, its agent idle (its maildir heal over, then quiet) after ${(load.idleMs / 1000).toFixed(1)} s (agent CPU ${(load.cpuToLiveMs / 1000).toFixed(1)} s until live, then ${(load.cpuAfterLiveMs / 1000).toFixed(1)} s in ${((load.idleMs - load.liveMs) / 1000).toFixed(1)} s: ${((100 * load.cpuAfterLiveMs) / Math.max(1, load.idleMs - load.liveMs)).toFixed(0)} % of a core on average); ${load.notPushed} batch pushes not delivered (left to the reconciler); ${atBigEnd} rows in sysadm.db at the end`,
  );
  console.log(
    `target p50 addvmail start -> IMAP login < 100 ms: ${f1(p50(small, totalImap))} ms at ${atSmall}, ${f1(p50(big, totalImap))} ms at ${atBig} (${p50(big, totalImap) < 100 && p50(small, totalImap) < 100 ? "met" : "NOT met"}); return -> login ${f1(p50(small, (s) => s.imapMs))} / ${f1(p50(big, (s) => s.imapMs))} ms`,
  );
  console.log(
    `at ${atBig} / at ${atSmall}, start -> IMAP login p50: ${ratioBig.toFixed(2)}x (target <= 1.2x: ${ratioBig <= 1.2 ? "met" : "NOT met"}); return -> login: ${ratioBigAfter.toFixed(2)}x`,
  );
  // The same rounds, pair by pair: sample i on the big vnode over sample i on the small one.
  const paired = big.map((b, i) => totalImap(b) / totalImap(small[i] ?? b));
  console.log(
    `  paired by round (taken seconds apart): median ${percentile(paired, 50).toFixed(2)}x, middle half ${percentile(paired, 25).toFixed(2)}-${percentile(paired, 75).toFixed(2)}x`,
  );
  for (const [at, s, ss] of [
    [atSmall, small, smallSsh],
    [atBig, big, bigSsh],
  ] as const) {
    console.log(
      `NetServa / netserva-mail p50 at ${at}: IMAP login ${(p50(ss, (x) => x.imapMs) / p50(s, totalImap)).toFixed(1)}x, SMTP accepted ${(p50(ss, (x) => x.smtpMs) / p50(s, (x) => x.callMs + x.smtpMs)).toFixed(1)}x (both from the start of the command)`,
    );
  }
  console.log("");
  const tpHeader = ["throughput (messages/s)", "sent", "refused", "delivered", "SMTP s", "total s", "msg/s", "config"];
  const tpRows: string[][] = [];
  const tp = (name: string, t: Throughput | undefined, config: string): void => {
    if (!t)
      return void tpRows.push([name, "-", "-", "-", "-", "-", "-", throughputNote || "skipped (--no-throughput)"]);
    tpRows.push([
      name,
      String(t.sent),
      String(t.refused),
      String(t.delivered),
      (t.smtpMs / 1000).toFixed(2),
      (t.totalMs / 1000).toFixed(2),
      f1((t.delivered * 1000) / t.totalMs),
      config,
    ]);
  };
  tp(
    "rendered, Rspamd off: Postfix > LMTP > Dovecot",
    unfiltered,
    `the same vnode before vnode set ${v.name} --rspamd 1`,
  );
  tp(
    "rendered: Postfix > Rspamd > LMTP > Dovecot",
    rendered,
    `agent-rendered main.cf/master.cf/dovecot.conf, vnode set ${v.name} --rspamd 1, --filter-offline`,
  );
  tp(
    "minimal: Postfix > LMTP > Dovecot",
    minimal,
    "main.cf.debian + master.cf.dist (chroot y) + virtual -> lmtp:unix:private/dovecot-lmtp; static userdb",
  );
  const tw = tpHeader.map((h, i) => Math.max(h.length, ...tpRows.map((r) => (r[i] ?? "").length)));
  const tline = (cells: string[]): string =>
    cells
      .map((c, i) => (i === 0 || i === cells.length - 1 ? c.padEnd(tw[i] ?? 0) : c.padStart(tw[i] ?? 0)))
      .join("  ")
      .trimEnd();
  console.log(tline(tpHeader));
  console.log(tw.map((w) => "-".repeat(w)).join("  "));
  for (const r of tpRows) console.log(tline(r));
  const rate = (t: Throughput): number => t.delivered / t.totalMs;
  if (rendered && minimal)
    console.log(
      `rendered / minimal msg/s = ${(rate(rendered) / rate(minimal)).toFixed(2)}   (${MESSAGES} messages of ~1.2 kB, ${CONCURRENCY} SMTP sessions on :25, one recipient; time until all are in Maildir/new)`,
    );
  if (unfiltered && minimal)
    console.log(`rendered with Rspamd off / minimal msg/s = ${(rate(unfiltered) / rate(minimal)).toFixed(2)}`);
  console.log(
    `smtpd processes that died on a locked sysadm.db (fatal: dict_sqlite_lookup): ${deaths.addvmail} during the addvmail samples, ${deaths.netserva} during the NetServa samples, ${lockDeaths()} in the whole run`,
  );
  const load1 = readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
  console.log(`wall time ${((performance.now() - started) / 1000).toFixed(0)} s; load average at end ${load1}`);
}

let failed = false;
try {
  await main();
} catch (error) {
  failed = true;
  log(`failed: ${(error as Error).stack ?? String(error)}`);
} finally {
  await cleanup();
}
process.exit(failed ? 1 : 0);
