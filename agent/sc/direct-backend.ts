// sc() without an init system: the agent runs the daemons' own start/reload/stop commands and
// decides "up" from the pid file, the live process and the definition's readiness check.
import type { ServiceDefinition, ServiceStatus } from "./service-definition.ts";
import { runDaemonCommand, type RunOptions } from "./run.ts";
import { livePid, pollUntil } from "./wait.ts";

export interface DirectBackendOptions {
  /** Prefix for every command, e.g. ["ip", "netns", "exec", "ns1"] so daemons live in a namespace. */
  readonly wrap?: readonly string[];
  readonly deadlineMs?: number;
}

async function runChecked(cmd: { file: string; args: readonly string[] }, run: RunOptions): Promise<void> {
  const r = await runDaemonCommand(cmd.file, cmd.args, run);
  if (r.code !== 0) throw new Error(`${cmd.file} ${cmd.args.join(" ")} exited ${r.code}: ${r.stderr.trim()}`);
}

export function createDirectBackend(options: DirectBackendOptions = {}) {
  const run: RunOptions = { wrap: options.wrap ?? [], timeoutMs: options.deadlineMs ?? 30_000 };
  const deadline = options.deadlineMs ?? 15_000;

  async function up(def: ServiceDefinition): Promise<boolean> {
    if (livePid(def.direct.pidFile) === undefined) return false;
    return def.direct.ready ? def.direct.ready() : true;
  }

  return {
    async start(def: ServiceDefinition): Promise<void> {
      if (livePid(def.direct.pidFile) === undefined) await runChecked(def.direct.start, run);
      await pollUntil(`${def.name} to come up`, () => up(def), deadline);
    },
    async reload(def: ServiceDefinition): Promise<void> {
      await runChecked(def.direct.reload, run);
      await pollUntil(`${def.name} to answer after reload`, () => up(def), deadline);
    },
    async stop(def: ServiceDefinition): Promise<void> {
      const pid = livePid(def.direct.pidFile);
      if (pid === undefined) return;
      await runChecked(def.direct.stop, run).catch(() => undefined);
      try {
        await pollUntil(`${def.name} to stop`, () => !alive(pid), deadline);
      } catch {
        // The daemon ignored its own stop command: end it by the pid we know, nothing broader.
        process.kill(pid, "SIGKILL");
        await pollUntil(`${def.name} to die`, () => !alive(pid), 5_000);
      }
    },
    async status(def: ServiceDefinition): Promise<ServiceStatus> {
      const pid = livePid(def.direct.pidFile);
      if (pid === undefined) return { name: def.name, running: false };
      const ready = def.direct.ready ? await def.direct.ready() : true;
      return { name: def.name, running: ready, pid, ...(ready ? {} : { detail: "process alive but not answering" }) };
    },
  };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
