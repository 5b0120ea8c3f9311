// Adoption's kept-aside files (agent/mail/management.ts): the switch keeps NetServa's daemon
// files aside once with their digests; the rollback puts them back byte for byte with their mode,
// removes what did not exist before, and refuses (changing nothing) when a copy was tampered
// with or nothing was kept. And the line diff the adoption report shows (controller/adopt).
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { keepAside, keptAsideDir, restoreKeptAside, wouldOverwrite } from "../../agent/mail/management.ts";
import { createVnodePaths, type VnodePaths } from "../../agent/paths.ts";
import { lineDiff } from "../../controller/adopt/text-diff.ts";

let root: string;
let paths: VnodePaths;
const sha = (p: string): string => createHash("sha256").update(readFileSync(p)).digest("hex");
const write = (p: string, content: string | Buffer, mode = 0o644): void => {
  mkdirSync(dirname(p), { recursive: true });
  writeFileSync(p, content, { mode });
};

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), "kept-"));
  paths = createVnodePaths(root);
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

describe("kept aside and rolled back", () => {
  it("puts NetServa's files back exactly and removes the ones it did not have", () => {
    // Not UTF-8 on purpose: the rollback copies bytes, it does not re-encode.
    write(paths.postfixMainCf, Buffer.from([0x23, 0x20, 0xe9, 0x0a, 0x61, 0x0a]), 0o640);
    write(paths.dovecotConf, "# NetServa dovecot\n");
    const before = { main: sha(paths.postfixMainCf), dovecot: sha(paths.dovecotConf) };
    keepAside(paths, wouldOverwrite(paths));
    // Our apply overwrites them and adds files NetServa did not have.
    write(paths.postfixMainCf, "# ours\n", 0o644);
    write(paths.dovecotConf, "# ours\n");
    write(paths.postfixMasterCf, "# ours\n");
    write(paths.dovecotSqlConf, "# ours\n");
    write(paths.manifest, JSON.stringify({ generation: "1", files: {} }));
    // A second switch keeps the first originals.
    keepAside(paths, wouldOverwrite(paths));
    const restored = restoreKeptAside(paths);
    expect(sha(paths.postfixMainCf)).toBe(before.main);
    expect(sha(paths.dovecotConf)).toBe(before.dovecot);
    expect(statSync(paths.postfixMainCf).mode & 0o777).toBe(0o640);
    expect(existsSync(paths.postfixMasterCf)).toBe(false);
    expect(existsSync(paths.dovecotSqlConf)).toBe(false);
    expect(restored.find((f) => f.path === paths.postfixMainCf)).toEqual({
      path: paths.postfixMainCf,
      sha256: before.main,
      removed: false,
    });
    expect(restored.filter((f) => f.removed).map((f) => f.path)).toEqual([paths.postfixMasterCf, paths.dovecotSqlConf]);
    expect(existsSync(keptAsideDir(paths))).toBe(false);
    // None of the daemon files is ours any more: the next switch is a takeover again.
    expect(existsSync(paths.manifest)).toBe(false);
  });

  it("refuses, changing nothing, when nothing was kept or a copy was changed", () => {
    expect(() => restoreKeptAside(paths)).toThrow(/nothing was kept aside/);
    write(paths.postfixMainCf, "# NetServa\n");
    keepAside(paths, wouldOverwrite(paths));
    write(paths.postfixMainCf, "# ours\n");
    writeFileSync(join(keptAsideDir(paths), paths.postfixMainCf), "# tampered\n");
    expect(() => restoreKeptAside(paths)).toThrow(/missing or changed/);
    expect(readFileSync(paths.postfixMainCf, "utf8")).toBe("# ours\n");
  });
});

describe("line diff", () => {
  it("shows removed and added lines with context and where they are", () => {
    const a = ["a", "b", "c", "d", "e", "f", "g", "h"].join("\n");
    const b = ["a", "b", "c", "D", "e", "f", "g", "h", "i"].join("\n");
    expect(lineDiff(a, b)).toEqual(["@@ line 2", "  b", "  c", "- d", "+ D", "  e", "  f", "  g", "  h", "+ i"]);
    const long = Array.from({ length: 20 }, (_, i) => `l${i}`);
    const changed = long.map((l, i) => (i === 2 || i === 15 ? `${l}!` : l));
    expect(lineDiff(long.join("\n"), changed.join("\n")).filter((l) => l.startsWith("@@"))).toEqual([
      "@@ line 1",
      "@@ line 14",
    ]);
    expect(lineDiff(a, a)).toEqual([]);
  });
});
