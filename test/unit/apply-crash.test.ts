// A crash at every kill point of an apply (agent/apply/kill-points.ts), in a real child process
// with a real SQLite lookup store: after recovery the files, the manifest and the rows are all
// the old ones or all the new ones, no temp file or journal is left, and recovery is idempotent
// (a crash during recovery itself is recovered the same way).
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { DesiredStateSchema } from "../../common/gen/netserva/mail/v1/state_pb.ts";
import { applyConfigFiles } from "../../agent/apply/apply-config-files.ts";
import { recoverPendingApply } from "../../agent/apply/backup.ts";
import { armKillPoints, killPoint } from "../../agent/apply/kill-points.ts";
import { openLookupStore } from "../../agent/lookup/lookup-store.ts";
import { checkState } from "../../agent/lookup/rows.ts";
import { crashFixture } from "../helpers/apply-crash-fixture.ts";

const CHILD = join(import.meta.dirname, "..", "helpers", "apply-crash-child.ts");
let dir: string;
let fx: ReturnType<typeof crashFixture>;

const rowsOf = (domain: string) => checkState(create(DesiredStateSchema, { domains: [{ domain, active: true }] }));

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "apply-crash-"));
  fx = crashFixture(dir);
  const store = openLookupStore({ path: fx.lookupDb });
  await applyConfigFiles({
    files: fx.files("old"),
    stagingDir: fx.stagingDir,
    backupDir: fx.backupDir,
    validate: [],
    reload: async () => undefined,
    verify: async () => undefined,
    commit: (mark) => void store.replaceAll(rowsOf("old.test"), mark === undefined ? {} : { mark }),
    bookkeeping: new Map([[fx.manifest, { content: "manifest old\n", mode: 0o600 }]]),
  });
  store.close();
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function runChild(args: string[]): { signal: NodeJS.Signals | null; out: string } {
  const r = spawnSync(process.execPath, [CHILD, dir, ...args], { encoding: "utf8", timeout: 60_000 });
  return { signal: r.signal, out: `${r.stdout}${r.stderr}` };
}

/** Recovers as the agent does at start-up and says which side the vnode is on. */
function recoverAndRead(): "old" | "new" {
  const store = openLookupStore({ path: fx.lookupDb });
  try {
    recoverPendingApply(fx.backupDir, (id) => store.commitMark() === id);
    const side = readFileSync(fx.live[0] ?? "", "utf8").split(" ")[0] === "new" ? "new" : "old";
    for (const [i, path] of fx.live.entries()) expect(readFileSync(path, "utf8")).toBe(`${side} ${i}\n`);
    expect(readFileSync(fx.manifest, "utf8")).toBe(`manifest ${side}\n`);
    expect(store.hasDomain(`${side}.test`)).toBe(true);
    expect(store.hasDomain(`${side === "new" ? "old" : "new"}.test`)).toBe(false);
    // Nothing left behind: no file written aside, no journal; a second recovery has nothing to do.
    for (const d of new Set(fx.live.map((p) => dirname(p))))
      expect(readdirSync(d).filter((f) => f.includes(".ns-"))).toEqual([]);
    expect(recoverPendingApply(fx.backupDir, () => true)).toBeUndefined();
    return side;
  } finally {
    store.close();
  }
}

// Where each point leaves the vnode: before the rows commit, old; after it, new.
const POINTS: Array<[string, "old" | "new"]> = [
  ["stage#2", "old"],
  ["check:true", "old"],
  ["journal", "old"],
  ["aside#2", "old"],
  ["rename#1", "old"],
  ["rename#2", "old"],
  ["rename#3", "old"],
  ["reload", "old"],
  ["reload:true", "old"],
  ["verify", "old"],
  ["commit", "old"],
  ["lookup:before-commit", "old"],
  ["lookup:after-commit", "new"],
  ["bookkeeping", "new"],
];

describe("a crash at each kill point of an apply leaves all old or all new", () => {
  it.each(POINTS)("killed at %s: %s config, manifest and rows", (point, side) => {
    const child = runChild(["new", "new.test", point]);
    expect(child.signal, child.out).toBe("SIGKILL");
    expect(child.out).toContain(`kill point ${point}`);
    expect(recoverAndRead()).toBe(side);
  });

  it("killed during a rollback's restore (verify failed): the old files come back", () => {
    const child = runChild(["new", "new.test", "restore#2", "verify"]);
    expect(child.signal, child.out).toBe("SIGKILL");
    expect(recoverAndRead()).toBe("old");
  });

  it("killed during the rollback's reload, files already restored: still rolled back at start-up", () => {
    const child = runChild(["new", "new.test", "rollback:true", "verify"]);
    expect(child.signal, child.out).toBe("SIGKILL");
    // The journal outlived the restore: the daemons are reloaded onto the old files at start-up.
    expect(existsSync(join(fx.backupDir, "pending-apply.json"))).toBe(true);
    expect(recoverAndRead()).toBe("old");
  });

  it.each([
    ["rename#2", "old", "recover#2"],
    ["lookup:after-commit", "new", "recover#1"],
  ] as const)("killed at %s, then again during recovery: recovered to %s", (point, side, recoverAt) => {
    expect(runChild(["new", "new.test", point]).signal).toBe("SIGKILL");
    const again = runChild(["--recover", "-", recoverAt]);
    expect(again.signal, again.out).toBe("SIGKILL");
    expect(recoverAndRead()).toBe(side);
  });

  it("a kill point that is not reached changes nothing: the apply completes", () => {
    const child = runChild(["new", "new.test", "rename#9"]);
    expect(child.signal, child.out).toBe(null);
    expect(recoverAndRead()).toBe("new");
  });
});

describe("arming kill points (in this process: fail points only, never kill)", () => {
  afterEach(() => armKillPoints({}));

  it("refuses a malformed spec, naming the variable", () => {
    expect(() => armKillPoints({ killAt: "rename#0" })).toThrow(
      /NETSERVA_AGENT_KILL_AT: 'rename#0' is not <point>\[#<n>\]/,
    );
    expect(() => armKillPoints({ failAt: "Verify" })).toThrow(/NETSERVA_AGENT_FAIL_AT/);
  });

  it("a fail point throws at its n-th arrival only; unarmed, nothing happens", () => {
    killPoint("verify");
    armKillPoints({ failAt: "verify#2" });
    expect(() => killPoint("verify")).not.toThrow();
    expect(() => killPoint("verify")).toThrow(/injected failure at verify#2/);
    expect(() => killPoint("verify")).not.toThrow();
  });
});
