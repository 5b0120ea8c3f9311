// sc() through the init system: systemctl for systemd, rc-service / rc-update for OpenRC. The init
// system owns readiness (Type=forking/notify units, OpenRC's start-stop-daemon); status asks it
// and reports its own words (systemd's ActiveState/SubState, OpenRC's status line) in health.
import type { ServiceDefinition, ServiceStatus } from "./service-definition.ts";
import { runChecked, runProgram } from "../process.ts";
import { exitReason } from "./restart-record.ts";

const TIMEOUT = { timeoutMs: 90_000 };

/** `systemctl show -p ActiveState,SubState,MainPID,ExecMainCode,ExecMainStatus` output (KEY=value lines) → a status. */
export function systemdStatus(name: string, show: string): ServiceStatus {
  const props = new Map(
    show
      .split("\n")
      .map((l) => l.trim())
      .filter((l) => l.includes("="))
      .map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)] as const),
  );
  const active = props.get("ActiveState") ?? "unknown";
  const sub = props.get("SubState") ?? "unknown";
  const pid = Number(props.get("MainPID") ?? "0");
  // "reloading" is still serving (systemctl is-active says so too).
  const running = active === "active" || active === "reloading";
  // Between a death and its Restart= (RestartSec): how the main process ended.
  const code = props.get("ExecMainCode") ?? "0";
  const ended =
    sub === "auto-restart" && code !== "0"
      ? `; ${exitReason(code, Number(props.get("ExecMainStatus") ?? "0"))}; systemd restarts it`
      : "";
  return { name, running, ...(pid > 0 ? { pid } : {}), detail: `systemd: ${active} (${sub})${ended}` };
}

/** `rc-service NAME status` output (" * status: started") and exit code → a status. */
export function openrcStatus(name: string, code: number, out: string): ServiceStatus {
  // An LSB script run by Debian's OpenRC may print its own words instead: its exit code decides.
  const state = /status:\s*(\S+)/.exec(out)?.[1];
  const detail = state ?? (out.trim().split("\n")[0] || `exit ${code}`);
  return { name, running: code === 0 && (state === undefined || state === "started"), detail: `openrc: ${detail}` };
}

export function createSystemdBackend() {
  const ctl = (verb: string, def: ServiceDefinition) => runChecked("systemctl", [verb, def.systemdUnit], TIMEOUT);
  return {
    start: async (def: ServiceDefinition) => void (await ctl("start", def)),
    // reload-or-restart: a unit without ExecReload still picks up the new config.
    reload: async (def: ServiceDefinition) => void (await ctl("reload-or-restart", def)),
    restart: async (def: ServiceDefinition) => void (await ctl("restart", def)),
    stop: async (def: ServiceDefinition) => void (await ctl("stop", def)),
    // The unit's symlinks are made by systemd itself (over D-Bus). Debian's systemctl would also
    // run update-rc.d for a unit that has an /etc/init.d script (rspamd, dovecot, postfix), which
    // writes /etc/rc?.d: read-only in the agent's sandbox and of no use under systemd.
    enable: async (def: ServiceDefinition) =>
      void (await runChecked("systemctl", ["enable", def.systemdUnit], {
        ...TIMEOUT,
        env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", SYSTEMCTL_SKIP_SYSV: "1" },
      })),
    async status(def: ServiceDefinition): Promise<ServiceStatus> {
      const show = (unit: string) =>
        runProgram("systemctl", [
          "show",
          "-p",
          "LoadState,ActiveState,SubState,MainPID,ExecMainCode,ExecMainStatus",
          unit,
        ]);
      let r = await show(def.systemdStatusUnit ?? def.systemdUnit);
      if (def.systemdStatusUnit && /^LoadState=not-found$/m.test(r.stdout)) r = await show(def.systemdUnit);
      if (r.code !== 0) return { name: def.name, running: false, detail: `systemd: ${r.stderr.trim()}` };
      return systemdStatus(def.name, r.stdout);
    },
  };
}

export function createOpenrcBackend() {
  const rc = (verb: string, def: ServiceDefinition) => runChecked("rc-service", [def.openrcService, verb], TIMEOUT);
  return {
    async start(def: ServiceDefinition): Promise<void> {
      // A daemon that died leaves OpenRC believing it started ("crashed"): start would only say
      // "already started". zap forgets that state first (a no-op for a stopped or LSB script).
      if ((await runProgram("rc-service", [def.openrcService, "status"])).code !== 0)
        await runProgram("rc-service", [def.openrcService, "zap"]);
      await rc("start", def);
    },
    reload: async (def: ServiceDefinition) => void (await rc("reload", def)),
    restart: async (def: ServiceDefinition) => void (await rc("restart", def)),
    stop: async (def: ServiceDefinition) => void (await rc("stop", def)),
    // Already in the runlevel is fine (rc-update says so and exits 0 on Alpine, 1 on older OpenRC).
    async enable(def: ServiceDefinition): Promise<void> {
      const shown = await runProgram("rc-update", ["show", "default"]);
      if (new RegExp(`^\\s*${def.openrcService.replace(/\./g, "\\.")}\\s*\\|`, "m").test(shown.stdout)) return;
      await runChecked("rc-update", ["add", def.openrcService, "default"], TIMEOUT);
    },
    async status(def: ServiceDefinition): Promise<ServiceStatus> {
      const r = await runProgram("rc-service", [def.openrcService, "status"]);
      return openrcStatus(def.name, r.code, `${r.stdout}\n${r.stderr}`);
    },
  };
}
