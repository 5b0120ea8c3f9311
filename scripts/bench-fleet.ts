// Benchmark: one controller (`serve`, its own process) and a swarm of agents (real agent daemons,
// each enrolled for real, with a mail host that records what it is told; see test/swarm/): the
// baseline's agents in this process, every further one in a child process (swarm-process.ts), so
// the agent whose push is timed, and the timing, do not wait behind a thousand agents' timers and
// streams on one event loop (--swarm-in-process: all in this process, as before). Measured first
// with the baseline (10 agents) and then with all N, in one run:
//   - controller CPU (share of one core) and RSS, and the swarm process's CPU, over a window with
//     every health stream at its default interval (5 s); health reports and database statements
//   - `status --json` for the whole fleet: the call through the admin socket, and the whole CLI
//     process as an operator runs it
//   - one addvmail to one vnode: until the CLI returns, and until that agent's host has the row;
//     meanwhile this process's event-loop delay, and the controller's own time per phase
//     (netserva_controller_phase_seconds_total: admin socket, mutation, delivery)
//   - a revocation reaching every agent (each one's revoked.json lists the serial)
//   - the controller restarted: every agent reconnected and at its generation
//   - on PostgreSQL, with all N: a second controller joins with the CA key-encryption key and
//     DATABASE_URL only, as an operator adds one (the CA from the database, sealed; nothing copied
//     between homes), the leases split between the two, and
//     one addvmail through controller A's socket to a vnode whose lease B holds (commit-to-live
//     across controllers)
// Run by scripts/bench-fleet (PostgreSQL from DATABASE_URL_TEST, else PGlite). Everything it
// starts is stopped at the end, also on failure.
import { spawn } from "node:child_process";
import { randomBytes, X509Certificate } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { monitorEventLoopDelay, performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { normalizeSerial } from "../common/identity/peer.ts";
import { BIN, restartServeProcess, startServeProcess, type ServeProcess } from "../test/helpers/serve-process.ts";
import { createSwarm, type Swarm } from "../test/swarm/swarm.ts";
import { startSwarmProcess, type SwarmProcess } from "../test/swarm/swarm-process.ts";
import { freshPostgresUrl } from "../test/helpers/fresh-postgres.ts";

const { values: opts } = parseArgs({
  options: {
    agents: { type: "string", default: "1000" },
    baseline: { type: "string", default: "10" },
    window: { type: "string", default: "30" },
    concurrency: { type: "string", default: "8" },
    samples: { type: "string", default: "5" },
    pglite: { type: "boolean", default: false },
    "swarm-in-process": { type: "boolean", default: false },
    /** A directory for CPU profiles of the controller (each serve process writes one at exit). */
    "serve-cpu-prof": { type: "string" },
    /** Only the restart: enroll every agent, then restart the controller --restarts times. */
    "restart-only": { type: "boolean", default: false },
    restarts: { type: "string", default: "3" },
    help: { type: "boolean", default: false },
  },
});
if (opts.help) {
  process.stdout
    .write(`scripts/bench-fleet [--agents 1000] [--baseline 10] [--window 30] [--concurrency 8] [--samples 5]
                    [--pglite] [--swarm-in-process] [--serve-cpu-prof DIR] [--restart-only [--restarts 3]]
  --restart-only   enroll every agent, then only restart the controller --restarts times (each: seconds until
                   every agent is connected and current, most links connecting at once, and the progress
                   every 5 s: connected, current, links connecting, health reports)
`);
  process.exit(0);
}
const count = (name: string, v: string | undefined, min: number, max: number): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) throw new Error(`--${name} must be an integer ${min}..${max}`);
  return n;
};
const AGENTS = count("agents", opts.agents, 2, 5000);
const BASELINE = count("baseline", opts.baseline, 1, AGENTS);
const WINDOW_S = count("window", opts.window, 5, 600);
const CONCURRENCY = count("concurrency", opts.concurrency, 1, 64);
const SAMPLES = count("samples", opts.samples, 1, 50);
const RESTARTS = count("restarts", opts.restarts, 1, 20);
const pgUrl = opts.pglite ? undefined : process.env["DATABASE_URL_TEST"];

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : (s[Math.floor((s.length - 1) / 2)] as number);
};
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
async function until<T>(probe: () => Promise<T | undefined>, ms: number, what: string): Promise<T> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const v = await probe().catch(() => undefined);
    if (v !== undefined) return v;
    await sleep(50);
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}`);
}
const progress = (text: string): void => void process.stderr.write(`bench-fleet: ${text}\n`);

/** utime + stime of a process in seconds (Linux /proc; clock ticks are 100 a second). */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.split(" ") ?? [];
  return (Number(fields[11]) + Number(fields[12])) / 100;
}
function rssMiB(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, "utf8")
    .split("\n")
    .find((l) => l.startsWith("VmRSS:"));
  return Number(line?.replace(/\D+/g, "") ?? 0) / 1024;
}

const freshPostgres = (url: string): Promise<string> => freshPostgresUrl(url, "fleet");

/** The controller's timed phases an addvmail goes through (common/phase-timing.ts). */
const CONTROLLER_PHASES = [
  "admin.connection",
  "admin.request",
  "admin.peer",
  "admin.peer.table",
  "admin.peer.scan",
  "admin.command",
  "mutation.prepare",
  "mutation.transaction",
  "deliver.vnode",
  "deliver.connect",
  "deliver.apply-changes",
  "deliver.bookkeeping",
];

/** netserva_controller_phase_{seconds,runs}_total by phase, and the controller's event-loop delay
 *  by quantile since the previous call (each scrape starts a new window), from `netserva-mail metrics`. */
async function controllerFigures(): Promise<{
  phases: Map<string, { seconds: number; runs: number }>;
  loop: Map<string, number>;
}> {
  const totals = new Map<string, { seconds: number; runs: number }>();
  const loop = new Map<string, number>();
  for (const line of (await cli(["metrics"])).split("\n")) {
    const d = /^netserva_controller_event_loop_delay_seconds\{quantile="([^"]+)"\} (\S+)$/.exec(line);
    if (d) loop.set(d[1] as string, Number(d[2]));
    const m = /^netserva_controller_phase_(seconds|runs)_total\{phase="([^"]+)"\} (\S+)$/.exec(line);
    if (!m) continue;
    const entry = totals.get(m[2] as string) ?? { seconds: 0, runs: 0 };
    entry[m[1] === "seconds" ? "seconds" : "runs"] = Number(m[3]);
    totals.set(m[2] as string, entry);
  }
  return { phases: totals, loop };
}

interface StatusRow {
  vnode: string;
  status: string;
  connected: boolean;
  generation: number;
  appliedGeneration: number;
}

type Row = Record<string, string>;

const results: Array<{ what: string; baseline: string; full: string; target: string }> = [];

let serve!: ServeProcess;
/** A second controller on the same PostgreSQL (the cross-controller figure), stopped at the end. */
let peer: ServeProcess | undefined;
let swarm: Swarm | undefined;
/** The agents beyond the baseline, in a child process (absent with --swarm-in-process). */
let remote: SwarmProcess | undefined;
let swarmDir = "";
/** On PostgreSQL: the CA key-encryption key both controllers are given (NETSERVA_CA_KEK_FILE). */
let kekDir = "";

/** One of our agents (running or not): in this process or in the swarm process. */
const ours = (name: string): boolean => swarm?.get(name) !== undefined || remote?.has(name) === true;
/** One of our agents that runs (a revoked victim is stopped). */
const runs = (name: string): boolean => swarm?.get(name)?.daemon !== undefined || remote?.has(name) === true;
const runningCount = (): number => (swarm?.agents.filter((a) => a.daemon).length ?? 0) + (remote?.agents.length ?? 0);
const load = (): string =>
  loadavg()
    .map((l) => l.toFixed(1))
    .join(" ");

async function cli(argv: string[]): Promise<string> {
  const r = await serve.cli(argv);
  if (r.code !== 0) throw new Error(`${argv.join(" ")}: exit ${r.code}: ${r.err}`);
  return r.out;
}
async function status(): Promise<StatusRow[]> {
  return JSON.parse(await cli(["status", "--json"])) as StatusRow[];
}
/** Every running swarm agent connected and at its generation (`n`: how many must be). */
async function allCurrent(n = runningCount()): Promise<boolean> {
  // Revoked victims stay in the swarm (stopped) but are no longer enrolled.
  const rows = (await status()).filter((r) => r.status === "enrolled" && ours(r.vnode));
  return rows.length === n && rows.every((r) => r.connected && r.appliedGeneration === r.generation);
}

/** `netserva-mail status --json` as its own process, as an operator runs it. */
function statusProcess(): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(process.execPath, [BIN, "status", "--json"], {
      // Without NODE_OPTIONS: --serve-cpu-prof is for the controller, not for this CLI.
      env: {
        PATH: process.env["PATH"] ?? "/usr/bin:/bin",
        ...Object.fromEntries(Object.entries(serve.env).filter(([k]) => k !== "NODE_OPTIONS")),
      },
      stdio: ["ignore", "ignore", "pipe"],
    });
    let err = "";
    child.stderr.on("data", (c: Buffer) => void (err += c.toString()));
    child.once("exit", (code) =>
      code === 0 ? resolve(performance.now() - started) : reject(new Error(`status exited ${code}: ${err}`)),
    );
  });
}

async function measure(size: number, tag: string): Promise<Row> {
  const row: Row = {};
  progress(`${size} agents: waiting for every one connected and current`);
  await until(async () => ((await allCurrent(size)) ? true : undefined), 300_000, `${size} agents current`);
  // CPU and RSS over the window, every stream at its default interval.
  const metric = async (name: string): Promise<number> => (await serve.metric(name)) ?? 0;
  const pid = serve.child.pid as number;
  const c0 = cpuSeconds(pid);
  const s0 = process.cpuUsage();
  const rc0 = remote ? cpuSeconds(remote.pid) : 0;
  const r0 = await metric("netserva_controller_health_reports_total");
  const q0 = await metric("netserva_controller_health_statements_total");
  const t0 = performance.now();
  progress(`${size} agents: CPU window ${WINDOW_S} s`);
  await sleep(WINDOW_S * 1000);
  const seconds = (performance.now() - t0) / 1000;
  const s1 = process.cpuUsage(s0);
  row["controller CPU (cores)"] = ((cpuSeconds(pid) - c0) / seconds).toFixed(3);
  row["controller RSS (MiB)"] = rssMiB(pid).toFixed(0);
  row[opts["swarm-in-process"] ? "swarm process CPU (cores)" : "bench process CPU (cores; the baseline's agents)"] = (
    (s1.user + s1.system) /
    1e6 /
    seconds
  ).toFixed(3);
  if (remote) row["swarm child process CPU (cores)"] = ((cpuSeconds(remote.pid) - rc0) / seconds).toFixed(3);
  row["health reports/s"] = (((await metric("netserva_controller_health_reports_total")) - r0) / seconds).toFixed(1);
  row["health DB statements/s"] = (
    ((await metric("netserva_controller_health_statements_total")) - q0) /
    seconds
  ).toFixed(2);
  // status --json, the whole fleet.
  progress(`${size} agents: status --json`);
  const calls: number[] = [];
  const procs: number[] = [];
  for (let i = 0; i < SAMPLES; i++) {
    const started = performance.now();
    const rows = await status();
    calls.push(performance.now() - started);
    if (rows.length < size) throw new Error(`status listed ${rows.length} of ${size}`);
    procs.push(await statusProcess());
  }
  row["status --json call (ms)"] = median(calls).toFixed(0);
  row["status --json CLI process (ms)"] = median(procs).toFixed(0);
  // One addvmail to one vnode.
  progress(`${size} agents: addvmail`);
  const target = swarm?.agents[0];
  if (!target) throw new Error("no agent");
  const domain = `${tag}.${target.name}.test`;
  if (!target.host.domains.size)
    await cli(["vnode", "set", target.name, "--mail-hostname", `mail.${target.name}.test`]);
  await cli(["addvmaildomain", target.name, domain, "--skip-dns-check"]);
  const returned: number[] = [];
  const live: number[] = [];
  const { phases: phases0 } = await controllerFigures();
  const delay = monitorEventLoopDelay({ resolution: 5 });
  delay.enable();
  for (let i = 0; i < SAMPLES; i++) {
    const address = `user${i}@${domain}`;
    const started = performance.now();
    await cli(["addvmail", target.name, address]);
    returned.push(performance.now() - started);
    await until(async () => (target.host.mailboxes.has(address) ? true : undefined), 60_000, address);
    live.push(performance.now() - started);
  }
  delay.disable();
  const { phases: phases1, loop } = await controllerFigures();
  row["addvmail, CLI returned (ms)"] = median(returned).toFixed(0);
  row["addvmail, on the agent (ms)"] = median(live).toFixed(0);
  row["addvmail: bench event-loop delay p50/p99/max (ms)"] = [0.5, 0.99]
    .map((q) => delay.percentile(q * 100) / 1e6)
    .concat(delay.max / 1e6)
    .map((ms) => ms.toFixed(0))
    .join("/");
  row["addvmail: controller event-loop delay p50/p99/max (ms)"] = ["0.5", "0.99", "1"]
    .map((q) => ((loop.get(q) ?? NaN) * 1000).toFixed(0))
    .join("/");
  for (const phase of CONTROLLER_PHASES) {
    const runs = (phases1.get(phase)?.runs ?? 0) - (phases0.get(phase)?.runs ?? 0);
    const ms = ((phases1.get(phase)?.seconds ?? 0) - (phases0.get(phase)?.seconds ?? 0)) * 1000;
    row[`addvmail: controller ${phase} (ms, mean)`] = runs > 0 ? (ms / runs).toFixed(1) : "-";
  }
  row["load average (1, 5, 15 min)"] = load();
  return row;
}

/** A victim added for the purpose, revoked: until every other agent's revoked.json lists it. */
async function revocation(): Promise<string> {
  if (!swarm) throw new Error("no swarm");
  const victim = await swarm.add(`victim-${swarm.agents.length}`);
  await until(async () => ((await allCurrent()) ? true : undefined), 300_000, "victim live");
  const serial = normalizeSerial(
    new X509Certificate(readFileSync(join(victim.home, "agent.crt"), "utf8")).serialNumber,
  );
  const others = [...swarm.agents.filter((a) => a !== victim && a.daemon), ...(remote?.agents ?? [])];
  progress(`${others.length} agents: revocation`);
  const started = performance.now();
  await cli(["vnode", "revoke", victim.name]);
  await until(
    async () => {
      for (const a of others) {
        let listed: string[] = [];
        try {
          listed = JSON.parse(readFileSync(join(a.home, "revoked.json"), "utf8")) as string[];
        } catch {
          return undefined;
        }
        if (!listed.includes(serial)) return undefined;
      }
      return true;
    },
    120_000,
    "the revocation on every agent",
  );
  const ms = performance.now() - started;
  await victim.stop();
  return (ms / 1000).toFixed(2);
}

/** How many of the running agents status shows connected, and how many at their generation;
 *  with the controller's last warnings and errors on stderr (why they are not). */
async function currentCounts(): Promise<string> {
  const lines = serve
    .stderr()
    .split("\n")
    .filter((l) => /"level":"(warn|error)"/.test(l));
  progress(`controller's last warnings (${lines.length} in all):\n${lines.slice(-12).join("\n")}`);
  const rows = (await status()).filter((r) => r.status === "enrolled" && runs(r.vnode));
  const connected = rows.filter((r) => r.connected).length;
  const current = rows.filter((r) => r.connected && r.appliedGeneration === r.generation).length;
  return `${connected} of ${rows.length} connected, ${current} current`;
}

/** Distinct vnodes the running serve process linked to (its "vnode up" lines): status alone
 *  counts a vnode connected for 15 s after the previous process last heard from it. */
function linkedBySelf(): number {
  const up = new Set<string>();
  for (const line of serve.stderr().split("\n"))
    if (line.includes('"vnode up"')) up.add((JSON.parse(line) as { vnode?: string }).vnode ?? "");
  return up.size;
}

/** serve stopped and started again: until every agent is connected and at its generation. A run
 *  that does not get there within the limit says how far it got instead of failing the bench. */
async function restart(n: number): Promise<[string, string]> {
  progress(`${n} agents: controller restart`);
  await serve.stop();
  const started = performance.now();
  serve = await restartServeProcess(serve);
  let seconds: string;
  // How far it got every 5 s: a restart that stalls shows where (connected, current, connecting).
  const watch = setInterval(() => {
    void (async () => {
      const rows = (await status()).filter((r) => r.status === "enrolled" && runs(r.vnode));
      const connected = rows.filter((r) => r.connected).length;
      const current = rows.filter((r) => r.connected && r.appliedGeneration === r.generation).length;
      const connecting = await serve.metric('netserva_controller_link_connects{which="in_flight"}');
      const reports = await serve.metric("netserva_controller_health_reports_total");
      const log = serve.stderr();
      const lapsed = log.split('"lease lapsed by our clock').length - 1;
      const dropped = log.split('"link dropped"').length - 1;
      progress(
        `restart +${((performance.now() - started) / 1000).toFixed(0)} s: ${linkedBySelf()} linked by the new process; ` +
          `${connected} connected, ${current} current of ${rows.length} in status; ` +
          `${connecting} links connecting; ${reports} reports; ${lapsed} leases lapsed, ${dropped} links dropped; load ${load()}`,
      );
    })().catch(() => undefined);
  }, 5000);
  try {
    await until(
      async () => (linkedBySelf() >= n && (await allCurrent(n)) ? true : undefined),
      300_000,
      "every agent back and current",
    );
    seconds = ((performance.now() - started) / 1000).toFixed(1);
  } catch {
    seconds = `> 300 (${await currentCounts()})`;
  } finally {
    clearInterval(watch);
  }
  return [seconds, String((await serve.metric('netserva_controller_link_connects{which="peak"}')) ?? "?")];
}

/** Figures so far, printed as they come: a run that fails later keeps what it measured. */
function report(tag: string, row: Row): void {
  for (const [what, value] of Object.entries(row)) progress(`${tag}: ${what} = ${value}`);
}

/**
 * Commit-to-live across controllers (PostgreSQL): a second `serve` (the first one's CA, its own
 * certificate and name) joins, the leases are rebalanced between the two, and addvmail is run
 * through controller A's admin socket for a vnode whose lease B holds: A commits and notifies,
 * B pushes, A's command waits for B's report. Until the CLI returns, and until the agent has it.
 */
async function acrossControllers(n: number): Promise<Row> {
  progress(`${n} agents: a second controller joins`);
  // Joins as an operator adds a controller: the KEK and DATABASE_URL, no CA file copied.
  peer = await startServeProcess({
    env: {
      DATABASE_URL: serve.env["DATABASE_URL"] ?? "",
      NETSERVA_CA_KEK_FILE: serve.env["NETSERVA_CA_KEK_FILE"] ?? "",
    },
    config: { name: "ctl-b" },
  });
  const caOf = (home: string): string => readFileSync(join(home, "ca", "ca.crt"), "utf8");
  if (caOf(peer.home) !== caOf(serve.home)) throw new Error("the second controller did not take the first one's CA");
  const rebalanceStarted = performance.now();
  type Lease = { vnode: string; controller: string | null };
  const held = await until(
    async () => {
      const leases = JSON.parse(await cli(["leases", "--json"])) as Lease[];
      const byB = leases.filter((l) => l.controller === "ctl-b").length;
      // An even split (the remainder to either).
      return Math.abs(leases.length - 2 * byB) <= 1 ? leases : undefined;
    },
    300_000,
    "the leases split between two controllers",
  );
  let rebalanced: string;
  try {
    await until(async () => ((await allCurrent(n)) ? true : undefined), 300_000, "every agent current");
    rebalanced = ((performance.now() - rebalanceStarted) / 1000).toFixed(1);
  } catch {
    rebalanced = `> 300 (${await currentCounts()})`;
  }
  progress(`2nd controller joined → leases split, all current (s) = ${rebalanced}`);
  // An agent of this process if B holds one, else one in the swarm process (asked over IPC).
  const heldByB = (name: string): boolean => held.find((l) => l.vnode === name)?.controller === "ctl-b";
  const local = swarm?.agents.find((a) => a.daemon && heldByB(a.name));
  const far = local ? undefined : remote?.agents.find((a) => heldByB(a.name));
  const target = local ?? far;
  if (!target) throw new Error("the second controller holds no running agent's vnode");
  const hasMailbox = async (address: string): Promise<boolean> =>
    local ? local.host.mailboxes.has(address) : ((await remote?.hasMailbox(target.name, address)) ?? false);
  progress(`${n} agents: addvmail through controller A to ${target.name}, held by B`);
  const domain = `across.${target.name}.test`;
  if (!local?.host.domains.size)
    await cli(["vnode", "set", target.name, "--mail-hostname", `mail.${target.name}.test`]);
  await cli(["addvmaildomain", target.name, domain, "--skip-dns-check"]);
  const returned: number[] = [];
  const live: number[] = [];
  for (let i = 0; i < SAMPLES; i++) {
    const address = `user${i}@${domain}`;
    const started = performance.now();
    const out = await cli(["addvmail", target.name, address]);
    if (!/live on/.test(out)) throw new Error(`addvmail through A: ${out}`);
    returned.push(performance.now() - started);
    await until(async () => ((await hasMailbox(address)) ? true : undefined), 60_000, address);
    live.push(performance.now() - started);
  }
  await peer.stop();
  rmSync(peer.dir, { recursive: true, force: true });
  peer = undefined;
  return {
    "2nd controller joined → leases split, all current (s)": rebalanced,
    "addvmail via A, holder B: CLI returned (ms)": median(returned).toFixed(0),
    "addvmail via A, holder B: on the agent (ms)": median(live).toFixed(0),
  };
}

/** --restart-only: every agent enrolled, then the controller restarted RESTARTS times. */
async function restartOnly(names: string[]): Promise<void> {
  progress(`enrolling ${AGENTS - BASELINE} more agents, ${CONCURRENCY} at a time`);
  await enrollRest(names);
  await until(async () => ((await allCurrent()) ? true : undefined), 300_000, "every agent current");
  const lines = [`bench-fleet --restart-only: ${AGENTS} swarm agents on ${pgUrl ? "PostgreSQL" : "PGlite"}`];
  for (let i = 1; i <= RESTARTS; i++) {
    const loadBefore = load();
    const [seconds, peak] = await restart(runningCount());
    const line = `restart ${i}: all current after ${seconds} s, most links connecting at once ${peak}, load ${loadBefore} → ${load()}`;
    progress(line);
    lines.push(line);
  }
  process.stdout.write(lines.join("\n") + "\n");
}

/** The agents beyond the baseline: in a child process (or in this one with --swarm-in-process). */
async function enrollRest(names: string[]): Promise<void> {
  if (opts["swarm-in-process"]) await swarm?.addMany(names.slice(BASELINE), CONCURRENCY);
  else {
    remote = startSwarmProcess({
      dir: join(swarmDir, "child"),
      controller: `127.0.0.1:${serve.port}`,
      addVnode: async (name, address) =>
        (await cli(["vnode", "add", name, "--address", address])).trim().split("\n").pop() ?? "",
      newToken: async (name) => (await cli(["vnode", "token", name])).trim().split("\n").pop() ?? "",
    });
    await remote.addMany(names.slice(BASELINE), CONCURRENCY);
  }
}

async function main(): Promise<void> {
  // --serve-cpu-prof: the controller's long tasks (what a push waits behind), read afterwards in
  // Chrome's profiler or any .cpuprofile viewer.
  const profile: Record<string, string> = opts["serve-cpu-prof"]
    ? { NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${opts["serve-cpu-prof"]}` }
    : {};
  // On PostgreSQL the CA key is kept in the database, sealed under this KEK (controller/pki/ca-seal.ts).
  const shared: Record<string, string> = {};
  if (pgUrl) {
    kekDir = mkdtempSync(join(tmpdir(), "nsm-bench-kek-"));
    shared["NETSERVA_CA_KEK_FILE"] = join(kekDir, "ca.kek");
    writeFileSync(shared["NETSERVA_CA_KEK_FILE"], randomBytes(32).toString("base64") + "\n", { mode: 0o600 });
    shared["DATABASE_URL"] = await freshPostgres(pgUrl);
  }
  serve = await startServeProcess({ env: { ...profile, ...shared } });
  swarmDir = mkdtempSync(join(tmpdir(), "nsm-bench-fleet-"));
  swarm = createSwarm({
    dir: swarmDir,
    controller: `127.0.0.1:${serve.port}`,
    async addVnode(name, address) {
      return (await cli(["vnode", "add", name, "--address", address])).trim().split("\n").pop() ?? "";
    },
    async newToken(name) {
      return (await cli(["vnode", "token", name])).trim().split("\n").pop() ?? "";
    },
  });
  const names = Array.from({ length: AGENTS }, (_, i) => `fl${String(i).padStart(4, "0")}`);
  progress(`enrolling ${BASELINE} agents`);
  await swarm.addMany(names.slice(0, BASELINE), CONCURRENCY);
  if (opts["restart-only"]) return restartOnly(names);
  const base = await measure(BASELINE, "base");
  base["revocation on every agent (s)"] = await revocation();
  [base["controller restart → all current (s)"], base["restart: most links connecting at once"]] =
    await restart(runningCount());
  report(`${BASELINE} agents`, base);

  progress(`enrolling ${AGENTS - BASELINE} more agents, ${CONCURRENCY} at a time`);
  const enrollStarted = performance.now();
  await enrollRest(names);
  const enrollSeconds = (performance.now() - enrollStarted) / 1000;
  const full = await measure(runningCount(), "full");
  report(`${AGENTS} agents`, full);
  full["revocation on every agent (s)"] = await revocation();
  progress(`${AGENTS} agents: revocation on every agent (s) = ${full["revocation on every agent (s)"]}`);
  [full["controller restart → all current (s)"], full["restart: most links connecting at once"]] =
    await restart(runningCount());

  progress(`${AGENTS} agents: controller restart → all current (s) = ${full["controller restart → all current (s)"]}`);
  if (pgUrl)
    Object.assign(
      full,
      await acrossControllers(runningCount()).catch((error: unknown) => {
        progress(`across controllers failed: ${String(error)}`);
        return { "addvmail via A, holder B: on the agent (ms)": "failed" };
      }),
    );

  const targets: Record<string, string> = {
    "controller CPU (cores)": "< 1",
    "controller RSS (MiB)": "< 1024",
    "status --json call (ms)": "< 1000",
    "status --json CLI process (ms)": "< 1000",
    "addvmail, on the agent (ms)": "≤ 1.2× baseline",
    "revocation on every agent (s)": "< 10",
    "controller restart → all current (s)": "< 60",
    "restart: most links connecting at once": "bounded (32)",
  };
  for (const what of Object.keys(full))
    results.push({ what, baseline: base[what] ?? "", full: full[what] ?? "", target: targets[what] ?? "" });
  const width = Math.max(...results.map((r) => r.what.length));
  const head = `${"".padEnd(width)}  ${`${BASELINE} agents`.padStart(12)}  ${`${AGENTS} agents`.padStart(12)}  target`;
  const lines = [
    `bench-fleet: ${AGENTS} swarm agents (baseline ${BASELINE}; ${remote ? `the other ${AGENTS - BASELINE} in a child process` : "all in the bench process"}) on ${pgUrl ? "PostgreSQL" : "PGlite"}, medians of ${SAMPLES}; ` +
      `enrollment of ${AGENTS - BASELINE}: ${enrollSeconds.toFixed(0)} s (${((enrollSeconds * 1000) / (AGENTS - BASELINE)).toFixed(0)} ms each, ${CONCURRENCY} at a time)`,
    head,
    ...results.map((r) => `${r.what.padEnd(width)}  ${r.baseline.padStart(12)}  ${r.full.padStart(12)}  ${r.target}`),
  ];
  process.stdout.write(lines.join("\n") + "\n");
}

try {
  await main();
} finally {
  await remote?.close().catch(() => undefined);
  await swarm?.close().catch(() => undefined);
  await peer?.stop().catch(() => undefined);
  if (peer) rmSync(peer.dir, { recursive: true, force: true });
  await serve?.stop().catch(() => undefined);
  if (serve) rmSync(serve.dir, { recursive: true, force: true });
  if (swarmDir) rmSync(swarmDir, { recursive: true, force: true });
  if (kekDir) rmSync(kekDir, { recursive: true, force: true });
}
