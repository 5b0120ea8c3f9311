// apply on a full filesystem, against real tmpfs mounts: every way a write can run out of space
// (the live file's directory, the staging area, the undo journal) is a clean refusal that says
// "no space left on device" and names the file, keeps the old files byte for byte, and leaves
// no temp file, staged copy or journal behind. Regression: write(2) took only part of a buffer
// once the tmpfs filled up and the truncated file was renamed over the live one.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeEach, describe, expect, it } from "vitest";
import { applyConfigFiles, type Validator } from "../../agent/apply/apply-config-files.ts";
import { writeFileAtomic } from "../../agent/apply/atomic-write.ts";
import type { FileSet } from "../../agent/apply/file-spec.ts";
import { openLookupStore } from "../../agent/lookup/lookup-store.ts";
import { checkChanges } from "../../agent/lookup/rows.ts";
import { StateChangeSchema, type StateChange } from "../../common/gen/netserva/mail/v1/state_pb.ts";
import { create } from "@bufbuild/protobuf";
import { fillUp, freeUp, mountTmpfs, tempFilesUnder, unmountAll } from "../helpers/tmpfs.ts";

const HASH = "{SHA512-CRYPT}$6$abcdefgh$" + "x".repeat(86);
const mailboxes = (domain: string, n: number): StateChange[] => [
  create(StateChangeSchema, { kind: { case: "upsertDomain", value: { domain, active: true } } }),
  ...Array.from({ length: n }, (_, i) =>
    create(StateChangeSchema, {
      kind: { case: "upsertMailbox", value: { address: `u${i}@${domain}`, passwordHash: HASH, active: true } },
    }),
  ),
];

const isRoot = process.getuid?.() === 0;
let dir: string;
let reloads: number;
let checks: number;

const checker: Validator = {
  name: "counting check",
  async check() {
    checks++;
  },
};
const options = (files: FileSet, over: { stagingDir?: string; backupDir?: string } = {}) => ({
  files,
  stagingDir: over.stagingDir ?? join(dir, "state/staging"),
  backupDir: over.backupDir ?? join(dir, "state/backup"),
  validate: [checker],
  reload: async () => void reloads++,
  verify: async () => undefined,
});

/** Two live files with old content, written while there is room. */
function oldFiles(etc: string): { a: string; b: string } {
  const a = join(etc, "main.cf");
  const b = join(etc, "master.cf");
  mkdirSync(etc, { recursive: true });
  writeFileSync(a, "old main.cf\n");
  writeFileSync(b, "old master.cf\n");
  return { a, b };
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "apply-full-"));
  reloads = 0;
  checks = 0;
});
afterEach(async () => {
  await unmountAll();
  rmSync(dir, { recursive: true, force: true });
});
afterAll(unmountAll);

describe.skipIf(!isRoot)("apply on a full filesystem", () => {
  it("writeFileAtomic: a file bigger than the space left is refused whole; the old file stays byte for byte", async () => {
    const etc = join(dir, "etc");
    await mountTmpfs(etc, 64 * 1024);
    const { a } = oldFiles(etc);
    const err = await Promise.resolve()
      .then(() => writeFileAtomic(a, { content: "x".repeat(200_000), mode: 0o644 }))
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "failed_precondition" });
    expect(String(err)).toContain(`no space left on device: cannot write ${a}`);
    expect(readFileSync(a, "utf8")).toBe("old main.cf\n");
    expect(tempFilesUnder(etc)).toEqual([]);
  });

  it("a full staging area: refused at staging, nothing checked, reloaded or left staged", async () => {
    const { a, b } = oldFiles(join(dir, "etc"));
    const state = join(dir, "state");
    await mountTmpfs(state, 64 * 1024);
    fillUp(state);
    const files: FileSet = new Map([
      [a, { content: "new main.cf\n", mode: 0o644 }],
      [b, { content: "new master.cf\n", mode: 0o644 }],
    ]);
    const err = await applyConfigFiles(options(files)).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "failed_precondition" });
    expect(String(err)).toMatch(
      /config refused at staging; previous config kept: no space left on device: cannot write \S+staging/,
    );
    expect([readFileSync(a, "utf8"), readFileSync(b, "utf8")]).toEqual(["old main.cf\n", "old master.cf\n"]);
    expect({ checks, reloads }).toEqual({ checks: 0, reloads: 0 });
    expect(existsSync(join(state, "staging"))).toBe(false);
    expect(tempFilesUnder(dir)).toEqual([]);
  });

  it("room for the first new file but not the second: refused at writing, the first temp file removed", async () => {
    const etc = join(dir, "etc");
    // 4 pages: the two old files take one each, the first new file two, the second finds none.
    await mountTmpfs(etc, 16 * 1024);
    const { a, b } = oldFiles(etc);
    const files: FileSet = new Map([
      [a, { content: "n".repeat(8000), mode: 0o644 }],
      [b, { content: "m".repeat(20_000), mode: 0o644 }],
    ]);
    const err = await applyConfigFiles(options(files)).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "failed_precondition" });
    expect(String(err)).toContain(
      `config refused at writing; previous config kept: no space left on device: cannot write ${b}`,
    );
    expect(checks).toBe(1); // the staged copies (on the roomy disk) were checked
    expect(reloads).toBe(0);
    expect([readFileSync(a, "utf8"), readFileSync(b, "utf8")]).toEqual(["old main.cf\n", "old master.cf\n"]);
    expect(tempFilesUnder(etc)).toEqual([]);
    expect(existsSync(join(dir, "state/backup/pending-apply.json"))).toBe(false);
  });

  it("a full journal directory: refused before the first rename, the new files' temp copies removed", async () => {
    const { a, b } = oldFiles(join(dir, "etc"));
    const backupDir = join(dir, "backup");
    await mountTmpfs(backupDir, 64 * 1024);
    fillUp(backupDir);
    const files: FileSet = new Map([
      [a, { content: "new main.cf\n", mode: 0o644 }],
      [b, { content: "new master.cf\n", mode: 0o644 }],
    ]);
    const err = await applyConfigFiles(options(files, { backupDir })).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "failed_precondition" });
    expect(String(err)).toContain(
      `config refused at writing; previous config kept: no space left on device: cannot write ${join(backupDir, "pending-apply.json")}`,
    );
    expect(reloads).toBe(0);
    expect([readFileSync(a, "utf8"), readFileSync(b, "utf8")]).toEqual(["old main.cf\n", "old master.cf\n"]);
    expect(tempFilesUnder(dir)).toEqual([]);
    expect(existsSync(join(backupDir, "pending-apply.json"))).toBe(false);
  });

  it("a reload that fails once the disk filled up meanwhile: the rollback still puts the old files back byte for byte", async () => {
    const etc = join(dir, "etc");
    await mountTmpfs(etc, 64 * 1024);
    const { a, b } = oldFiles(etc);
    let filler: string[] = [];
    const files: FileSet = new Map([
      [a, { content: "new main.cf\n", mode: 0o600 }],
      [b, { content: "new master.cf\n", mode: 0o600 }],
    ]);
    // Mail arriving on the same filesystem takes the space the replaced files gave back.
    const err = await applyConfigFiles({
      ...options(files),
      reload: async () => {
        reloads++;
        if (reloads === 1) {
          filler = fillUp(etc);
          throw new Error("postfix reload failed");
        }
      },
    }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "failed_precondition" });
    expect(String(err)).toContain("config refused at reload; previous config kept: postfix reload failed");
    expect(reloads).toBe(2); // forward, then back onto the restored files
    expect([readFileSync(a, "utf8"), readFileSync(b, "utf8")]).toEqual(["old main.cf\n", "old master.cf\n"]);
    expect(tempFilesUnder(etc)).toEqual([]);
    expect(existsSync(join(dir, "state/backup/pending-apply.json"))).toBe(false);
    freeUp(filler);
  });

  it("after space is freed the same apply goes through", async () => {
    const { a, b } = oldFiles(join(dir, "etc"));
    const state = join(dir, "state");
    await mountTmpfs(state, 64 * 1024);
    const filler = fillUp(state);
    const files: FileSet = new Map([
      [a, { content: "new main.cf\n", mode: 0o644 }],
      [b, { content: "new master.cf\n", mode: 0o644 }],
    ]);
    await expect(applyConfigFiles(options(files))).rejects.toThrow(/no space left on device/);
    for (const f of filler) rmSync(f);
    const done = await applyConfigFiles(options(files));
    expect(done.changed).toEqual([a, b]);
    expect([readFileSync(a, "utf8"), readFileSync(b, "utf8")]).toEqual(["new main.cf\n", "new master.cf\n"]);
    expect(reloads).toBe(1);
  });

  it("the lookup DB on a full filesystem: refused naming the DB, no row changed, and writable again once space is back", async () => {
    const lookup = join(dir, "lookup");
    await mountTmpfs(lookup, 1024 * 1024);
    const store = openLookupStore({ path: join(lookup, "sysadm.db") });
    try {
      store.applyChanges(checkChanges(mailboxes("before.test", 1)));
      const digest = store.digest();
      const filler = fillUp(lookup);
      // Regression: SQLite ends the transaction itself on SQLITE_FULL; the store's ROLLBACK then
      // threw "cannot rollback - no transaction is active" instead of saying why.
      let err: unknown;
      try {
        store.applyChanges(checkChanges(mailboxes("full.test", 400)));
      } catch (e) {
        err = e;
      }
      expect(err).toMatchObject({ code: "failed_precondition" });
      expect(String(err)).toContain(`no space left on device: cannot write the lookup DB ${join(lookup, "sysadm.db")}`);
      expect(store.digest()).toBe(digest);
      expect(store.hasMailbox("u0@full.test")).toBe(false);
      freeUp(filler);
      store.applyChanges(checkChanges(mailboxes("full.test", 400)));
      expect(store.hasMailbox("u399@full.test")).toBe(true);
    } finally {
      store.close();
    }
  });
});
