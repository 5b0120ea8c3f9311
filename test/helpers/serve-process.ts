// Runs `netserva-mail serve` as its own process on the embedded database, exactly as an operator
// would, and talks to it the way the CLI does: through the admin socket in its home. Stopped by
// PID at teardown.
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { forwardToDaemon } from "../../controller/cli/admin-socket.ts";
import { createCliContext } from "../../controller/cli/cli-context.ts";
import { runCommand } from "../../controller/cli/main.ts";
import { freePort } from "./controller-harness.ts";
import type { CliRun } from "./controller-harness.ts";
import { trackTempDir } from "./temp-dirs.ts";

export const BIN = join(import.meta.dirname, "..", "..", "bin", "netserva-mail.js");

export interface ServeProcess {
  readonly dir: string;
  readonly home: string;
  readonly socket: string;
  readonly port: number;
  readonly child: ChildProcess;
  /** The environment it was started with (the home, DATABASE_URL, …). */
  readonly env: Record<string, string> & { NETSERVA_MAIL_HOME: string };
  readonly args: string[];
  /** Everything the daemon wrote on stderr so far (its JSON log lines among it). */
  stderr(): string;
  /** A command through the admin socket, as the CLI sends it (actor "tester"). */
  cli(argv: string[], stdin?: string, cwd?: string): Promise<CliRun>;
  /** `netserva-mail metrics`: one sample value by its name and labels as printed. */
  metric(sample: string): Promise<number | undefined>;
  /** SIGTERM and wait; resolves with the exit code. */
  stop(): Promise<number | null>;
}

/** A controller home made by `init` in this process (the embedded database is closed after). */
export async function initHome(
  dir: string,
  port: number,
  extraEnv: Record<string, string> = {},
): Promise<Record<string, string> & { NETSERVA_MAIL_HOME: string }> {
  const env = { ...extraEnv, NETSERVA_MAIL_HOME: join(dir, "home"), NETSERVA_MAIL_ACTOR: "tester" };
  const ctx = createCliContext({
    out: () => undefined,
    err: () => undefined,
    readStdin: async () => "",
    env,
    isTTY: false,
  });
  const code = await runCommand(["init", "--listen", `127.0.0.1:${port}`], ctx);
  if (code !== 0) throw new Error(`init failed with ${code}`);
  writeFileSync(join(env.NETSERVA_MAIL_HOME, "dns-zones"), "example.com\n");
  return env;
}

async function socketAnswers(path: string): Promise<boolean> {
  if (!existsSync(path)) return false;
  return new Promise((resolve) => {
    const s = connect(path);
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}

export interface ServeOptions {
  args?: string[];
  deadlineMs?: number;
  /** merged into controller.json after init */ config?: object;
  /** extra environment for init and serve (DATABASE_URL for PostgreSQL) */ env?: Record<string, string>;
  /** runs on the empty home before `init` (another controller's CA copied in: several controllers) */
  prepareHome?: (home: string) => void;
}

export async function startServeProcess(options: ServeOptions = {}): Promise<ServeProcess> {
  // A restarted serve reuses it, so stop() cannot remove it: removed after the test file.
  const dir = trackTempDir(mkdtempSync(join(tmpdir(), "nsm-serve-")));
  const port = await freePort();
  options.prepareHome?.(join(dir, "home"));
  const env = await initHome(dir, port, options.env);
  const home = env.NETSERVA_MAIL_HOME;
  if (options.config) {
    const file = join(home, "controller.json");
    writeFileSync(file, JSON.stringify({ ...(JSON.parse(readFileSync(file, "utf8")) as object), ...options.config }));
  }
  return spawnServe({ dir, port, env, args: options.args ?? [], deadlineMs: options.deadlineMs ?? 120_000 });
}

/**
 * `serve` again on the home of one that ended (killed or stopped): same port, same database, with
 * `env` added to (or, with "" values, removed from) the first one's environment.
 */
export async function restartServeProcess(
  previous: ServeProcess,
  env: Record<string, string> = {},
  deadlineMs = 120_000,
): Promise<ServeProcess> {
  if (previous.child.exitCode === null && previous.child.signalCode === null)
    throw new Error("restartServeProcess: the previous serve is still running");
  const merged: Record<string, string> = { ...previous.env };
  for (const [key, value] of Object.entries(env)) {
    if (value === "") delete merged[key];
    else merged[key] = value;
  }
  return spawnServe({
    dir: previous.dir,
    port: previous.port,
    env: merged as Record<string, string> & { NETSERVA_MAIL_HOME: string },
    args: previous.args,
    deadlineMs,
  });
}

async function spawnServe(o: {
  dir: string;
  port: number;
  env: Record<string, string> & { NETSERVA_MAIL_HOME: string };
  args: string[];
  deadlineMs: number;
}): Promise<ServeProcess> {
  const { dir, port, env } = o;
  const home = env.NETSERVA_MAIL_HOME;
  const socket = join(home, "controller.sock");
  const child = spawn(process.execPath, [BIN, "serve", "--listen", `127.0.0.1:${port}`, ...o.args], {
    env: { PATH: process.env["PATH"] ?? "/usr/bin:/bin", ...env },
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr?.setEncoding("utf8");
  child.stderr?.on("data", (chunk: string) => void (stderr += chunk));
  const deadline = Date.now() + o.deadlineMs;
  // A socket file left by a killed serve does not answer: wait for this one's.
  while (!(await socketAnswers(socket))) {
    if (child.exitCode !== null || child.signalCode !== null)
      throw new Error(`serve exited with ${child.exitCode ?? child.signalCode}: ${stderr}`);
    if (Date.now() > deadline) throw new Error(`serve did not answer on ${socket}: ${stderr}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  const cli = async (argv: string[], stdin = "", cwd?: string): Promise<CliRun> => {
    let out = "";
    let err = "";
    const io = {
      out: (t: string) => void (out += t),
      err: (t: string) => void (err += t),
      readStdin: async () => stdin,
      env,
      isTTY: false,
      ...(cwd ? { cwd } : {}),
    };
    const code = await forwardToDaemon(socket, argv, io, io.readStdin, "tester");
    if (code === undefined) throw new Error(`serve did not answer on ${socket}`);
    return { code, out, err };
  };
  return {
    dir,
    home,
    socket,
    port,
    child,
    env,
    args: o.args,
    stderr: () => stderr,
    cli,
    async metric(sample) {
      const { out } = await cli(["metrics"]);
      const line = out.split("\n").find((l) => l.startsWith(`${sample} `));
      return line === undefined ? undefined : Number(line.slice(sample.length + 1));
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
      child.kill("SIGTERM");
      // serve bounds its own shutdown (10 s); past that, a teardown must not hang the suite.
      const escalate = setTimeout(() => {
        console.warn(`serve ${child.pid} still running 30 s after SIGTERM: SIGKILL`);
        child.kill("SIGKILL");
      }, 30_000);
      try {
        return await exited;
      } finally {
        clearTimeout(escalate);
      }
    },
  };
}
