// What a self-daemonising filter daemon (rspamd, clamd) needs from the agent: launch it without
// holding its stdio, find it by pid file, wait on readiness with a deadline, stop it by pid.
// Shaped for the service-control registry: { name, start, reload, stop, status, validate }.
import { spawn } from "node:child_process";
import { chown, mkdir, readFile } from "node:fs/promises";
import { setTimeout as delay } from "node:timers/promises";
import { NetservaError } from "../../common/errors.ts";

export interface DaemonStatus {
  readonly running: boolean;
  readonly pid?: number;
}

export interface ValidationResult {
  readonly ok: boolean;
  /** The checker's own words (stderr + stdout), for the apply report. */
  readonly output: string;
}

export interface ManagedDaemon {
  readonly name: string;
  start(): Promise<void>;
  reload(): Promise<void>;
  stop(): Promise<void>;
  status(): Promise<DaemonStatus>;
  /** Check a candidate config (default: the live one) with the daemon's own checker. */
  validate(candidate?: string): Promise<ValidationResult>;
}

/**
 * Run a daemon's launcher and wait for the launcher (not the daemon) to exit. stdio is ignored:
 * rspamd keeps the stdout it was given open after forking, so a pipe would never close.
 */
export function launch(
  file: string,
  args: readonly string[],
  timeoutMs: number,
  wrap: readonly string[] = [],
): Promise<number> {
  // `wrap` prefixes the command line, e.g. ["ip", "netns", "exec", NS] to start inside a namespace.
  const [cmd, ...rest] = [...wrap, file, ...args] as [string, ...string[]];
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, rest, { stdio: "ignore" });
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new NetservaError("deadline_exceeded", `${file} did not daemonise within ${timeoutMs} ms`));
    }, timeoutMs);
    child.once("error", (err) => {
      clearTimeout(timer);
      reject(NetservaError.from(err, "failed_precondition"));
    });
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      resolve(code ?? (signal === null ? 1 : 128));
    });
  });
}

export async function readPidFile(path: string): Promise<number | undefined> {
  const text = await readFile(path, "utf8").catch(() => "");
  const pid = Number.parseInt(text.trim(), 10);
  return Number.isInteger(pid) && pid > 1 ? pid : undefined;
}

/** Alive and really the named program (a stale pid file may name a reused pid); zombies are dead. */
export async function isRunning(pid: number, program: string): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => "");
  const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
  if (stat === "" || state === "Z" || state === "X") return false;
  const cmdline = await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "");
  return cmdline.split("\0").some((arg) => arg.includes(program));
}

export async function pidStatus(pidFile: string, program: string): Promise<DaemonStatus> {
  const pid = await readPidFile(pidFile);
  if (pid === undefined || !(await isRunning(pid, program))) return { running: false };
  return { running: true, pid };
}

/** Poll `probe` until it returns true or the deadline passes; the wait between polls is short. */
export async function waitUntil(
  what: string,
  deadlineMs: number,
  probe: () => Promise<boolean>,
  everyMs = 20,
): Promise<void> {
  const end = Date.now() + deadlineMs;
  for (;;) {
    if (await probe()) return;
    if (Date.now() >= end) throw new NetservaError("deadline_exceeded", `${what} not reached within ${deadlineMs} ms`);
    await delay(everyMs);
  }
}

/** SIGTERM the pid and wait for it to go; SIGKILL after the deadline. */
export async function stopPid(pid: number, program: string, deadlineMs: number): Promise<void> {
  if (!(await isRunning(pid, program))) return;
  process.kill(pid, "SIGTERM");
  try {
    await waitUntil(`${program} (pid ${pid}) exit`, deadlineMs, async () => !(await isRunning(pid, program)));
  } catch {
    if (await isRunning(pid, program)) process.kill(pid, "SIGKILL");
    await waitUntil(`${program} (pid ${pid}) exit after SIGKILL`, 5_000, async () => !(await isRunning(pid, program)));
  }
}

export interface SystemUser {
  readonly uid: number;
  readonly gid: number;
}

/** Look a system user up in /etc/passwd (no getent: no process, no NSS surprises). */
export async function lookupSystemUser(name: string): Promise<SystemUser> {
  const passwd = await readFile("/etc/passwd", "utf8");
  for (const line of passwd.split("\n")) {
    const [user, , uid, gid] = line.split(":");
    if (user === name && uid !== undefined && gid !== undefined) return { uid: Number(uid), gid: Number(gid) };
  }
  throw new NetservaError(
    "failed_precondition",
    `system user ${name} does not exist: install the package that creates it`,
  );
}

/** mkdir -p, then hand the leaf to the daemon's user (it writes pid, sockets, caches there). */
export async function ensureOwnedDirs(dirs: readonly string[], owner: SystemUser, mode = 0o755): Promise<void> {
  for (const dir of dirs) {
    await mkdir(dir, { recursive: true, mode });
    await chown(dir, owner.uid, owner.gid);
  }
}

/** The last lines of a log, for an error that says why a daemon did not come up. */
export async function logTail(path: string, lines = 8): Promise<string> {
  const text = await readFile(path, "utf8").catch(() => "");
  return text.trimEnd().split("\n").slice(-lines).join("\n");
}
