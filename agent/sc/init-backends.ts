// sc() through the init system: systemctl for systemd, rc-service for OpenRC. The init system
// owns readiness (Type=forking/notify units, OpenRC's start-stop-daemon); status asks it.
import type { ServiceDefinition, ServiceStatus } from "./service-definition.ts";
import { runChecked, runProgram } from "../process.ts";

export function createSystemdBackend() {
  const ctl = (verb: string, def: ServiceDefinition) =>
    runChecked("systemctl", [verb, def.systemdUnit], { timeoutMs: 90_000 });
  return {
    start: async (def: ServiceDefinition) => void (await ctl("start", def)),
    // reload-or-restart: a unit without ExecReload still picks up the new config.
    reload: async (def: ServiceDefinition) => void (await ctl("reload-or-restart", def)),
    stop: async (def: ServiceDefinition) => void (await ctl("stop", def)),
    async status(def: ServiceDefinition): Promise<ServiceStatus> {
      const r = await runProgram("systemctl", ["is-active", def.systemdUnit]);
      return { name: def.name, running: r.code === 0, detail: r.stdout.trim() };
    },
  };
}

export function createOpenrcBackend() {
  const rc = (verb: string, def: ServiceDefinition) =>
    runChecked("rc-service", [def.openrcService, verb], { timeoutMs: 90_000 });
  return {
    start: async (def: ServiceDefinition) => void (await rc("start", def)),
    reload: async (def: ServiceDefinition) => void (await rc("reload", def)),
    stop: async (def: ServiceDefinition) => void (await rc("stop", def)),
    async status(def: ServiceDefinition): Promise<ServiceStatus> {
      const r = await runProgram("rc-service", [def.openrcService, "status"]);
      return { name: def.name, running: r.code === 0, detail: r.stdout.trim() };
    },
  };
}
