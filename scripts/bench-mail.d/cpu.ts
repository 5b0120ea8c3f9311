// CPU used by one stack's processes (everything living in its network namespace), from /proc.
// The exact total: the sum of utime+stime+cutime+cstime over the processes alive in the
// namespace is conserved when one exits (the master that reaps it adds its time to its own
// cutime/cstime), so end minus start is all the CPU the stack used. Per daemon: each process's
// last sampled utime+stime (sampled every SAMPLE_MS); what short-lived processes used between
// their last sample and their exit shows as "unattributed".
import { readdirSync, readFileSync, readlinkSync, statSync } from "node:fs";

const CLOCK_TICK_MS = 10; // USER_HZ is 100 on Linux
const SAMPLE_MS = 100;

interface ProcStat {
  comm: string;
  ppid: number;
  /** utime + stime, ms */
  own: number;
  /** cutime + cstime, ms: children it reaped */
  reaped: number;
}

function readStat(pid: number): ProcStat | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, "utf8");
    const open = s.indexOf("(");
    const close = s.lastIndexOf(")");
    const f = s.slice(close + 2).split(" ");
    return {
      comm: s.slice(open + 1, close),
      ppid: Number(f[1]),
      own: (Number(f[11]) + Number(f[12])) * CLOCK_TICK_MS,
      reaped: (Number(f[13]) + Number(f[14])) * CLOCK_TICK_MS,
    };
  } catch {
    return undefined; // gone
  }
}

/** PIDs of the processes in the namespace /run/netns/NAME (no `ip` process per sample). */
function pidsIn(netnsName: string): number[] {
  let want: string;
  try {
    want = `net:[${statSync(`/run/netns/${netnsName}`).ino}]`;
  } catch {
    return []; // the namespace is gone (cleanup after a failure): nothing to sample
  }
  const out: number[] = [];
  for (const e of readdirSync("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    try {
      if (readlinkSync(`/proc/${e}/ns/net`) === want) out.push(Number(e));
    } catch {
      // gone, or a kernel thread
    }
  }
  return out;
}

/** Processes of another namespace counted as the stack's own: a filter both stacks share. */
export interface SharedCpu {
  readonly netns: string;
  /** Process names (comm) that belong to the shared daemon. */
  readonly comm: RegExp;
}

export interface CpuReport {
  /** All CPU of the stack's processes over the window, ms. */
  totalMs: number;
  /** Per daemon ("postfix/smtpd", "dovecot/lmtp", …), ms. */
  byDaemon: Map<string, number>;
  /** totalMs minus the daemons' sum: short-lived processes' last moments. */
  unattributedMs: number;
}

/**
 * Starts sampling the namespace; `stop()` returns what its processes used meanwhile. `shared`
 * adds the processes of a daemon living in another namespace (e.g. one Rspamd serving two
 * stacks that take turns), so each stack is charged for the filter's work during its own run.
 */
export function watchCpu(netnsName: string, shared?: SharedCpu): { stop(): CpuReport } {
  const first = new Map<number, number>(); // pid → own ms when first seen (0 if born during)
  const last = new Map<number, { label: string; own: number }>();
  const stacksProcesses = (): Map<number, ProcStat> => {
    const stats = new Map<number, ProcStat>();
    for (const pid of pidsIn(netnsName)) {
      const s = readStat(pid);
      if (s) stats.set(pid, s);
    }
    if (shared && shared.netns !== netnsName)
      for (const pid of pidsIn(shared.netns)) {
        const s = readStat(pid);
        if (s && shared.comm.test(s.comm)) stats.set(pid, s);
      }
    return stats;
  };
  const total = (): number => {
    let sum = 0;
    for (const s of stacksProcesses().values()) sum += s.own + s.reaped;
    return sum;
  };
  const sample = (initial: boolean): void => {
    const stats = stacksProcesses();
    for (const [pid, s] of stats) {
      const parent = stats.get(s.ppid)?.comm;
      const family =
        s.comm === "master" || parent === "master"
          ? "postfix"
          : s.comm === "dovecot" || parent === "dovecot"
            ? "dovecot"
            : "";
      const label = family ? `${family}/${s.comm === family ? "master" : s.comm}` : s.comm;
      if (!first.has(pid)) first.set(pid, initial ? s.own : 0);
      last.set(pid, { label, own: s.own });
    }
  };
  const t0 = total();
  sample(true);
  const timer = setInterval(() => sample(false), SAMPLE_MS);
  return {
    stop() {
      clearInterval(timer);
      sample(false);
      const totalMs = total() - t0;
      const byDaemon = new Map<string, number>();
      for (const [pid, { label, own }] of last) {
        const used = own - (first.get(pid) ?? 0);
        if (used > 0) byDaemon.set(label, (byDaemon.get(label) ?? 0) + used);
      }
      const attributed = [...byDaemon.values()].reduce((a, b) => a + b, 0);
      return { totalMs, byDaemon, unattributedMs: totalMs - attributed };
    },
  };
}
