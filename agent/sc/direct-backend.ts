// sc() without an init system: the agent runs the daemons' own start/reload/stop commands and
// decides "up" from the pid file, the live process and the definition's readiness check. A
// definition that brings its own DirectDaemon (rspamd, clamd) is driven through it instead.
import type { CommandServiceDefinition, DirectDaemon, ServiceDefinition, ServiceStatus } from "./service-definition.ts";
import { isRunning, livePid, runDaemonCommand, waitUntil, type RunOptions } from "../process.ts";

export interface DirectBackendOptions {
  /** Prefix for every command, e.g. ["ip", "netns", "exec", "ns1"] so daemons live in a namespace. */
  readonly wrap?: readonly string[];
  readonly deadlineMs?: number;
}

async function runCommandChecked(cmd: { file: string; args: readonly string[] }, run: RunOptions): Promise<void> {
  const r = await runDaemonCommand(cmd.file, cmd.args, run);
  if (r.code !== 0) throw new Error(`${cmd.file} ${cmd.args.join(" ")} exited ${r.code}: ${r.stderr.trim()}`);
}

export function createDirectBackend(options: DirectBackendOptions = {}) {
  const run: RunOptions = { wrap: options.wrap ?? [], timeoutMs: options.deadlineMs ?? 30_000 };
  const deadline = options.deadlineMs ?? 15_000;

  async function up(def: CommandServiceDefinition): Promise<boolean> {
    if ((await livePid(def.direct.pidFile)) === undefined) return false;
    return def.direct.ready ? def.direct.ready() : true;
  }

  const commands = {
    async start(def: CommandServiceDefinition): Promise<void> {
      if ((await livePid(def.direct.pidFile)) === undefined) await runCommandChecked(def.direct.start, run);
      await waitUntil(`${def.name} to come up`, deadline, () => up(def));
    },
    async reload(def: CommandServiceDefinition): Promise<void> {
      await runCommandChecked(def.direct.reload, run);
      await waitUntil(`${def.name} to answer after reload`, deadline, () => up(def));
    },
    async stop(def: CommandServiceDefinition): Promise<void> {
      const pid = await livePid(def.direct.pidFile);
      if (pid === undefined) return;
      await runCommandChecked(def.direct.stop, run).catch(() => undefined);
      try {
        await waitUntil(`${def.name} to stop`, deadline, async () => !(await isRunning(pid)));
      } catch {
        // The daemon ignored its own stop command: end it by the pid we know, nothing broader.
        process.kill(pid, "SIGKILL");
        await waitUntil(`${def.name} to die`, 5_000, async () => !(await isRunning(pid)));
      }
    },
    async status(def: CommandServiceDefinition): Promise<ServiceStatus> {
      const pid = await livePid(def.direct.pidFile);
      if (pid === undefined) return { name: def.name, running: false };
      const ready = def.direct.ready ? await def.direct.ready() : true;
      return { name: def.name, running: ready, pid, ...(ready ? {} : { detail: "process alive but not answering" }) };
    },
  };

  const daemonStatus = async (name: string, d: DirectDaemon): Promise<ServiceStatus> => {
    const s = await d.status();
    return { name, running: s.running, ...(s.pid === undefined ? {} : { pid: s.pid }) };
  };

  return {
    start: (def: ServiceDefinition) => ("daemon" in def ? def.daemon.start() : commands.start(def)),
    reload: (def: ServiceDefinition) => ("daemon" in def ? def.daemon.reload() : commands.reload(def)),
    stop: (def: ServiceDefinition) => ("daemon" in def ? def.daemon.stop() : commands.stop(def)),
    status: (def: ServiceDefinition) => ("daemon" in def ? daemonStatus(def.name, def.daemon) : commands.status(def)),
  };
}
