// The systemd restart watch against `systemctl show` output as systemd 252 prints it (blocks per
// unit, the properties read from a booted Debian 12 around a SIGKILL): a death systemd's Restart=
// hides within RestartSec is still counted, with how the process ended, from the auto-restart wait
// or, when no check saw that, from the unit's journal; a manual start's reset is not a restart.
import { describe, expect, it } from "vitest";
import { exitReason, lastExitFromJournal } from "../../agent/sc/restart-record.ts";
import { systemdStatus } from "../../agent/sc/init-backends.ts";
import { createSystemdRestartWatch, parseShowBlocks } from "../../agent/sc/systemd-restarts.ts";

interface UnitState {
  sub: string;
  n: number;
  code?: number;
  status?: number;
}

function block(unit: string, u: UnitState): string {
  const active = u.sub === "running" ? "active" : u.sub === "auto-restart" ? "activating" : "inactive";
  return [
    `Id=${unit}`,
    `ActiveState=${active}`,
    `SubState=${u.sub}`,
    `NRestarts=${u.n}`,
    `ExecMainCode=${u.code ?? 0}`,
    `ExecMainStatus=${u.status ?? 0}`,
  ].join("\n");
}

function rig(journal = "") {
  let clock = 0;
  const units = new Map<string, UnitState>([
    ["postfix@-.service", { sub: "running", n: 0 }],
    ["dovecot.service", { sub: "running", n: 0 }],
  ]);
  const shows: string[][] = [];
  const watch = createSystemdRestartWatch({
    now: () => clock,
    units: () => [
      { name: "postfix", unit: "postfix@-.service" },
      { name: "dovecot", unit: "dovecot.service" },
    ],
    show: async (asked) => {
      shows.push([...asked]);
      return `${asked.map((u) => block(u, units.get(u)!)).join("\n\n")}\n`;
    },
    journal: async () => journal,
  });
  return { watch, units, shows, advance: (ms: number) => (clock += ms) };
}

describe("systemd restart watch", () => {
  it("counts a death seen in systemd's auto-restart wait, with how the main process ended", async () => {
    const r = rig();
    await r.watch.check();
    expect(r.shows).toEqual([["postfix@-.service", "dovecot.service"]]);
    r.units.set("dovecot.service", { sub: "auto-restart", n: 0, code: 2, status: 9 });
    r.advance(500);
    await r.watch.check();
    expect(r.watch.history("dovecot")).toBeUndefined();
    r.units.set("dovecot.service", { sub: "running", n: 1 });
    r.advance(2000);
    await r.watch.check();
    expect(r.watch.history("dovecot")).toEqual({
      count: 1,
      lastAtMs: 2500,
      lastReason: "main process killed by signal 9 (SIGKILL)",
    });
    expect(r.watch.history("postfix")).toBeUndefined();
    expect([...r.watch.restarts()]).toEqual([["dovecot", 1]]);
  });

  it("takes the reason from the journal when no check fell into the wait", async () => {
    const r = rig(
      [
        "postfix@-.service: Main process exited, code=exited, status=1/FAILURE",
        "Started postfix@-.service - Postfix Mail Transport Agent (instance -).",
        "postfix@-.service: Main process exited, code=dumped, status=11/SEGV",
        "postfix@-.service: Failed with result 'core-dump'.",
      ].join("\n"),
    );
    await r.watch.check();
    r.units.set("postfix@-.service", { sub: "running", n: 2 });
    await r.watch.check();
    expect(r.watch.history("postfix")).toMatchObject({
      count: 2,
      lastReason: "main process dumped core on signal 11 (SIGSEGV)",
    });
  });

  it("does not count restarts from before the agent started, nor a manual start's reset", async () => {
    const r = rig("");
    r.units.set("postfix@-.service", { sub: "running", n: 3 });
    await r.watch.check();
    expect(r.watch.history("postfix")).toBeUndefined();
    // `systemctl restart` by an apply: NRestarts back to 0, not a death.
    r.units.set("postfix@-.service", { sub: "running", n: 0 });
    await r.watch.check();
    expect(r.watch.history("postfix")).toBeUndefined();
    r.units.set("postfix@-.service", { sub: "running", n: 1 });
    await r.watch.check();
    expect(r.watch.history("postfix")).toMatchObject({ count: 1, lastReason: "see journalctl -u postfix@-.service" });
  });

  it("parses several units' blocks and words every way a main process ends", () => {
    const blocks = parseShowBlocks("Id=a.service\nNRestarts=1\n\nId=b.service\nNRestarts=2\n");
    expect(blocks.map((b) => [b.get("Id"), b.get("NRestarts")])).toEqual([
      ["a.service", "1"],
      ["b.service", "2"],
    ]);
    expect(exitReason("1", 1)).toBe("main process exited with status 1");
    expect(exitReason("2", 15)).toBe("main process killed by signal 15 (SIGTERM)");
    expect(lastExitFromJournal("x: Main process exited, code=killed, status=9/KILL\n")).toBe(
      "main process killed by signal 9 (SIGKILL)",
    );
    expect(lastExitFromJournal("Started x.\n")).toBeUndefined();
  });

  it("shows the death in the unit's status while systemd waits to restart it", () => {
    const s = systemdStatus(
      "dovecot",
      "ActiveState=activating\nSubState=auto-restart\nMainPID=0\nExecMainCode=2\nExecMainStatus=9\n",
    );
    expect(s.running).toBe(false);
    expect(s.detail).toBe(
      "systemd: activating (auto-restart); main process killed by signal 9 (SIGKILL); systemd restarts it",
    );
    expect(systemdStatus("dovecot", "ActiveState=active\nSubState=running\nMainPID=7\n").detail).toBe(
      "systemd: active (running)",
    );
  });
});
