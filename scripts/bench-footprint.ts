// Benchmark: what the programs cost to run. Run by scripts/bench-footprint (root: namespaces).
// 1. A CLI command as a whole process (`shvmail`, `addvmail` through their bin aliases, the pinned
//    Node 24 started directly, as an installed package starts them) against a running `serve` on
//    the embedded database, median of --runs; with and without Node's compile cache; `--help`
//    (every command module loaded, as every command did before commands were loaded by name);
//    a bare `node -e 0`; and the NetServa way, `ssh root@127.0.0.1 bash -s` running the
//    equivalent sqlite3 script. With $DATABASE_URL_BENCH: the same command run locally on PostgreSQL.
// 2. Controller RSS: `serve` on PGlite and (with $DATABASE_URL_BENCH) on PostgreSQL.
// 3. Agent RSS on a mail vnode (own namespace, real Postfix + Dovecot), side by side with the same
//    agent started without its launcher's memory options (NETSERVA_AGENT_TUNING=off) and, with
//    --agent-options "A|B", with other Node options: enrolled, health stream connected, first state
//    applied (cold start, then restarted on a warm compile cache, as an installed agent runs), after
//    one more apply, sampled over --idle-seconds (median) with RSS per mapping; then the launcher's
//    agent alone: after --reports health reports on an extra 200 ms stream (720 = an hour at the
//    default 5 s), at --mailboxes mailboxes. Beside it: a bare Node and Node with the agent's modules.
// Loopback and its own namespaces only; everything it starts is stopped by PID.
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { pathToFileURL } from "node:url";
import { create } from "@bufbuild/protobuf";
import { WatchHealthRequestSchema } from "../common/gen/netserva/mail/v1/agent_pb.ts";
import { hashPassword } from "../common/password/index.ts";
import { createAgentClient } from "../controller/fleet/agent-client.ts";
import { homePaths } from "../controller/home/home-paths.ts";
import { startAgentProcess } from "../test/helpers/agent-process.ts";
import type { AgentProcess } from "../test/helpers/agent-process.ts";
import { freePort, startHarness } from "../test/helpers/controller-harness.ts";
import type { Harness } from "../test/helpers/controller-harness.ts";
import { createTestNetns } from "../test/helpers/netns.ts";
import type { TestNetns } from "../test/helpers/netns.ts";
import { spawnThrowawaySshd } from "./throwaway-sshd.ts";

const { values: opts } = parseArgs({
  options: {
    runs: { type: "string", default: "21" },
    "ssh-runs": { type: "string", default: "11" },
    "idle-seconds": { type: "string", default: "60" },
    reports: { type: "string", default: "720" },
    mailboxes: { type: "string", default: "100000" },
    "no-agent": { type: "boolean", default: false },
    "no-cli": { type: "boolean", default: false },
    "agent-options": { type: "string", default: "" },
  },
});
const int = (name: string, v: string | undefined, min: number, max: number): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) throw new Error(`--${name} must be an integer ${min}..${max}`);
  return n;
};
const RUNS = int("runs", opts.runs, 1, 500);
const SSH_RUNS = int("ssh-runs", opts["ssh-runs"], 1, 100);
const IDLE_S = int("idle-seconds", opts["idle-seconds"], 0, 3600);
const REPORTS = int("reports", opts.reports, 0, 100_000);
const MAILBOXES = int("mailboxes", opts.mailboxes, 0, 200_000);

const REPO = join(import.meta.dirname, "..");
const BIN = join(REPO, "bin", "netserva-mail.js");
const NODE = process.execPath;
const PG_URL = process.env["DATABASE_URL_BENCH"];
const DOMAIN = "bench.test";
const AGENT_PORT = 7444;

const log = (s: string): void => void process.stderr.write(`bench-footprint: ${s}\n`);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? (s[(s.length - 1) / 2] ?? NaN) : ((s[s.length / 2 - 1] ?? 0) + (s[s.length / 2] ?? 0)) / 2;
};

const children: ChildProcess[] = [];
const cleanups: Array<() => Promise<void> | void> = [];
async function cleanup(): Promise<void> {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGTERM");
  while (cleanups.length) await Promise.resolve(cleanups.pop()?.()).catch((e: unknown) => log(String(e)));
}
for (const signal of ["SIGINT", "SIGTERM"] as const)
  process.once(signal, () => void cleanup().finally(() => process.exit(130)));

async function until<T>(probe: () => Promise<T | undefined> | T | undefined, ms: number, what: string): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await Promise.resolve(probe()).catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(100);
  }
}

/** Runs a process to its end; wall time from spawn to exit, in ms. */
function timed(cmd: string, args: string[], env: NodeJS.ProcessEnv, stdin = ""): Promise<{ ms: number; out: string }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(cmd, args, { env, stdio: ["pipe", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d: Buffer) => void (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => void (out += d.toString()));
    child.on("error", reject);
    child.on("close", (code) => {
      const ms = performance.now() - t0;
      if (code === 0) resolve({ ms, out });
      else reject(new Error(`${cmd} ${args.slice(0, 3).join(" ")} exited ${code}: ${out.trim().slice(0, 400)}`));
    });
    child.stdin.end(stdin);
  });
}

/** Resident memory of a process, MiB: total, anonymous (heaps, JIT code) and file-backed (the node binary, libraries). */
function rss(pid: number): { total: number; anon: number; file: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (key: string): number => Number(status.match(new RegExp(`^${key}:\\s+(\\d+) kB`, "m"))?.[1] ?? NaN);
  return { total: kb("VmRSS") / 1024, anon: kb("RssAnon") / 1024, file: kb("RssFile") / 1024 };
}
/** Where the resident memory sits: RSS summed per mapping (file path, or [heap]/[anon]), largest first. */
function rssByMapping(pid: number, top = 8): string {
  const sums = new Map<string, number>();
  let name = "";
  for (const line of readFileSync(`/proc/${pid}/smaps`, "utf8").split("\n")) {
    const head = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (head) name = head[1] || "[anon]";
    const m = /^Rss:\s+(\d+) kB/.exec(line);
    if (m) sums.set(name, (sums.get(name) ?? 0) + Number(m[1]));
  }
  return [...sums]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([n, kb]) => `    ${(kb / 1024).toFixed(1).padStart(6)} MB  ${n}`)
    .join("\n");
}
const mb = (r: { total: number; anon: number; file: number }): string =>
  `${r.total.toFixed(1).padStart(6)} MB  (anon ${r.anon.toFixed(1)}, file ${r.file.toFixed(1)})`;

function startServe(env: NodeJS.ProcessEnv): ChildProcess {
  const child = spawn(NODE, [BIN, "serve"], { env, stdio: ["ignore", "ignore", "ignore"] });
  children.push(child);
  return child;
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once("exit", r));
  child.kill("SIGTERM");
  const t = setTimeout(() => child.kill("SIGKILL"), 10_000);
  await exited;
  clearTimeout(t);
}

/** Results go out as they come: a later failure keeps the figures already taken. */
const results = { push: (line: string): void => void process.stdout.write(line + "\n") };
const row = (name: string, ms: number[], extra = ""): void =>
  results.push(
    `${name.padEnd(52)} ${median(ms).toFixed(0).padStart(6)} ms  (min ${Math.min(...ms).toFixed(0)}, max ${Math.max(...ms).toFixed(0)}, n ${ms.length})${extra}`,
  );

// --- 1 + 2: the CLI as a whole process, and the controller's RSS ------------------------------

async function cliAndController(dir: string): Promise<void> {
  const home = join(dir, "home");
  const cache = join(dir, "compile-cache");
  const env: NodeJS.ProcessEnv = {
    PATH: process.env["PATH"],
    NETSERVA_MAIL_HOME: home,
    NETSERVA_MAIL_ACTOR: "bench",
    NODE_COMPILE_CACHE: cache,
  };
  const noCache: NodeJS.ProcessEnv = { ...env, NODE_DISABLE_COMPILE_CACHE: "1" };
  delete noCache["NODE_COMPILE_CACHE"];
  // Bin aliases as npm installs them: a link named after the command, run by the pinned Node.
  const bin = join(dir, "bin");
  mkdirSync(bin);
  for (const name of ["shvmail", "addvmail", "netserva-mail"]) symlinkSync(BIN, join(bin, name));
  const cli = (e: NodeJS.ProcessEnv, name: string, ...args: string[]) => timed(NODE, [join(bin, name), ...args], e);

  await cli(env, "netserva-mail", "init", "--listen", `127.0.0.1:${await freePort()}`);
  await cli(env, "netserva-mail", "vnode", "add", "mx1", "--address", "127.0.0.1:9");
  const serve = startServe(env);
  await until(() => (existsSync(homePaths(home).socket) ? true : undefined), 60_000, "serve's admin socket");
  await cli(env, "netserva-mail", "addvmaildomain", "mx1", DOMAIN, "--skip-dns-check");
  await cli(env, "addvmail", "mx1", `alice@${DOMAIN}`);
  await sleep(2000);
  const serveIdle = rss(serve.pid ?? 0);

  // The NetServa way: the same lookups/changes in a sysadm.db over ssh.
  const sqlite = join(dir, "sysadm.db");
  const sshdDir = join(dir, "sshd");
  mkdirSync(sshdDir);
  const sshd = spawnThrowawaySshd(sshdDir, await freePort());
  children.push(sshd.proc);
  const ssh = (script: string) =>
    timed(
      "ssh",
      [
        "-p",
        String(sshd.port),
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "BatchMode=yes",
        "-o",
        "LogLevel=ERROR",
        "-i",
        sshd.key,
        "root@127.0.0.1",
        "bash",
        "-s",
      ],
      { PATH: process.env["PATH"] },
      script,
    );
  await until(() => ssh("true\n").then(() => true), 15_000, "sshd");
  await ssh(
    `sqlite3 ${sqlite} "CREATE TABLE vmails(id INTEGER PRIMARY KEY, user TEXT UNIQUE, pass TEXT, home TEXT, uid INT, gid INT, active INT, quota INT, name TEXT, created TEXT, updated TEXT); INSERT INTO vmails(user, pass, home, uid, gid, active, quota, name) VALUES ('alice@${DOMAIN}', 'x', '/srv/${DOMAIN}/msg/alice', 1000, 1000, 1, 1073741824, '');"\n`,
  );
  const shvSsh = `sqlite3 -line ${sqlite} "SELECT user, name, quota, active, home, created, updated FROM vmails WHERE user = 'alice@${DOMAIN}'"\n`;
  const addSsh = (user: string): string =>
    `set -e\nsqlite3 ${sqlite} "INSERT INTO vmails(user, pass, home, uid, gid, active, quota) VALUES ('${user}@${DOMAIN}', 'x', '${dir}/m/${user}', 0, 0, 1, 1073741824)"\ninstall -d -m 0700 ${dir}/m/${user}/Maildir/cur ${dir}/m/${user}/Maildir/new ${dir}/m/${user}/Maildir/tmp\n`;

  // Warm the compile cache once, as any earlier command on the machine would have.
  await cli(env, "shvmail", "mx1", `alice@${DOMAIN}`);
  const t: Record<string, number[]> = {
    shv: [],
    add: [],
    shvNoCache: [],
    help: [],
    helpNoCache: [],
    bare: [],
    sshShv: [],
    sshAdd: [],
  };
  for (let i = 0; i < RUNS; i += 1) {
    t.shv?.push((await cli(env, "shvmail", "mx1", `alice@${DOMAIN}`)).ms);
    t.add?.push((await cli(env, "addvmail", "mx1", `u${i}@${DOMAIN}`)).ms);
    t.shvNoCache?.push((await cli(noCache, "shvmail", "mx1", `alice@${DOMAIN}`)).ms);
    t.help?.push((await cli(env, "netserva-mail", "--help")).ms);
    t.helpNoCache?.push((await cli(noCache, "netserva-mail", "--help")).ms);
    t.bare?.push((await timed(NODE, ["-e", "0"], env)).ms);
    if (i < SSH_RUNS) {
      t.sshShv?.push((await ssh(shvSsh)).ms);
      t.sshAdd?.push((await ssh(addSsh(`s${i}`))).ms);
    }
  }
  const serveAfter = rss(serve.pid ?? 0);
  row("shvmail → serve (PGlite), compile cache", t.shv ?? []);
  row("addvmail → serve (PGlite), compile cache", t.add ?? []);
  row("shvmail → serve (PGlite), no compile cache", t.shvNoCache ?? []);
  row("netserva-mail --help (every command module), cache", t.help ?? []);
  row("netserva-mail --help, no compile cache", t.helpNoCache ?? []);
  row("node -e 0 (bare Node 24)", t.bare ?? []);
  row("ssh root@127.0.0.1 bash -s: shvmail as sqlite3", t.sshShv ?? []);
  row("ssh root@127.0.0.1 bash -s: addvmail as sqlite3+install", t.sshAdd ?? []);
  results.push(
    `ssh / CLI (medians): shvmail ${(median(t.sshShv ?? []) / median(t.shv ?? [])).toFixed(1)}x, addvmail ${(median(t.sshAdd ?? []) / median(t.add ?? [])).toFixed(1)}x`,
  );
  results.push(`controller serve, PGlite, idle after start     ${mb(serveIdle)}`);
  results.push(`controller serve, PGlite, after ${RUNS * 3} commands  ${mb(serveAfter)}`);
  await stop(serve);
  await stop(sshd.proc);

  if (!PG_URL) {
    results.push("(PostgreSQL figures skipped: no DATABASE_URL_BENCH)");
    return;
  }
  const pgHome = join(dir, "home-pg");
  const pgEnv: NodeJS.ProcessEnv = { ...env, NETSERVA_MAIL_HOME: pgHome, DATABASE_URL: PG_URL };
  await cli(pgEnv, "netserva-mail", "init", "--listen", `127.0.0.1:${await freePort()}`);
  await cli(pgEnv, "netserva-mail", "vnode", "add", "mx1", "--address", "127.0.0.1:9");
  await cli(pgEnv, "netserva-mail", "addvmaildomain", "mx1", DOMAIN, "--skip-dns-check");
  await cli(pgEnv, "addvmail", "mx1", `alice@${DOMAIN}`);
  const pgServe = startServe(pgEnv);
  await until(async () => ((await cli(pgEnv, "netserva-mail", "status")).out ? true : undefined), 60_000, "pg serve");
  await sleep(3000);
  const pgIdle = rss(pgServe.pid ?? 0);
  const pgShv: number[] = [];
  const pgAdd: number[] = [];
  for (let i = 0; i < Math.min(RUNS, 11); i += 1) {
    pgShv.push((await cli(pgEnv, "shvmail", "mx1", `alice@${DOMAIN}`)).ms);
    pgAdd.push((await cli(pgEnv, "addvmail", "mx1", `p${i}@${DOMAIN}`)).ms);
  }
  row("shvmail, DATABASE_URL (runs locally: MikroORM + PG)", pgShv);
  row("addvmail, DATABASE_URL (runs locally)", pgAdd);
  results.push(`controller serve, PostgreSQL, idle after start  ${mb(pgIdle)}`);
  await stop(pgServe);
}

// --- 3: the agent ------------------------------------------------------------------------------

async function idleRss(args: string[]): Promise<ReturnType<typeof rss>> {
  const child = spawn(NODE, args, { stdio: ["ignore", "ignore", "inherit"] });
  children.push(child);
  await sleep(3000);
  const r = rss(child.pid ?? 0);
  await stop(child);
  return r;
}

async function status(h: Harness, name: string): Promise<{ connected: boolean; applied: boolean }> {
  const rows = JSON.parse((await h.cli(["status", "--json"])).out) as Array<Record<string, unknown>>;
  const r = rows.find((x) => x["vnode"] === name);
  return { connected: r?.["connected"] === true, applied: r?.["appliedGeneration"] === r?.["generation"] };
}

async function agentFootprint(dir: string): Promise<void> {
  results.push(
    `bare node (an idle timer)                        ${mb(await idleRss(["-e", "setInterval(() => {}, 1000)"]))}`,
  );
  const load = `await import(${JSON.stringify(pathToFileURL(join(REPO, "agent", "agent-daemon.ts")).href)}); setInterval(() => {}, 1000);`;
  results.push(
    `node + the agent's modules loaded, not serving   ${mb(await idleRss(["--input-type=module", "-e", load]))}`,
  );

  const h = await startHarness({ healthIntervalMs: 5000 });
  cleanups.push(() => h.close());
  chmodSync(dir, 0o755); // the mail daemons' users walk through it to their root
  const logDir = join(dir, "logs");
  mkdirSync(logDir);

  /** A mail vnode with its own namespace, root and enrolled agent process. */
  const startVnode = async (
    name: string,
    env: Record<string, string>,
  ): Promise<{ ns: TestNetns; readonly pid: number; stop(): Promise<void>; restart(): Promise<void> }> => {
    const ns = await createTestNetns(`bench${name}`);
    cleanups.push(() => ns.destroy());
    const root = join(dir, `vnode-${name}`);
    mkdirSync(root, { mode: 0o755 });
    const added = await h.cli(["vnode", "add", name, "--address", `${ns.nsAddress}:${AGENT_PORT}`]);
    const token = added.out.trim().split("\n").pop() ?? "";
    const agentHome = join(h.dir, `agent-${name}`);
    const enrolled = await h.cli([
      "agent",
      "enroll",
      "--controller",
      h.controllerAddress,
      "--token",
      token,
      "--home",
      agentHome,
    ]);
    if (enrolled.code !== 0) throw new Error(enrolled.err);
    await h.cli(["vnode", "set", name, "--mail-hostname", `mail.${name}.bench.test`, "--mail-listen", ns.nsAddress]);
    // Its own compile cache, so every run starts cold and warms it the same way.
    const launch = (): Promise<AgentProcess> =>
      startAgentProcess({
        ns,
        home: agentHome,
        root,
        port: AGENT_PORT,
        logDir,
        extraArgs: ["--filter-offline"],
        env: { NODE_COMPILE_CACHE: join(dir, "compile-cache"), ...env },
      });
    let agent = await launch();
    cleanups.push(() => agent.stop());
    cleanups.push(() => {
      if (process.exitCode)
        log(`agent ${name} log tail:\n${readFileSync(agent.logFile, "utf8").split("\n").slice(-15).join("\n")}`);
    });
    return {
      ns,
      get pid() {
        return agent.child.pid ?? 0;
      },
      stop: () => agent.stop(),
      async restart() {
        await agent.stop();
        agent = await launch();
      },
    };
  };
  const applied = async (name: string, what: string): Promise<void> => {
    await until(
      async () => {
        const s = await status(h, name);
        return s.connected && s.applied ? true : undefined;
      },
      180_000,
      what,
    );
  };

  // Side by side: the agent as it starts now (its launcher's memory options) and the same agent
  // without them (NETSERVA_AGENT_TUNING=off, the "before"), through the same steps at once.
  const name = "fp1";
  const vnodes = [
    { label: "agent (launcher options)   ", name, vnode: await startVnode(name, {}) },
    {
      label: "agent, tuning off (before) ",
      name: "fp0",
      vnode: await startVnode("fp0", { NETSERVA_AGENT_TUNING: "off" }),
    },
  ];
  for (const [i, o] of (opts["agent-options"] ?? "").split("|").filter(Boolean).entries()) {
    // "VAR=value" words set the environment (MALLOC_ARENA_MAX=1); the rest are Node options.
    const words = o.split(/\s+/).filter(Boolean);
    const env = Object.fromEntries(words.filter((w) => /^[A-Z_]+=/.test(w)).map((w) => w.split("=", 2)));
    const options = words.filter((w) => !/^[A-Z_]+=/.test(w)).join(" ");
    const vnode = await startVnode(`fv${i}`, { ...env, NETSERVA_AGENT_NODE_OPTIONS: options });
    vnodes.push({ label: `agent ${o}`.padEnd(27), name: `fv${i}`, vnode });
  }
  // The first start compiles every module (and loads Node's TypeScript stripper, ~20 MB that
  // stays); an installed agent keeps its compile cache, so it is measured from its second start.
  for (const a of vnodes) await applied(a.name, `${a.name}: the first whole state (cold start)`);
  for (const a of vnodes) results.push(`${a.label} cold start, first state applied      ${mb(rss(a.vnode.pid))}`);
  for (const a of vnodes) await a.vnode.restart();
  const { ns, pid } = vnodes[0]?.vnode ?? { ns: undefined, pid: 0 };
  if (!ns) throw new Error("unreachable");
  const pair = vnodes.map((a) => ({ label: a.label, name: a.name, pid: a.vnode.pid }));
  for (const a of pair) await applied(a.name, `${a.name}: the first whole state`);
  for (const a of pair) results.push(`${a.label} restarted (cache warm), stream up, applied ${mb(rss(a.pid))}`);
  for (const a of pair) {
    const domain = await h.cli(["addvmaildomain", a.name, `${a.name}.${DOMAIN}`, "--skip-dns-check", "--overcommit"]);
    if (domain.code !== 0) throw new Error(domain.err);
  }
  for (const a of pair) await applied(a.name, `${a.name}: addvmaildomain`);
  for (const a of pair) results.push(`${a.label} after one more apply (a domain)   ${mb(rss(a.pid))}`);
  // RSS sampled every 5 s over the idle period (the last sample is at its end): the median and the end.
  const samples = new Map(pair.map((a) => [a.pid, [] as number[]]));
  for (let t = 0; t < IDLE_S; t += 5) {
    await sleep(Math.min(5, IDLE_S - t) * 1000);
    for (const a of pair) samples.get(a.pid)?.push(rss(a.pid).total);
  }
  for (const a of pair) {
    const s = samples.get(a.pid) ?? [];
    results.push(
      `${a.label} ${IDLE_S} s idle, 0 mailboxes: median ${median(s).toFixed(1)} MB (n ${s.length}), at the end ${mb(rss(a.pid))}`,
    );
  }
  for (const a of pair) results.push(`  ${a.label.trim()}: where it sits (RSS per mapping):\n${rssByMapping(a.pid)}`);
  for (const a of vnodes.slice(1)) await a.vnode.stop(); // the rest follows the agent as it starts now

  if (REPORTS > 0) {
    const paths = homePaths(h.home);
    const client = createAgentClient({
      vnode: name,
      address: `${ns.nsAddress}:${AGENT_PORT}`,
      caPem: readFileSync(paths.caCert, "utf8"),
      certPem: readFileSync(paths.cert, "utf8"),
      keyPem: readFileSync(paths.key, "utf8"),
    });
    const before = rss(pid);
    await new Promise<void>((resolve, reject) => {
      const stream = client.watchHealth(create(WatchHealthRequestSchema, { intervalMs: 200 }));
      let n = 0;
      stream.on("data", () => {
        n += 1;
        if (n >= REPORTS) {
          stream.cancel();
          resolve();
        }
      });
      stream.on("error", (e: Error & { code?: number }) => (n >= REPORTS ? resolve() : reject(e)));
    });
    client.close();
    const after = rss(pid);
    results.push(
      `agent: ${REPORTS} more health reports (200 ms stream) ${mb(after)}  (${(after.total - before.total).toFixed(1)} MB over the stream)`,
    );
  }

  if (MAILBOXES > 0) {
    const hash = await hashPassword("Bench-footprint-1");
    for (let start = 0; start < MAILBOXES; start += 20_000) {
      const n = Math.min(20_000, MAILBOXES - start);
      const rows = Array.from({ length: n }, (_, i) => ({
        kind: "mailbox",
        address: `m${String(start + i).padStart(6, "0")}@${name}.${DOMAIN}`,
        passwordHash: hash,
      }));
      const file = join(dir, "import.json");
      writeFileSync(file, JSON.stringify({ version: 1, vnode: name, rows }));
      const r = await h.cli(["mail:import", file]);
      if (r.code !== 0) throw new Error(`mail:import: ${r.err.slice(0, 400)}`);
      rmSync(file);
    }
    await applied(name, `${MAILBOXES} mailboxes`);
    // Idle = the background maildir heal is over: the agent's CPU time stops moving.
    const cpu = (): number => {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      return Number(f[11]) + Number(f[12]); // utime + stime, clock ticks
    };
    let last = cpu();
    await until(
      async () => {
        await sleep(3000);
        const now = cpu();
        const quiet = now - last < 15; // < 5 % of a core over 3 s (clock ticks of 10 ms)
        last = now;
        return quiet ? true : undefined;
      },
      900_000,
      "the agent to be idle after the bulk load",
    );
    results.push(`agent: ${MAILBOXES} mailboxes applied, idle         ${mb(rss(pid))}`);
  }
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "nsm-bench-footprint-"));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  log(`node ${process.version} at ${NODE}; ${RUNS} runs (ssh ${SSH_RUNS})`);
  if (!opts["no-cli"]) await cliAndController(dir);
  if (!opts["no-agent"]) await agentFootprint(dir);
}

main()
  .catch((e: unknown) => {
    log(e instanceof Error ? (e.stack ?? e.message) : String(e));
    process.exitCode = 1;
  })
  .finally(() => cleanup());
