// The direct-mode supervisor on a fake clock and fake daemons: a death is reported before it is
// restarted, restarts back off (doubling, capped) so a daemon that dies at once is not restarted
// in a tight loop, a failed start is reported with its words, and every restart is counted.
import { describe, expect, it } from "vitest";
import { createDaemonSupervisor } from "../../agent/sc/daemon-supervisor.ts";
import type { ServiceStatus } from "../../agent/sc/service-definition.ts";

function rig(options: { startFails?: boolean; staysDown?: boolean } = {}) {
  let clock = 0;
  let pid = 100;
  const up = new Map<string, boolean>([["postfix", true]]);
  const starts: number[] = [];
  const supervisor = createDaemonSupervisor({
    now: () => clock,
    firstBackoffMs: 1000,
    maxBackoffMs: 8000,
    unseenGraceMs: 10_000,
    statuses: async (): Promise<ServiceStatus[]> =>
      [...up].map(([name, running]) => (running ? { name, running, pid } : { name, running })),
    start: async (name) => {
      starts.push(clock);
      if (options.startFails) throw new Error("bind: Address already in use");
      if (!options.staysDown) {
        pid += 1;
        up.set(name, true);
      }
      return true;
    },
  });
  return {
    supervisor,
    starts,
    kill: () => up.set("postfix", false),
    advance: (ms: number) => (clock += ms),
    up: () => up.get("postfix"),
  };
}

describe("daemon supervisor (direct mode)", () => {
  it("reports a death with the pid, restarts after the first delay once reported, then clears it", async () => {
    const r = rig();
    await r.supervisor.check();
    r.kill();
    await r.supervisor.check();
    expect(r.starts).toEqual([]);
    // Shown in a report (the health tick asks), then due after the first backoff.
    expect(r.supervisor.failure("postfix")?.reason).toBe("pid 100 is gone (killed or crashed)");
    r.advance(999);
    await r.supervisor.check();
    expect(r.starts).toEqual([]);
    r.advance(1);
    await r.supervisor.check();
    expect(r.starts).toEqual([1000]);
    await r.supervisor.check();
    expect(r.supervisor.failure("postfix")).toBeUndefined();
    expect(r.supervisor.restarts().get("postfix")).toBe(1);
  });

  it("keeps each restart's time and the death's reason for health, after the failure cleared", async () => {
    const r = rig();
    await r.supervisor.check();
    expect(r.supervisor.history("postfix")).toBeUndefined();
    r.kill();
    await r.supervisor.check();
    r.supervisor.failure("postfix");
    r.advance(1000);
    await r.supervisor.check();
    await r.supervisor.check();
    expect(r.supervisor.failure("postfix")).toBeUndefined();
    expect(r.supervisor.history("postfix")).toEqual({
      count: 1,
      lastAtMs: 1000,
      lastReason: "pid 100 is gone (killed or crashed)",
    });
    r.kill();
    await r.supervisor.check();
    r.supervisor.failure("postfix");
    r.advance(5000);
    await r.supervisor.check();
    expect(r.supervisor.history("postfix")).toEqual({
      count: 2,
      lastAtMs: 6000,
      lastReason: "pid 101 is gone (killed or crashed)",
    });
  });

  it("waits for a report to show the failure, or for the grace period when nobody asks", async () => {
    const r = rig();
    await r.supervisor.check();
    r.kill();
    await r.supervisor.check();
    r.advance(9_999);
    await r.supervisor.check();
    expect(r.starts).toEqual([]);
    r.advance(1);
    await r.supervisor.check();
    expect(r.starts).toHaveLength(1);
  });

  it("backs off, doubling up to the cap, for a daemon that dies at once", async () => {
    const r = rig({ staysDown: true });
    await r.supervisor.check();
    r.kill();
    await r.supervisor.check();
    r.supervisor.failure("postfix");
    // Check every 100 ms for a minute of fake time, each check a health report that shows the
    // failure: each death is seen 100 ms after its restart, then waits 2, 4, 8, 8, … s.
    for (let i = 0; i < 600; i++) {
      r.advance(100);
      await r.supervisor.check();
      r.supervisor.failure("postfix");
    }
    const gaps = r.starts.slice(1).map((t, i) => t - (r.starts[i] ?? 0));
    expect(r.starts[0]).toBe(1000);
    expect(gaps.slice(0, 4)).toEqual([2100, 4100, 8100, 8100]);
    expect(Math.max(...gaps)).toBe(8100);
    expect(r.starts).toHaveLength(9);
    expect(r.supervisor.restarts().get("postfix")).toBe(9);
    expect(r.supervisor.failure("postfix")?.reason).toBe("died again right after restart 9");
  });

  it("reports a start that fails in the daemon's words and keeps trying", async () => {
    const r = rig({ startFails: true });
    await r.supervisor.check();
    r.kill();
    await r.supervisor.check();
    r.supervisor.failure("postfix");
    r.advance(1000);
    await r.supervisor.check();
    expect(r.supervisor.failure("postfix")?.reason).toBe("restart 1 failed: bind: Address already in use");
    r.advance(2000);
    await r.supervisor.check();
    expect(r.starts).toEqual([1000, 3000]);
  });

  it("ends the dead master's leftover workers (its pid) before starting it again", async () => {
    const order: string[] = [];
    let up = true;
    let clock = 0;
    const s = createDaemonSupervisor({
      now: () => clock,
      statuses: async () => [up ? { name: "rspamd", running: true, pid: 42 } : { name: "rspamd", running: false }],
      reap: async (pid) => (order.push(`reap ${pid}`), 3),
      start: async () => (order.push("start"), true),
    });
    await s.check();
    up = false;
    await s.check();
    s.failure("rspamd");
    clock += 1000;
    await s.check();
    expect(order).toEqual(["reap 42", "start"]);
  });

  it("does nothing while an apply runs, and forgets a dead daemon the config no longer wants", async () => {
    let list: ServiceStatus[] | undefined = [{ name: "clamd", running: true, pid: 9 }];
    let clock = 0;
    const starts: string[] = [];
    const s = createDaemonSupervisor({
      now: () => clock,
      statuses: async () => list,
      start: async (name) => (starts.push(name), true),
    });
    await s.check();
    list = undefined; // an apply runs: no pass
    clock += 30_000;
    await s.check();
    list = [{ name: "clamd", running: false }]; // seen dead between two applies
    await s.check();
    list = []; // and then the applied config no longer has it
    for (let i = 0; i < 10; i++) {
      clock += 60_000;
      await s.check();
    }
    expect(starts).toEqual([]);
    expect(s.failure("clamd")).toBeUndefined();
    expect(s.restarts().get("clamd")).toBeUndefined();
  });

  it("counts no restart when there was nothing left to start", async () => {
    let clock = 0;
    let up = true;
    const s = createDaemonSupervisor({
      now: () => clock,
      statuses: async () => [up ? { name: "postfix", running: true, pid: 5 } : { name: "postfix", running: false }],
      start: async () => false, // an apply brought it back first
    });
    await s.check();
    up = false;
    await s.check();
    s.failure("postfix");
    clock += 1000;
    await s.check();
    expect(s.restarts().get("postfix") ?? 0).toBe(0);
  });

  it("leaves a live but unanswering daemon alone, and a running one untouched", async () => {
    let status: ServiceStatus = { name: "dovecot", running: false, pid: 7, detail: "process alive but not answering" };
    const starts: string[] = [];
    let clock = 0;
    const s = createDaemonSupervisor({
      now: () => clock,
      statuses: async () => [status],
      start: async (name) => (starts.push(name), true),
    });
    for (let i = 0; i < 50; i++) {
      clock += 1000;
      await s.check();
    }
    status = { name: "dovecot", running: true, pid: 7 };
    await s.check();
    expect(starts).toEqual([]);
    expect(s.failure("dovecot")).toBeUndefined();
  });
});
