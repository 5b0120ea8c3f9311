// The mailbox usage scanner: sizes from ",S=" names (stat otherwise), every folder, a missing
// maildir as empty, symlinks not followed; the incremental pass sees every change, also one made
// in the same clock tick as the previous pass (racy entries); deleted mailboxes drop out; and the
// pacing keeps its work to the duty cycle (a higher one for the first pass).
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createUsageScanner, scanMailboxUsage } from "../../agent/health/mailbox-usage.ts";
import { prepareSchema } from "../../agent/lookup/schema.ts";

let dir: string;
let dbPath: string;
let db: DatabaseSync;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "usage-"));
  dbPath = join(dir, "sysadm.db");
  db = new DatabaseSync(dbPath);
  prepareSchema(db);
  db.prepare("INSERT INTO vhosts(domain, uid, gid) VALUES('u.test', 0, 0)").run();
});
afterEach(() => {
  db.close();
  rmSync(dir, { recursive: true, force: true });
});

function addMailbox(local: string, quota = 0, make = true): string {
  const home = join(dir, "srv", local);
  db.prepare("INSERT INTO vmails(hid, user, pass, home, uid, gid, quota) VALUES(1, ?, 'x', ?, 0, 0, ?)").run(
    `${local}@u.test`,
    home,
    quota,
  );
  if (make) for (const sub of ["cur", "new", "tmp"]) mkdirSync(join(home, "Maildir", sub), { recursive: true });
  return join(home, "Maildir");
}

const usageOf = (rows: Awaited<ReturnType<typeof scanMailboxUsage>>, local: string) =>
  rows.find((r) => r.address === `${local}@u.test`);

describe("mailbox usage scan", () => {
  it("sums ,S= sizes and stat sizes over INBOX and subfolders, counting messages", async () => {
    const md = addMailbox("alice", 1000);
    writeFileSync(join(md, "new", "1.M1P1.host,S=300"), "ignored: the name carries the size");
    writeFileSync(join(md, "cur", "2.M2P2.host:2,S"), "x".repeat(50)); // no ,S=: stat
    mkdirSync(join(md, ".Junk", "cur"), { recursive: true });
    writeFileSync(join(md, ".Junk", "cur", "3.M3P3.host,S=7:2,"), "");
    const rows = await scanMailboxUsage(dbPath);
    expect(usageOf(rows, "alice")).toEqual({ address: "alice@u.test", usedBytes: 357, limitBytes: 1000, messages: 3 });
  });

  it("counts a missing maildir as empty and does not follow symlinks", async () => {
    addMailbox("ghost", 0, false);
    const md = addMailbox("link");
    const elsewhere = join(dir, "elsewhere");
    mkdirSync(elsewhere);
    writeFileSync(join(elsewhere, "big,S=999999"), "");
    rmSync(join(md, "cur"), { recursive: true });
    symlinkSync(elsewhere, join(md, "cur"));
    symlinkSync(elsewhere, join(md, ".Planted"));
    const rows = await scanMailboxUsage(dbPath);
    expect(usageOf(rows, "ghost")).toMatchObject({ usedBytes: 0, messages: 0 });
    expect(usageOf(rows, "link")).toMatchObject({ usedBytes: 0, messages: 0 });
  });

  it("sees every change on later passes, including one in the same clock tick, and forgets deleted mailboxes", async () => {
    const scanner = createUsageScanner(dbPath, { dutyCycle: 1 });
    const md = addMailbox("bob");
    addMailbox("carol");
    // A whole second: exactly representable, so the directory keeps the very mtime the pass saw.
    const tick = Math.floor(Date.now() / 1000);
    utimesSync(join(md, "new"), tick, tick);
    expect(usageOf(await scanner.scan(), "bob")).toMatchObject({ usedBytes: 0, messages: 0 });
    writeFileSync(join(md, "new", "1.a,S=10"), "");
    utimesSync(join(md, "new"), tick, tick); // the same clock tick as the pass before
    expect(usageOf(await scanner.scan(), "bob")).toMatchObject({ usedBytes: 10, messages: 1 });
    renameSync(join(md, "new", "1.a,S=10"), join(md, "cur", "1.a,S=10:2,S"));
    writeFileSync(join(md, "new", "2.b,S=5"), "");
    mkdirSync(join(md, ".Sent", "cur"), { recursive: true });
    writeFileSync(join(md, ".Sent", "cur", "3.c,S=1"), "");
    expect(usageOf(await scanner.scan(), "bob")).toMatchObject({ usedBytes: 16, messages: 3 });
    db.prepare("DELETE FROM vmails WHERE user = 'carol@u.test'").run();
    const rows = await scanner.scan();
    expect(rows.map((r) => r.address)).toEqual(["bob@u.test"]);
  });

  it("reuses what did not change once it is older than the racy window", async () => {
    const scanner = createUsageScanner(dbPath, { dutyCycle: 1, racyMs: 0 });
    const md = addMailbox("dave");
    writeFileSync(join(md, "new", "1.a,S=10"), "");
    expect(usageOf(await scanner.scan(), "dave")).toMatchObject({ usedBytes: 10 });
    // A file changed behind a directory whose mtime did not move is not re-read: the listing is reused.
    writeFileSync(join(md, "new", "1.a,S=10"), "changed content, same name");
    expect(usageOf(await scanner.scan(), "dave")).toMatchObject({ usedBytes: 10 });
  });

  it("pauses after each slice so its work stays within the duty cycle, and pages through the rows", async () => {
    for (let i = 0; i < 300; i++) addMailbox(`m${String(i).padStart(3, "0")}`);
    const pauses: number[] = [];
    const scanner = createUsageScanner(dbPath, {
      dutyCycle: 0.1,
      firstDutyCycle: 0.1,
      sliceMs: 0.5,
      pageSize: 7,
      sleep: async (ms) => void pauses.push(ms),
    });
    const rows = await scanner.scan();
    expect(rows).toHaveLength(300);
    expect(rows.map((r) => r.address)).toEqual([...rows.map((r) => r.address)].sort());
    expect(pauses.length).toBeGreaterThan(3);
    // Each pause is 9× the slice before it (10 % duty), and a slice is at least sliceMs.
    for (const p of pauses) expect(p).toBeGreaterThanOrEqual(0.5 * 9);
  });

  it("runs the first pass (no usage known yet) at its own, higher duty cycle, and later passes at the normal one", async () => {
    for (let i = 0; i < 300; i++) addMailbox(`m${String(i).padStart(3, "0")}`);
    let pauses: Array<{ ms: number; worked: number }> = [];
    const scanner = createUsageScanner(dbPath, {
      dutyCycle: 0.1,
      firstDutyCycle: 0.5,
      sliceMs: 0.1,
      racyMs: 0,
      sleep: async (ms, worked) => void pauses.push({ ms, worked }),
    });
    await scanner.scan();
    expect(pauses.length).toBeGreaterThan(0);
    for (const p of pauses) expect(p.ms / p.worked).toBeCloseTo(1, 5); // 50 %: a pause as long as the work
    pauses = [];
    await scanner.scan();
    expect(pauses.length).toBeGreaterThan(0);
    for (const p of pauses) expect(p.ms / p.worked).toBeCloseTo(9, 5); // 10 %
  });
});
