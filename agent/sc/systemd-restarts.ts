// Under systemd the units' Restart= (the package's drop-ins) brings a killed or crashed daemon back
// after RestartSec (2 s), usually before any health report could show it failed. The agent still
// sees it: the unit's NRestarts counts systemd's automatic restarts, and during the wait the unit
// is `activating (auto-restart)` with how the main process ended (Result, ExecMainCode/Status).
// Every check asks systemd once for all units; a rise of NRestarts is one more restart (reason:
// what the wait showed, else the unit's journal). A manual start (`systemctl restart` in an apply)
// resets NRestarts to 0: the count goes on from there.
import type { Logger } from "../../common/log.ts";
import { exitReason, lastExitFromJournal, type RestartRecord } from "./restart-record.ts";

/** The properties one check reads, in `systemctl show -p` form. */
export const SHOW_PROPERTIES = "Id,ActiveState,SubState,NRestarts,ExecMainCode,ExecMainStatus";

export interface WatchedUnit {
  /** The daemon's name in health (postfix, dovecot, rspamd, clamd). */
  readonly name: string;
  /** The unit whose main process is the daemon (postfix@-.service, not the postfix.service oneshot). */
  readonly unit: string;
}

export interface SystemdRestartWatchOptions {
  units(): readonly WatchedUnit[];
  /** `systemctl show -p SHOW_PROPERTIES UNIT…`: one block of KEY=value lines per unit, in order. */
  show(units: readonly string[]): Promise<string>;
  /** The unit's recent journal (`journalctl -u UNIT -o cat`), for a death no check saw. */
  journal?(unit: string): Promise<string>;
  log?: Logger;
  /** How often systemd is asked without a health report asking (default 1 s: RestartSec is 2 s). */
  checkMs?: number;
  now?: () => number;
}

export interface SystemdRestartWatch {
  /** Ask systemd now (one at a time: the timer and a health report may ask together). */
  check(): Promise<void>;
  history(name: string): RestartRecord | undefined;
  /** Restarts per daemon since the agent started (the metric). */
  restarts(): ReadonlyMap<string, number>;
  start(): void;
  stop(): void;
}

/** `systemctl show` output for several units → one property map per unit, in order. */
export function parseShowBlocks(out: string): Map<string, string>[] {
  return out
    .split(/\n\s*\n/)
    .map(
      (block) =>
        new Map(
          block
            .split("\n")
            .map((l) => l.trim())
            .filter((l) => l.includes("="))
            .map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)] as const),
        ),
    )
    .filter((m) => m.size > 0);
}

interface Seen {
  /** NRestarts at the last check; undefined before the first. */
  base?: number;
  /** How the main process ended, seen while systemd waited to restart it. */
  pending?: string;
  count: number;
  lastAtMs: number;
  lastReason: string;
}

export function createSystemdRestartWatch(o: SystemdRestartWatchOptions): SystemdRestartWatch {
  const now = o.now ?? Date.now;
  const seen = new Map<string, Seen>();
  const counts = new Map<string, number>();
  let checking: Promise<void> | undefined;
  let timer: NodeJS.Timeout | undefined;

  const pass = async (): Promise<void> => {
    const units = o.units();
    if (units.length === 0) return;
    const blocks = parseShowBlocks(await o.show(units.map((u) => u.unit)));
    for (const [i, u] of units.entries()) {
      const props = blocks.find((b) => b.get("Id") === u.unit) ?? blocks[i];
      if (!props) continue;
      const n = Number(props.get("NRestarts") ?? "NaN");
      if (!Number.isFinite(n)) continue;
      let s = seen.get(u.name);
      if (!s) seen.set(u.name, (s = { count: 0, lastAtMs: 0, lastReason: "" }));
      const code = props.get("ExecMainCode") ?? "0";
      if (props.get("SubState") === "auto-restart" && code !== "0")
        s.pending = exitReason(code, Number(props.get("ExecMainStatus") ?? "0"));
      if (s.base === undefined || n < s.base) {
        // First sight (restarts before the agent started are not its to count), or systemd's
        // counter was reset by a manual start.
        s.base = n;
        continue;
      }
      if (n === s.base) continue;
      let reason = s.pending;
      if (!reason && o.journal) reason = lastExitFromJournal(await o.journal(u.unit).catch(() => ""));
      reason ??= `see journalctl -u ${u.unit}`;
      s.count += n - s.base;
      s.base = n;
      s.lastAtMs = now();
      s.lastReason = reason;
      s.pending = undefined;
      counts.set(u.name, s.count);
      o.log?.warn("daemon restarted by systemd", { daemon: u.name, unit: u.unit, reason, restarts: s.count });
    }
  };

  return {
    check() {
      checking ??= pass().finally(() => (checking = undefined));
      return checking;
    },
    history(name) {
      const s = seen.get(name);
      return s && s.count > 0 ? { count: s.count, lastAtMs: s.lastAtMs, lastReason: s.lastReason } : undefined;
    },
    restarts: () => counts,
    start() {
      if (timer) return;
      const tick = (): void => {
        void this.check()
          .catch((error: unknown) =>
            o.log?.warn("systemd restart check failed", {
              error: error instanceof Error ? error.message : String(error),
            }),
          )
          .finally(() => {
            if (timer) timer = setTimeout(tick, o.checkMs ?? 1000).unref();
          });
      };
      timer = setTimeout(tick, o.checkMs ?? 1000).unref();
    },
    stop() {
      if (timer) clearTimeout(timer);
      timer = undefined;
    },
  };
}
