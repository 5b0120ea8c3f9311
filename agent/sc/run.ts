// Run a program with an argument list (never a shell) and collect its result. A non-zero exit is
// data, not an exception: checkers like `postfix check` report failure through it.
import { execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { closeSync, openSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface RunOptions {
  /** Prefix for the command line, e.g. ["ip", "netns", "exec", "ns1"] to run inside a namespace. */
  readonly wrap?: readonly string[];
  readonly timeoutMs?: number;
  readonly env?: NodeJS.ProcessEnv;
}

export interface RunResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export function runProgram(file: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  const argv = [...(options.wrap ?? []), file, ...args];
  const [cmd, ...rest] = argv as [string, ...string[]];
  return new Promise((resolve) => {
    execFile(
      cmd,
      rest,
      {
        timeout: options.timeoutMs ?? 30_000,
        env: options.env ?? { PATH: "/usr/sbin:/usr/bin:/sbin:/bin" },
        maxBuffer: 8 << 20,
      },
      (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof err.code === "number" ? err.code : 127;
        const killed = err !== null && err.killed ? `\n(killed after ${options.timeoutMs ?? 30_000} ms)` : "";
        resolve({ code, stdout: String(stdout), stderr: String(stderr) + killed });
      },
    );
  });
}

/** Run and require exit 0; the error carries stderr so the caller can report the daemon's words. */
export async function runChecked(file: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  const r = await runProgram(file, args, options);
  if (r.code !== 0) {
    throw new Error(`${file} ${args.join(" ")} exited ${r.code}: ${(r.stderr || r.stdout).trim()}`);
  }
  return r;
}

/**
 * Run a command that may leave a daemon behind (`dovecot`, `postfix start`). The daemon inherits
 * the child's stdout/stderr, so waiting for those pipes to close would wait for the daemon to
 * exit: output goes to a temp file instead and we wait only for the command's own exit.
 */
export function runDaemonCommand(file: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  const argv = [...(options.wrap ?? []), file, ...args];
  const [cmd, ...rest] = argv as [string, ...string[]];
  const out = join(tmpdir(), `netserva-sc-${process.pid}-${randomBytes(4).toString("hex")}.log`);
  const fd = openSync(out, "w", 0o600);
  return new Promise<RunResult>((resolve) => {
    const child = spawn(cmd, rest, {
      stdio: ["ignore", fd, fd],
      env: options.env ?? { PATH: "/usr/sbin:/usr/bin:/sbin:/bin" },
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 30_000);
    const finish = (code: number, extra = ""): void => {
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
