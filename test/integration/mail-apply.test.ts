// apply: unchanged files do nothing, a refused check leaves the live files alone, a failed reload
// restores the previous files and reloads again, and a crash mid-apply is undone on restart.
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { applyConfigFiles, type Validator } from "../../agent/apply/apply-config-files.ts";
import { openJournal, recoverPendingApply } from "../../agent/apply/backup.ts";
import type { FileSet } from "../../agent/apply/file-spec.ts";

let dir: string;
let live: string;
let reloads: string[][];

const files = (content: string): FileSet => new Map([[live, { content, mode: 0o640 }]]);
const base = () => ({
  stagingDir: join(dir, "staging"),
  backupDir: join(dir, "backup"),
  validate: [] as Validator[],
  reload: async (changed: readonly string[]) => void reloads.push([...changed]),
  verify: async () => undefined,
});

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "apply-"));
  live = join(dir, "etc/main.cf");
  reloads = [];
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe("applyConfigFiles", () => {
  it("writes new content with its mode, reloads once, and skips everything when unchanged", async () => {
    const first = await applyConfigFiles({ ...base(), files: files("a = 1\n") });
    expect(first.changed).toEqual([live]);
    expect(readFileSync(live, "utf8")).toBe("a = 1\n");
    expect(statSync(live).mode & 0o777).toBe(0o640);
    const again = await applyConfigFiles({ ...base(), files: files("a = 1\n") });
    expect(again.changed).toEqual([]);
    expect(reloads).toEqual([[live]]);
  });

  it("validates the staged copy, and a refusal leaves the live file and the daemons alone", async () => {
    await applyConfigFiles({ ...base(), files: files("good\n") });
    let seen = "";
    const checker: Validator = {
      name: "fake check",
      async check(staged) {
        seen = readFileSync(staged(live), "utf8");
        throw new Error("line 1: bad parameter");
      },
    };
    const err = await applyConfigFiles({ ...base(), files: files("bad\n"), validate: [checker] }).catch(
      (e: unknown) => e,
    );
    expect(seen).toBe("bad\n");
    expect(err).toMatchObject({ code: "failed_precondition" });
    expect(String(err)).toContain("line 1: bad parameter");
    expect(readFileSync(live, "utf8")).toBe("good\n");
    expect(reloads).toHaveLength(1);
    expect(existsSync(join(dir, "staging"))).toBe(false);
  });

  it("restores the previous file and reloads again when the reload or verify fails", async () => {
    await applyConfigFiles({ ...base(), files: files("good\n") });
    const err = await applyConfigFiles({
      ...base(),
      files: files("new\n"),
      verify: async () => {
        throw new Error("smtpd did not greet");
      },
    }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "failed_precondition" });
    expect(String(err)).toContain("smtpd did not greet");
    expect(readFileSync(live, "utf8")).toBe("good\n");
    expect(reloads).toHaveLength(3); // first apply, the failed one, the one after restoring
  });

  it("a dry run validates but writes nothing", async () => {
    const res = await applyConfigFiles({ ...base(), files: files("x\n"), dryRun: true });
    expect(res.diff).toEqual([`~ file ${live}`]);
    expect(existsSync(live)).toBe(false);
    expect(reloads).toEqual([]);
  });
});

describe("crash recovery", () => {
  it("puts back the files of an apply that died between the journal and its commit", async () => {
    await applyConfigFiles({ ...base(), files: files("old\n") });
    const added = join(dir, "etc/added.cf");
    // Simulate the crash: journal written, then the new files renamed in, then the process died.
    openJournal(join(dir, "backup"), [
      { path: live, next: { content: "new\n", mode: 0o640 } },
      { path: added, next: { content: "new file\n", mode: 0o640 } },
    ]);
    writeFileSync(live, "half-applied\n");
    writeFileSync(added, "new file\n");
    const recovery = recoverPendingApply(join(dir, "backup"), () => false);
    expect(recovery?.direction).toBe("back");
    expect(recovery?.files.map((f) => f.path).sort()).toEqual([added, live].sort());
    expect(readFileSync(live, "utf8")).toBe("old\n");
    expect(statSync(live).mode & 0o777).toBe(0o640);
    expect(existsSync(added)).toBe(false);
    expect(recoverPendingApply(join(dir, "backup"), () => false)).toBeUndefined();
  });

  it("rolls an apply forward when its commit mark is in the rows", async () => {
    await applyConfigFiles({ ...base(), files: files("old\n") });
    const pending = openJournal(join(dir, "backup"), [{ path: live, next: { content: "new\n", mode: 0o600 } }]);
    const recovery = recoverPendingApply(join(dir, "backup"), (id) => id === pending.id);
    expect(recovery?.direction).toBe("forward");
    expect(readFileSync(live, "utf8")).toBe("new\n");
    expect(statSync(live).mode & 0o777).toBe(0o600);
  });

  it("a commit that fails puts the old files back and reloads: config and rows stay together", async () => {
    // Regression: the rows used to commit after the config was live; a failing rows commit
    // (a full disk, a locked DB) left the new config running over the old rows.
    await applyConfigFiles({ ...base(), files: files("old\n") });
    let marked: string | undefined;
    const err = await applyConfigFiles({
      ...base(),
      files: files("new\n"),
      commit: (mark) => {
        marked = mark;
        expect(existsSync(join(dir, "backup", "pending-apply.json"))).toBe(true);
        throw new Error("database or disk is full");
      },
    }).catch((e: unknown) => e);
    expect(String(err)).toContain("database or disk is full");
    expect(marked).toMatch(/^[0-9a-f]{16}$/);
    expect(readFileSync(live, "utf8")).toBe("old\n");
    expect(reloads).toHaveLength(3);
    expect(existsSync(join(dir, "backup", "pending-apply.json"))).toBe(false);
  });

  it("writes the bookkeeping files after the commit, and with no file changed still commits", async () => {
    const manifest = join(dir, "state/manifest.json");
    const order: string[] = [];
    const run = (note: string) =>
      applyConfigFiles({
        ...base(),
        files: files("same\n"),
        commit: (mark) => {
          order.push(
            `${mark === undefined ? "no mark" : "mark"}, manifest ${existsSync(manifest) ? readFileSync(manifest, "utf8").trim() : "none"}`,
          );
        },
        bookkeeping: new Map([[manifest, { content: `${note}\n`, mode: 0o600 }]]),
      });
    await run("gen 1");
    await run("gen 2");
    expect(order).toEqual(["mark, manifest none", "no mark, manifest gen 1"]);
    expect(readFileSync(manifest, "utf8")).toBe("gen 2\n");
  });
});
