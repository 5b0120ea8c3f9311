// A booted Debian 12 for the production-mode tests: the cached root from scripts/booted-root under
// a throwaway overlay (the cache is never written), booted by systemd-nspawn with systemd or
// openrc-init as PID 1, attached to a network namespace of the test. Commands run inside through
// nsenter into every namespace of the container's init. Stopped by killing that init (which ends
// the whole PID namespace), then the overlay and namespace are removed.
import { execFile, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, closeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { createTestNetns, type TestNetns } from "./netns.ts";

const exec = promisify(execFile);
const repo = resolve(import.meta.dirname, "../..");

export type InitKind = "systemd" | "openrc";

export interface RunResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export interface BootedSystem {
  readonly kind: InitKind;
  /** The container's file system as seen from the host (the overlay's merged view). */
  readonly root: string;
  readonly ns: TestNetns;
  /** Run a program inside (all namespaces of the container's init), with a clean environment. */
  run(argv: readonly string[], opts?: { input?: string; timeoutMs?: number }): Promise<RunResult>;
  /** Like run, but throws with both streams when the exit code is not 0. */
  ok(argv: readonly string[], opts?: { input?: string; timeoutMs?: number }): Promise<string>;
  /** The boot console (nspawn's output). */
  console(): string;
  stop(): Promise<void>;
}

/** The cached root for `kind`, built by scripts/booted-root when missing. */
export async function bootedRoot(kind: InitKind): Promise<string> {
  const { stdout } = await exec(join(repo, "scripts/booted-root"), [kind], {
    timeout: 30 * 60_000,
    maxBuffer: 1 << 24,
  });
  return stdout.trim().split("\n").pop() ?? "";
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The first descendant of `ancestor` whose command name is `comm` (breadth first). */
function findDescendant(ancestor: number, comm: string): number | undefined {
  const children = new Map<number, { ppid: number; comm: string }>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const close = stat.lastIndexOf(")");
      const name = stat.slice(stat.indexOf("(") + 1, close);
      const ppid = Number(stat.slice(close + 2).split(" ")[1]);
      children.set(Number(entry), { ppid, comm: name });
    } catch {
      // gone meanwhile
    }
  }
  let level = [ancestor];
  while (level.length > 0) {
    const next: number[] = [];
    for (const [pid, p] of children) {
      if (!level.includes(p.ppid)) continue;
      if (p.comm === comm) return pid;
      next.push(pid);
    }
    level = next;
  }
  return undefined;
}

export async function bootSystem(kind: InitKind, tag: string): Promise<BootedSystem> {
  const lower = await bootedRoot(kind);
  const dir = mkdtempSync(join(tmpdir(), "nsm-boot-"));
  const [upper, work, merged] = ["upper", "work", "merged"].map((d) => join(dir, d)) as [string, string, string];
  for (const d of [upper, work, merged]) mkdirSync(d);
  await exec("mount", [
    "-t",
    "overlay",
    "overlay",
    "-o",
    `lowerdir=${lower},upperdir=${upper},workdir=${work}`,
    merged,
  ]);
  const ns = await createTestNetns(tag);
  const logFile = join(dir, "console.log");
  const logFd = openSync(logFile, "a");
  const machine = `nsm-${tag}-${process.pid}`.slice(0, 60);
  const common = [
    "-D",
    merged,
    "--register=no",
    "--keep-unit",
    "-M",
    machine,
    `--network-namespace-path=/run/netns/${ns.name}`,
  ];
  const args = kind === "systemd" ? [...common, "--boot"] : [...common, "/sbin/openrc-init"];
  const nspawn = spawn("systemd-nspawn", args, { stdio: ["ignore", logFd, logFd] });
  closeSync(logFd);
  nspawn.on("error", () => undefined);
  const readConsole = () => readFileSync(logFile, "utf8");

  let initPid: number | undefined;
  const cleanup = async (): Promise<void> => {
    if (initPid !== undefined) {
      try {
        process.kill(initPid, "SIGKILL");
      } catch {
        // already gone
      }
    }
    if (nspawn.exitCode === null && nspawn.signalCode === null) {
      await new Promise((r) => {
        const t = setTimeout(() => {
          nspawn.kill("SIGKILL");
          r(undefined);
        }, 10_000);
        nspawn.once("exit", () => {
          clearTimeout(t);
          r(undefined);
        });
      });
    }
    for (let i = 0; i < 50; i++) {
      const r = await exec("umount", [merged]).then(
        () => true,
        () => false,
      );
      if (r) break;
      await sleep(200);
    }
    await ns.destroy();
    rmSync(dir, { recursive: true, force: true });
  };

  const run = async (argv: readonly string[], opts: { input?: string; timeoutMs?: number } = {}) => {
    if (initPid === undefined) throw new Error("not booted");
    const full = ["-t", String(initPid), "-a", "env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"];
    return new Promise<RunResult>((resolveRun) => {
      const child = execFile(
        "nsenter",
        [...full, ...argv],
        { timeout: opts.timeoutMs ?? 120_000, maxBuffer: 1 << 26 },
        (error, stdout, stderr) => {
          const code = error ? (typeof error.code === "number" ? error.code : 1) : 0;
          resolveRun({ code, stdout, stderr });
        },
      );
      child.stdin?.on("error", () => undefined);
      child.stdin?.end(opts.input ?? "");
    });
  };

  try {
    const initComm = kind === "systemd" ? "systemd" : "openrc-init";
    const deadline = Date.now() + 60_000;
    while ((initPid = nspawn.pid === undefined ? undefined : findDescendant(nspawn.pid, initComm)) === undefined) {
      if (Date.now() > deadline || nspawn.exitCode !== null)
        throw new Error(`the ${kind} container did not start:\n${readConsole()}`);
      await sleep(100);
    }
    // Booted: systemd says running (or degraded), OpenRC has reached the default runlevel.
    const bootDeadline = Date.now() + 120_000;
    for (;;) {
      const r =
        kind === "systemd"
          ? await run(["systemctl", "is-system-running"])
          : await run(["sh", "-c", "test -e /run/openrc/softlevel && rc-status --runlevel"]);
      const state = r.stdout.trim();
      if (kind === "systemd" ? ["running", "degraded"].includes(state) : state === "default") break;
      if (Date.now() > bootDeadline)
        throw new Error(`the ${kind} container did not boot (${state}):\n${readConsole()}`);
      await sleep(250);
    }
  } catch (error) {
    await cleanup();
    throw error;
  }

  return {
    kind,
    root: merged,
    ns,
    run,
    async ok(argv, opts) {
      const r = await run(argv, opts);
      if (r.code !== 0) throw new Error(`${argv.join(" ")} exited ${r.code}\n${r.stdout}\n${r.stderr}`);
      return r.stdout;
    },
    console: readConsole,
    stop: cleanup,
  };
}

/**
 * `find / -xdev` inside, minus what the package manager and the system keep changing on their
 * own (dpkg's database and logs, debconf's cache, the shadow backups, journal and timers): the
 * listing a clean install-then-purge must leave as it found.
 */
export async function fileListing(sys: BootedSystem): Promise<string[]> {
  const out = await sys.ok(["find", "/", "-xdev"], { timeoutMs: 120_000 });
  const noise = [
    /^\/var\/lib\/dpkg(\/|$)/,
    /^\/var\/cache\/debconf(\/|$)/,
    /^\/var\/log\/(?!netserva-mail)/,
    /^\/etc\/(passwd|group|shadow|gshadow|subuid|subgid)-$/,
    /^\/etc\/\.pwd\.lock$/,
    /^\/var\/lib\/systemd\//,
    /^\/var\/cache\/ldconfig(\/|$)/,
    /^\/tmp\//,
    /^\/var\/tmp\//,
    // The stock Rspamd's own hyperscan cache (files named by a hash: .hs, .hsmp, .unser, and the
    // .new/.tmp ones it compiles them in, in the background after each start), history,
    // round-robin stats and socket, written whenever it runs (it may still be starting when the
    // first listing is taken).
    /^\/var\/lib\/rspamd\/([0-9a-f]{16,}\.[^/]*|rspamd\.(history|rrd|sock)|stats\.ucl)$/,
    /^\/root\//,
    // The stock Postfix's own start (at boot, possibly still under way when the first listing is
    // taken): Debian's script copies /etc files into the chroot, and the master takes its lock.
    /^\/var\/spool\/postfix\/(etc|dev|lib|usr)(\/|$)/,
    /^\/var\/lib\/postfix\/master\.lock$/,
    /^\/var\/spool\/postfix\/pid\/master\.pid$/,
  ];
  return out
    .split("\n")
    .filter((l) => l !== "" && !noise.some((re) => re.test(l)))
    .sort();
}
