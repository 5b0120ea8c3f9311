// Direct mode only (no systemd/OpenRC to do it): the agent keeps the daemons the applied config
// wants running. Every daemon daemonises itself (Postfix master, Dovecot, Rspamd, clamd), so a
// death is seen by a pid check on each tick, not by a child's exit event. A dead daemon is
// reported failed with the reason, then started again with a capped exponential backoff, so one
// that dies at once is not restarted in a tight loop. A failure is first shown in a health report
// (or left unseen for a grace period when nobody asks) before the restart hides it.
import type { Logger } from "../../common/log.ts";
import type { RestartRecord } from "./restart-record.ts";
import type { ServiceStatus } from "./service-definition.ts";

export interface DaemonSupervisorOptions {
  /** The status of every daemon the applied config wants (empty before the first apply);
   * undefined while an apply runs (it stops and starts daemons on purpose): no pass then. */
  statuses(): Promise<readonly ServiceStatus[] | undefined>;
  /** Start one daemon again, queued behind any apply; false when there was nothing to start
   * (running again, or no longer wanted). */
  start(name: string): Promise<boolean>;
  /** Before a restart: end what is left of the dead master `pid` (its workers); how many ended. */
  reap?(pid: number): Promise<number>;
  log?: Logger;
  /** How often the pids are checked without a health report asking (default 2 s). */
  checkMs?: number;
  /** Delay before the first restart, doubled for each further one (default 1 s). */
  firstBackoffMs?: number;
  /** Longest delay between restarts; also how long a daemon must stay up to reset it (60 s). */
  maxBackoffMs?: number;
  /** A failure no report has shown yet is restarted anyway after this long (default 10 s). */
  unseenGraceMs?: number;
  now?: () => number;
}

export interface DaemonFailure {
  readonly since: number;
  readonly reason: string;
}

export interface DaemonSupervisor {
  /** Record deaths and recoveries from statuses read elsewhere (the health report's). */
  observe(statuses: readonly ServiceStatus[]): void;
  /** One pass: read the statuses, record deaths and recoveries, restart what is due. */
  check(): Promise<void>;
  /** The daemon's open failure, if any; asking marks it shown in a report. */
  failure(name: string): DaemonFailure | undefined;
  /** Restarts attempted per daemon since the agent started. */
  restarts(): ReadonlyMap<string, number>;
  /** The daemon's restarts with the last one's time and reason (what health reports); undefined: none. */
  history(name: string): RestartRecord | undefined;
  /** Check every `checkMs` until stop(). */
  start(): void;
  stop(): void;
}

interface Tracked {
  lastPid?: number;
  upSince?: number;
  attempts: number;
  failure?: DaemonFailure & { seen: boolean; nextAt: number; deadPid?: number };
  restarting: boolean;
  /** Started again and not yet seen running: a death now is the restarted one's. */
  justRestarted: boolean;
}

export function createDaemonSupervisor(o: DaemonSupervisorOptions): DaemonSupervisor {
  const now = o.now ?? Date.now;
  const first = o.firstBackoffMs ?? 1000;
  const max = o.maxBackoffMs ?? 60_000;
  const grace = o.unseenGraceMs ?? 10_000;
  const tracked = new Map<string, Tracked>();
  const restarts = new Map<string, number>();
  const last = new Map<string, { atMs: number; reason: string }>();
  const backoff = (attempts: number): number => Math.min(max, first * 2 ** Math.min(attempts, 30));
  let timer: NodeJS.Timeout | undefined;
  let checking: Promise<void> | undefined;

  const get = (name: string): Tracked => {
    let t = tracked.get(name);
    if (!t) tracked.set(name, (t = { attempts: 0, restarting: false, justRestarted: false }));
    return t;
  };

  const observeOne = (s: ServiceStatus): void => {
    const t = get(s.name);
    if (t.restarting) return;
    if (s.running) {
      if (t.failure || t.justRestarted)
        o.log?.info("daemon running again", { daemon: s.name, pid: s.pid, restarts: t.attempts });
      t.failure = undefined;
      t.justRestarted = false;
      t.upSince ??= now();
      if (s.pid !== undefined) t.lastPid = s.pid;
      // Up long enough: the next death is a new story, restarted after the first delay again.
      if (t.attempts > 0 && now() - t.upSince >= max) t.attempts = 0;
      return;
    }
    // Alive but not answering (Dovecot's LMTP not greeting yet): reported, not restarted.
    if (s.pid !== undefined || t.failure) return;
    const reason = t.justRestarted
      ? `died again right after restart ${t.attempts}`
      : t.lastPid !== undefined
        ? `pid ${t.lastPid} is gone (killed or crashed)`
        : (s.detail ?? "not running");
    t.justRestarted = false;
    t.upSince = undefined;
    t.failure = {
      since: now(),
      reason,
      seen: false,
      nextAt: now() + backoff(t.attempts),
      ...(t.lastPid === undefined ? {} : { deadPid: t.lastPid }),
    };
    o.log?.warn("daemon died", { daemon: s.name, reason, restart_in_ms: backoff(t.attempts) });
  };

  const restart = async (name: string, t: Tracked): Promise<void> => {
    t.restarting = true;
    t.attempts += 1;
    try {
      const dead = t.failure?.deadPid;
      if (dead !== undefined && o.reap) {
        const reaped = await o.reap(dead);
        if (reaped > 0) o.log?.info("ended the dead daemon's leftover workers", { daemon: name, pid: dead, reaped });
      }
      restarts.set(name, (restarts.get(name) ?? 0) + 1);
      const previous = last.get(name);
      last.set(name, { atMs: now(), reason: t.failure?.reason ?? "not running" });
      if (await o.start(name)) {
        o.log?.info("daemon restarted", { daemon: name, attempt: t.attempts });
        // Its old pid is history; whatever is seen next (running or dead) is the new process.
        t.failure = undefined;
        t.lastPid = undefined;
        t.justRestarted = true;
      } else {
        // Nothing to start after all (an apply brought it back): not a restart.
        restarts.set(name, (restarts.get(name) ?? 1) - 1);
        if (previous) last.set(name, previous);
        else last.delete(name);
        t.attempts -= 1;
      }
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      if (t.failure) t.failure = { ...t.failure, reason: `restart ${t.attempts} failed: ${message}` };
      o.log?.error("daemon restart failed", { daemon: name, attempt: t.attempts, error: message });
    } finally {
      // Whether it came up or not, the next restart waits longer; a later check clears the failure.
      if (t.failure) t.failure = { ...t.failure, nextAt: now() + backoff(t.attempts) };
      t.restarting = false;
    }
  };

  const pass = async (): Promise<void> => {
    const statuses = await o.statuses();
    if (!statuses) return;
    for (const s of statuses) observeOne(s);
    // A daemon the applied config no longer wants (a filter turned off) is no one's to restart.
    for (const [name, t] of tracked) if (!t.restarting && !statuses.some((s) => s.name === name)) tracked.delete(name);
    for (const [name, t] of tracked) {
      const f = t.failure;
      if (!f || t.restarting || now() < f.nextAt || (!f.seen && now() - f.since < grace)) continue;
      await restart(name, t);
    }
  };

  return {
    observe: (statuses) => statuses.forEach(observeOne),
    // One pass at a time: the timer and a caller may ask together.
    check() {
      checking ??= pass().finally(() => (checking = undefined));
      return checking;
    },
    failure(name) {
      const f = tracked.get(name)?.failure;
      if (!f) return undefined;
      f.seen = true;
      return { since: f.since, reason: f.reason };
    },
    restarts: () => restarts,
    history(name) {
      const count = restarts.get(name) ?? 0;
      const l = last.get(name);
      return count > 0 && l ? { count, lastAtMs: l.atMs, lastReason: l.reason } : undefined;
    },
    start() {
      if (timer) return;
      const tick = (): void => {
        void this.check()
          .catch((error: unknown) =>
            o.log?.warn("daemon check failed", { error: error instanceof Error ? error.message : String(error) }),
          )
          .finally(() => {
            if (timer) timer = setTimeout(tick, o.checkMs ?? 2000).unref();
          });
      };
      timer = setTimeout(tick, o.checkMs ?? 2000).unref();
    },
    stop() {
      if (timer) clearTimeout(timer);
      timer = undefined;
    },
  };
}
