// Key and certificate files: private ones 0600 from the first byte, public ones 0644 whatever
// the umask, replaced atomically, no temp files left behind.
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { writePrivateFile, writePublicFile } from "../../common/pki/files.ts";

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "pki-files-"));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

const mode = (path: string): number => statSync(path).mode & 0o777;

describe("writePrivateFile / writePublicFile", () => {
  it("creates a private file with mode 0600", async () => {
    const path = join(dir, "agent.key");
    await writePrivateFile(path, "-----BEGIN PRIVATE KEY-----\n");
    expect(mode(path)).toBe(0o600);
    expect(readFileSync(path, "utf8")).toBe("-----BEGIN PRIVATE KEY-----\n");
    expect(readdirSync(dir)).toEqual(["agent.key"]);
  });

  it("replaces a world-readable file with a 0600 one (a new inode, not a chmod race)", async () => {
    const path = join(dir, "agent.key");
    writeFileSync(path, "old", { mode: 0o644 });
    const before = statSync(path).ino;
    await writePrivateFile(path, Buffer.from("new"));
    expect(mode(path)).toBe(0o600);
    expect(statSync(path).ino).not.toBe(before);
    expect(readFileSync(path, "utf8")).toBe("new");
  });

  it("creates a public file with mode 0644 even under a restrictive umask", async () => {
    const path = join(dir, "agent.crt");
    const old = process.umask(0o077);
    try {
      await writePublicFile(path, "cert");
    } finally {
      process.umask(old);
    }
    expect(mode(path)).toBe(0o644);
    expect(readdirSync(dir)).toEqual(["agent.crt"]);
  });

  it("fails cleanly when the directory does not exist, leaving nothing behind", async () => {
    await expect(writePrivateFile(join(dir, "missing", "agent.key"), "x")).rejects.toMatchObject({ code: "ENOENT" });
    expect(readdirSync(dir)).toEqual([]);
  });

  it("removes its temp file when the rename fails", async () => {
    // A non-empty directory in the way makes rename fail after the temp file was written.
    mkdirSync(join(dir, "busy"));
    writeFileSync(join(dir, "busy", "keep"), "");
    await expect(writePrivateFile(join(dir, "busy"), "x")).rejects.toBeInstanceOf(Error);
    expect(readdirSync(dir)).toEqual(["busy"]);
  });
});
