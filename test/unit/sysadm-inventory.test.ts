// The adoption inventory reads NetServa's sysadm DB read-only, in both layouts NetServa has
// shipped, with the column variations real vnodes have (agent/adopt/sysadm-inventory.ts).
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { readSysadmInventory } from "../../agent/adopt/sysadm-inventory.ts";
import { createVnodePaths, type VnodePaths } from "../../agent/paths.ts";

const SHA512 = "$6$saltsalt$" + "a".repeat(86);
const MD5 = "$1$salt$" + "d".repeat(22);
let dir: string;
let paths: VnodePaths;
const digest = (file: string): string => createHash("sha256").update(readFileSync(file)).digest("hex");

function makeDb(file: string, sql: string): void {
  const db = new DatabaseSync(file);
  db.exec(sql);
  db.close();
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "nsm-inventory-"));
  paths = createVnodePaths(join(dir, "root"));
  mkdirSync(paths.postfixDir, { recursive: true });
  writeFileSync(paths.postfixMainCf, "virtual_mailbox_domains = sqlite:/etc/postfix/sqlite-mailbox-domains.cf\n");
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe("sysadm inventory", () => {
  it("reads NetServa 3.0's vhosts/vmails/valias read-only: hashes as stored, homes and uids per row", () => {
    const file = join(dir, "sysadm.db");
    makeDb(
      file,
      `CREATE TABLE vhosts (id INTEGER PRIMARY KEY, domain TEXT, uid INTEGER, gid INTEGER, active INTEGER DEFAULT 1);
       CREATE TABLE vmails (id INTEGER PRIMARY KEY, user TEXT, pass TEXT, home TEXT, uid INTEGER, gid INTEGER, active INTEGER DEFAULT 1, clearpw TEXT);
       CREATE TABLE valias (id INTEGER PRIMARY KEY, source TEXT, target TEXT, active INTEGER DEFAULT 1);
       INSERT INTO vhosts (domain, uid, gid, active) VALUES ('a.test', 1001, 1001, 1), ('old.test', 1002, 1002, 0);
       INSERT INTO vmails (user, pass, home, uid, gid, active, clearpw) VALUES
         ('alice@a.test', '{SHA512-CRYPT}${SHA512}', '/srv/a.test/msg/alice', 1001, 1001, 1, 'alice-clear'),
         ('bob@a.test', '${MD5}', '/home/u1001/var/a.test/msg/bob', 1001, 1001, 0, 'bob-clear');
       INSERT INTO valias (source, target, active) VALUES ('@a.test', 'alice@a.test', 1),
         ('team@a.test', 'alice@a.test, bob@a.test,outside@remote.test', 1), ('old@a.test', 'alice@a.test', 0);`,
    );
    const before = digest(file);
    const inv = readSysadmInventory(file, paths);
    expect(inv.layout).toBe("vhosts");
    expect(inv.domains).toEqual([
      { domain: "a.test", uid: 1001, gid: 1001, active: true },
      { domain: "old.test", uid: 1002, gid: 1002, active: false },
    ]);
    expect(inv.mailboxes).toEqual([
      {
        address: "alice@a.test",
        passwordHash: `{SHA512-CRYPT}${SHA512}`,
        scheme: "SHA512-CRYPT",
        weak: false,
        hasQuota: false,
        quotaBytes: 0n,
        home: "/srv/a.test/msg/alice",
        uid: 1001,
        gid: 1001,
        active: true,
      },
      {
        address: "bob@a.test",
        passwordHash: MD5,
        scheme: "MD5-CRYPT",
        weak: true,
        hasQuota: false,
        quotaBytes: 0n,
        home: "/home/u1001/var/a.test/msg/bob",
        uid: 1001,
        gid: 1001,
        active: false,
      },
    ]);
    expect(inv.aliases).toEqual([
      { source: "@a.test", targets: ["alice@a.test"], active: true },
      { source: "team@a.test", targets: ["alice@a.test", "bob@a.test", "outside@remote.test"], active: true },
      { source: "old@a.test", targets: ["alice@a.test"], active: false },
    ]);
    // The clear-text column is named, never read: no value of it appears anywhere.
    expect(inv.warnings.join("\n")).toContain("vmails.clearpw holds clear-text passwords");
    expect(JSON.stringify(inv, (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : v))).not.toContain("-clear");
    expect(inv.warnings.join("\n")).toContain("no quota column");
    expect(inv.files.find((f) => f.path === paths.postfixMainCf)?.exists).toBe(true);
    expect(inv.files.find((f) => f.path === paths.dovecotConf)?.exists).toBe(false);
    // Read only: the DB is byte for byte the same and no journal or WAL file appeared.
    expect(digest(file)).toBe(before);
    expect(readdirSync(dir).filter((f) => f.startsWith("sysadm.db"))).toEqual(["sysadm.db"]);
  });

  it("reads the domains/mailboxes/aliases layout: password column, maildir → home, quota", () => {
    const file = join(dir, "sysadm.db");
    makeDb(
      file,
      `CREATE TABLE domains (domain TEXT PRIMARY KEY, uid INTEGER, gid INTEGER, maxquota BIGINT, active INTEGER);
       CREATE TABLE mailboxes (username TEXT PRIMARY KEY, password TEXT, maildir TEXT, domain TEXT, uid INTEGER, gid INTEGER, quota BIGINT, active INTEGER);
       CREATE TABLE aliases (address TEXT PRIMARY KEY, goto TEXT, domain TEXT, active INTEGER);
       INSERT INTO domains VALUES ('b.test', 2001, 2002, 0, 1);
       INSERT INTO mailboxes VALUES ('carol@b.test', '{PLAIN}carol-secret', '/srv/b.test/msg/carol/Maildir/', 'b.test', 2001, 2002, 500000000, 1);
       INSERT INTO aliases VALUES ('info@b.test', 'carol@b.test', 'b.test', 1);`,
    );
    const inv = readSysadmInventory(file, paths);
    expect(inv.layout).toBe("domains");
    expect(inv.columns).toContain("mailboxes.password → hash");
    expect(inv.mailboxes[0]).toMatchObject({
      address: "carol@b.test",
      scheme: "PLAIN",
      weak: true,
      hasQuota: true,
      quotaBytes: 500000000n,
      home: "/srv/b.test/msg/carol",
      uid: 2001,
      gid: 2002,
    });
    expect(inv.aliases).toEqual([{ source: "info@b.test", targets: ["carol@b.test"], active: true }]);
  });

  it("refuses what is not a sysadm DB, naming what is missing", () => {
    const file = join(dir, "other.db");
    makeDb(file, "CREATE TABLE things (x INTEGER);");
    expect(() => readSysadmInventory(file, paths)).toThrow(/neither vmails/);
    const partial = join(dir, "partial.db");
    makeDb(partial, "CREATE TABLE vmails (user TEXT, home TEXT);");
    expect(() => readSysadmInventory(partial, paths)).toThrow(/no column for hash/);
    expect(() => readSysadmInventory(join(dir, "absent.db"), paths)).toThrow(/no NetServa sysadm database/);
    expect(existsSync(join(dir, "absent.db"))).toBe(false);
  });
});
