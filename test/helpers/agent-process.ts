// Runs `netserva-mail-agent serve` as its own process inside a test network namespace, exactly
// as an operator would on a vnode, with a private --root. Stopped by PID at teardown.
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { openSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import type { TestNetns } from "./netns.ts";

const BIN = join(import.meta.dirname, "..", "..", "bin", "netserva-mail-agent.js");

export interface AgentProcess {
  readonly child: ChildProcess;
  readonly logFile: string;
  /** SIGTERM, then SIGKILL after `graceMs` (default 5 s). */
  stop(graceMs?: number): Promise<void>;
}

async function waitForPort(
  host: string,
  port: number,
  deadlineMs: number,
  child: ChildProcess,
  logFile: string,
): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null)
      throw new Error(`agent exited with ${child.exitCode ?? child.signalCode}; see ${logFile}`);
    const open = await new Promise<boolean>((resolve) => {
      const socket = connect({ host, port });
      socket.once("connect", () => {
        socket.destroy();
        resolve(true);
      });
      socket.once("error", () => resolve(false));
    });
    if (open) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`agent did not listen on ${host}:${port} within ${deadlineMs} ms; see ${logFile}`);
}

export async function startAgentProcess(o: {
  ns: TestNetns;
  home: string;
  root: string;
  port: number;
  logDir: string;
  extraArgs?: string[];
  /** Options for Node itself, before the bin (e.g. `--import` a hook). */
  nodeArgs?: string[];
  /** false: no --mail-listen, so the daemons listen where the controller's state says. */
  mailListen?: boolean;
  /** Extra environment (e.g. NETSERVA_AGENT_TUNING=off). */
  env?: Record<string, string>;
  /** Ready when this port on the namespace address accepts (default the gRPC port): e.g. the
   * metrics port while a test blackholes the gRPC port. */
  readyPort?: number;
}): Promise<AgentProcess> {
  const logFile = join(o.logDir, `agent-${o.ns.name}.log`);
  const log = openSync(logFile, "a");
  const args = [
    "netns",
    "exec",
    o.ns.name,
    process.execPath,
    ...(o.nodeArgs ?? []),
    BIN,
    "serve",
    "--home",
    o.home,
    "--listen",
    `${o.ns.nsAddress}:${o.port}`,
    "--root",
    o.root,
    ...(o.mailListen === false ? [] : ["--mail-listen", o.ns.nsAddress]),
    "--init",
    "direct",
    "--no-auth-penalty",
    ...(o.extraArgs ?? []),
  ];
  const child = spawn("ip", args, { stdio: ["ignore", log, log], env: { ...process.env, ...o.env } });
  await waitForPort(o.ns.nsAddress, o.readyPort ?? o.port, 20_000, child, logFile);
  return {
    child,
    logFile,
    async stop(graceMs = 5000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
}
