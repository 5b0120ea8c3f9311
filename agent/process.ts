// The agent's one way to run programs and watch processes. Programs run with an argument list,
// never a shell, with a deadline and a minimal environment; a non-zero exit is data (checkers like
// `postfix check` report failure through it). Readiness is polled with a deadline, never slept.
import { execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { closeSync, openSync, readFileSync, rmSync } from "node:fs";
import { readdir, readFile } from "node:fs/promises";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { NetservaError } from "../common/errors.ts";
import { childStarted } from "./apply/kill-points.ts";

const MINIMAL_ENV = { PATH: "/usr/sbin:/usr/bin:/sbin:/bin" };

export interface RunOptions {
  /** Prefix for the command line, e.g. ["ip", "netns", "exec", "ns1"] to run inside a namespace. */
  readonly wrap?: readonly string[];
  readonly timeoutMs?: number;
  readonly env?: NodeJS.ProcessEnv;
  /** Largest output kept (default 8 MiB); `postqueue -j` on a big queue needs more. */
  readonly maxBuffer?: number;
}

export interface RunResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

function commandLine(file: string, args: readonly string[], options: RunOptions): [string, string[]] {
  const [cmd, ...rest] = [...(options.wrap ?? []), file, ...args] as [string, ...string[]];
  return [cmd, rest];
}

/** Runs a program to its end and collects what it said; never throws for a non-zero exit. */
export function runProgram(file: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  const [cmd, rest] = commandLine(file, args, options);
  const timeoutMs = options.timeoutMs ?? 30_000;
  return new Promise((resolve) => {
    execFile(
      cmd,
      rest,
      { timeout: timeoutMs, env: options.env ?? MINIMAL_ENV, maxBuffer: options.maxBuffer ?? 8 << 20 },
      (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof err.code === "number" ? err.code : 127;
        const why =
          err === null ? "" : err.killed ? `\n(killed after ${timeoutMs} ms)` : code === 127 ? err.message : "";
        resolve({ code, stdout: String(stdout), stderr: String(stderr) + why });
      },
    );
    childStarted(file);
  });
}

/** Runs and requires exit 0; the error carries the program's own words. */
export async function runChecked(file: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  const r = await runProgram(file, args, options);
  if (r.code !== 0) throw new Error(`${file} ${args.join(" ")} exited ${r.code}: ${(r.stderr || r.stdout).trim()}`);
  return r;
}

/**
 * Runs a command that leaves a daemon behind (`dovecot`, `postfix start`, `rspamd`, `clamd`). The
 * daemon inherits the command's stdout/stderr (rspamd keeps them open after it forks), so waiting
 * for those pipes to close would wait for the daemon to exit: output goes to a temporary file and
 * only the command's own exit is awaited. A command still running at the deadline is killed.
 */
export function runDaemonCommand(file: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  const [cmd, rest] = commandLine(file, args, options);
  const out = join(tmpdir(), `netserva-sc-${process.pid}-${randomBytes(4).toString("hex")}.log`);
  const fd = openSync(out, "w", 0o600);
  return new Promise<RunResult>((resolve) => {
    const child = spawn(cmd, rest, { stdio: ["ignore", fd, fd], env: options.env ?? MINIMAL_ENV });
    childStarted(file);
    const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 30_000);
    let finished = false;
    const finish = (code: number, extra = ""): void => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      closeSync(fd);
      const text = readFileSync(out, "utf8") + extra;
      rmSync(out, { force: true });
      resolve({ code, stdout: "", stderr: text });
    };
    child.on("error", (err) => finish(127, err.message));
    child.on("exit", (code, signal) => finish(code ?? 128, signal ? `\n(killed by ${signal})` : ""));
  });
}

/** Polls `probe` until it returns true; past the deadline, fails naming what it waited for. */
export async function waitUntil(
  what: string,
  deadlineMs: number,
  probe: () => Promise<boolean> | boolean,
  everyMs = 20,
): Promise<void> {
  const end = Date.now() + deadlineMs;
  for (;;) {
    if (await probe()) return;
    if (Date.now() >= end) throw new NetservaError("deadline_exceeded", `${what} not reached within ${deadlineMs} ms`);
    await delay(everyMs);
  }
}

/** Alive (not a zombie) and, when `program` is given, really that program: a stale pid file may name a reused pid. */
export async function isRunning(pid: number, program?: string): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => "");
  const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
  if (stat === "" || state === "Z" || state === "X") return false;
  if (program === undefined) return true;
  const cmdline = await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "");
  return cmdline.split("\0").some((arg) => arg.includes(program));
}

/** The pid in a daemon's pid file if that process is alive (and is `program`), else undefined. */
export async function livePid(pidFile: string, program?: string): Promise<number | undefined> {
  const pid = Number.parseInt((await readFile(pidFile, "utf8").catch(() => "")).trim(), 10);
  if (!Number.isInteger(pid) || pid <= 1) return undefined;
  return (await isRunning(pid, program)) ? pid : undefined;
}

/**
 * SIGKILL what is left of a daemon whose session leader (its master: Postfix, Dovecot and Rspamd
 * all call setsid) died: the workers still in session `sid`. Rspamd's workers outlive a killed
 * main process and would pile up with each restart; Postfix's would hold the listening sockets
 * the new master binds. The kernel does not reuse a pid while a session of that id has members,
 * so they are exactly that daemon's orphans. Nothing is done while the leader lives.
 */
export async function killOrphanedSession(sid: number): Promise<number> {
  if (!Number.isInteger(sid) || sid <= 1 || (await isRunning(sid))) return 0;
  let killed = 0;
  for (const entry of await readdir("/proc").catch(() => [] as string[])) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid <= 1) continue;
    const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => "");
    // Fields after the command's closing parenthesis: state ppid pgrp session …
    const session = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[3]);
    if (session !== sid) continue;
    try {
      process.kill(pid, "SIGKILL");
      killed += 1;
    } catch {
      // exited meanwhile
    }
  }
  return killed;
}

/** SIGTERM the pid and wait for it to go; SIGKILL after the deadline. Only that pid, nothing broader. */
export async function stopPid(pid: number, program: string | undefined, deadlineMs: number): Promise<void> {
  const gone = async (): Promise<boolean> => !(await isRunning(pid, program));
  if (await gone()) return;
  process.kill(pid, "SIGTERM");
  try {
    await waitUntil(`${program ?? "process"} (pid ${pid}) exit`, deadlineMs, gone);
  } catch {
    if (!(await gone())) process.kill(pid, "SIGKILL");
    await waitUntil(`${program ?? "process"} (pid ${pid}) exit after SIGKILL`, 5_000, gone);
  }
}

/** True when a unix socket accepts a connection (and optionally greets with `banner`). */
export function socketAnswers(path: string, banner?: string, timeoutMs = 1_000): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    const done = (ok: boolean): void => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(timeoutMs, () => done(false));
    s.on("error", () => done(false));
    s.on("connect", () => (banner === undefined ? done(true) : undefined));
    s.on("data", (d) => done(d.toString().startsWith(banner ?? "")));
  });
}

/** The last lines of a log, for an error that says why a daemon did not come up. */
export async function logTail(path: string, lines = 8): Promise<string> {
  const text = await readFile(path, "utf8").catch(() => "");
  return text.trimEnd().split("\n").slice(-lines).join("\n");
}
