// Hands off by default: which vnodes the agent may manage (agent/mail/management.ts).
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  NETSERVA_SYSADM_DB,
  detectManagement,
  keepAside,
  keptAside,
  recordManagement,
  wouldOverwrite,
} from "../../agent/mail/management.ts";
import { createVnodePaths, type VnodePaths } from "../../agent/paths.ts";

let root: string;
let paths: VnodePaths;
const put = (file: string, content: string): void => {
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, content);
};
const sysadm = (): string => join(root, NETSERVA_SYSADM_DB);

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), "nsm-management-"));
  paths = createVnodePaths(root);
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

describe("vnode management", () => {
  it("a root with nothing foreign in it is managed (the lab layout)", () => {
    expect(detectManagement(paths, sysadm())).toEqual({ managed: true, reason: "" });
  });

  it("a main.cf, a dovecot.conf or a sysadm DB we did not write make it unmanaged, each named", () => {
    put(paths.postfixMainCf, "# Debian's stock main.cf\n");
    let m = detectManagement(paths, sysadm());
    expect(m.managed).toBe(false);
    expect(m.reason).toContain(paths.postfixMainCf);
    rmSync(paths.postfixMainCf);
    put(paths.dovecotConf, "protocols = imap\n");
    expect(detectManagement(paths, sysadm()).reason).toContain(paths.dovecotConf);
    rmSync(paths.dovecotConf);
    put(sysadm(), "");
    m = detectManagement(paths, sysadm());
    expect(m.managed).toBe(false);
    expect(m.reason).toContain("NetServa sysadm database");
  });

  it("a config we applied before (our manifest lists files) stays managed", () => {
    put(paths.postfixMainCf, "ours\n");
    put(paths.manifest, JSON.stringify({ generation: "3", files: { [paths.postfixMainCf]: "x" } }));
    expect(detectManagement(paths, sysadm()).managed).toBe(true);
  });

  it("an apply of ours a crash interrupted (its undo journal) is ours: managed, so recovery runs", () => {
    put(paths.postfixMainCf, "half ours\n");
    put(join(paths.backupDir, "journal.json"), "{}");
    expect(detectManagement(paths, sysadm()).managed).toBe(true);
  });

  it("an explicit decision wins over detection, both ways", () => {
    put(paths.postfixMainCf, "foreign\n");
    recordManagement(paths, { managed: true, reason: "" });
    expect(detectManagement(paths, sysadm()).managed).toBe(true);
    rmSync(paths.postfixMainCf);
    recordManagement(paths, { managed: false, reason: "rolled back" });
    expect(detectManagement(paths, sysadm())).toEqual({ managed: false, reason: "rolled back" });
  });

  it("keeps aside the files a switch overwrites, once: a second switch never replaces the originals", () => {
    put(paths.postfixMainCf, "netserva main.cf\n");
    put(paths.postfixMasterCf, "netserva master.cf\n");
    const files = wouldOverwrite(paths);
    expect(files.sort()).toEqual([paths.postfixMainCf, paths.postfixMasterCf].sort());
    keepAside(paths, files);
    writeFileSync(paths.postfixMainCf, "ours\n");
    keepAside(paths, files);
    const copy = keptAside(paths, paths.postfixMainCf);
    expect(copy).toBeDefined();
    expect(readFileSync(copy ?? "", "utf8")).toBe("netserva main.cf\n");
    expect(keptAside(paths, paths.dovecotConf)).toBeUndefined();
  });
});
