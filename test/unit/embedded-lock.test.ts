// The embedded database's lock: one holder at a time, refused at once naming the holder, dropped
// by the kernel when the holder dies (SIGKILL leaves nothing stale), and PID files of earlier
// versions honoured only while their process lives.
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { lockEmbeddedDatabase } from "../../controller/db/embedded-lock.ts";

let dir = "";
let dataDir = "";
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "nsm-lock-"));
  dataDir = join(dir, "db");
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** A child process holding the lock until killed; resolves once it holds it. */
async function holderProcess(): Promise<ReturnType<typeof spawn>> {
  const module = join(import.meta.dirname, "..", "..", "controller", "db", "embedded-lock.ts");
  const child = spawn(
    process.execPath,
    [
      "--no-warnings",
      "--expose-gc",
      "--input-type=module",
      "-e",
      // The holder keeps no reference to the lock, and a full GC runs before it says it holds it:
      // the lock must outlive its last reference (a reclaimed SQLite connection drops the lock).
      `const { lockEmbeddedDatabase } = await import(${JSON.stringify(module)});
       lockEmbeddedDatabase(${JSON.stringify(dataDir)}); globalThis.gc(); await new Promise((r) => setTimeout(r, 50)); globalThis.gc();
       process.stdout.write("held\\n"); setInterval(() => {}, 1000);`,
    ],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  await new Promise<void>((resolve, reject) => {
    child.stdout?.on("data", (c: Buffer) => (c.toString().includes("held") ? resolve() : undefined));
    child.once("exit", (code) => reject(new Error(`holder exited with ${code}`)));
  });
  return child;
}

/** Another process tries to take the lock: "taken" or its refusal. */
async function tryInChild(): Promise<string> {
  const module = join(import.meta.dirname, "..", "..", "controller", "db", "embedded-lock.ts");
  const child = spawn(
    process.execPath,
    [
      "--no-warnings",
      "--input-type=module",
      "-e",
      `const { lockEmbeddedDatabase } = await import(${JSON.stringify(module)});
       try { lockEmbeddedDatabase(${JSON.stringify(dataDir)}).release(); process.stdout.write("taken"); }
       catch (e) { process.stdout.write(e.message); }`,
    ],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  let out = "";
  child.stdout?.on("data", (c: Buffer) => void (out += c.toString()));
  await new Promise((resolve) => child.once("exit", resolve));
  return out;
}

describe("embedded database lock", () => {
  it("one holder at a time, in this process too; free again after release", async () => {
    const first = lockEmbeddedDatabase(dataDir);
    expect(readFileSync(`${dataDir}.lock.holder`, "utf8").trim()).toBe(String(process.pid));
    expect(() => lockEmbeddedDatabase(dataDir)).toThrow(`in use by process ${process.pid}`);
    // A refused attempt in the holder's own process must not drop its lock (closing any
    // descriptor of the file would): another process is still refused.
    expect(await tryInChild()).toContain(`in use by process ${process.pid}`);
    first.release();
    expect(await tryInChild()).toBe("taken");
    lockEmbeddedDatabase(dataDir).release();
  });

  it("a holder killed with SIGKILL leaves no stale lock", async () => {
    const child = await holderProcess();
    expect(() => lockEmbeddedDatabase(dataDir)).toThrow(`in use by process ${child.pid}`);
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGKILL");
    await exited;
    lockEmbeddedDatabase(dataDir).release();
  });

  it("an earlier version's PID file: honoured while its process lives, cleared once it is gone", async () => {
    const sleeper = spawn("sleep", ["60"], { stdio: "ignore" });
    try {
      writeFileSync(`${dataDir}.lock`, `${sleeper.pid}`);
      expect(() => lockEmbeddedDatabase(dataDir)).toThrow(`in use by process ${sleeper.pid}`);
    } finally {
      const exited = new Promise((resolve) => sleeper.once("exit", resolve));
      sleeper.kill("SIGKILL");
      await exited;
    }
    lockEmbeddedDatabase(dataDir).release();
  });
});
