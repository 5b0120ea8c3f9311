// The mail commands end to end through the CLI (in-process, as operators run them) on a fresh
// controller home with the embedded database: happy paths of every command, the exit codes
// (0 done, 1 refused, 2 usage, 3 not found, 4 conflict), --dry-run changing nothing, delvmail's
// question, the import/export round trip, and a generated password shown once and never logged.
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { verifyPassword } from "../../common/password/index.ts";
import { createCliContext } from "../../controller/cli/cli-context.ts";
import type { CliContext } from "../../controller/cli/cli-context.ts";
import { argvFor, runCommand } from "../../controller/cli/main.ts";
import { mailCommandNames } from "../../controller/cli/commands/mail-registry.ts";
import type { Database } from "../../controller/db/open-database.ts";
import type { AliasView, DomainView, MailboxView, VConfView } from "../../controller/mail/mail-api.ts";
import { parseCsv } from "../../controller/mail-import/csv.ts";

interface Run {
  code: number;
  out: string;
  err: string;
}

interface RunOptions {
  stdin?: string;
  /** Answer to io.confirm; absent = no terminal to ask on. */
  confirm?: boolean;
  tty?: boolean;
}

let dir = "";
let home = "";
let db: Database;
const env: Record<string, string | undefined> = {};
const questions: string[] = [];

async function cli(argv: string[], options: RunOptions = {}): Promise<Run> {
  let out = "";
  let err = "";
  const answer = options.confirm;
  const base = createCliContext({
    out: (t) => void (out += t),
    err: (t) => void (err += t),
    readStdin: async () => options.stdin ?? "",
    env,
    isTTY: options.tty ?? false,
    ...(answer === undefined ? {} : { confirm: async (q: string) => (questions.push(q), answer) }),
  });
  const ctx: CliContext = { ...base, openDb: async () => ({ ...db, close: async () => undefined }) };
  const code = await runCommand(argv, ctx);
  return { code, out, err };
}

async function ok(argv: string[], options: RunOptions = {}): Promise<Run> {
  const run = await cli(argv, options);
  expect(run.code, `${argv.join(" ")}\n${run.err}`).toBe(0);
  return run;
}

const json = <T>(run: Run): T => JSON.parse(run.out) as T;

/** Counts and a digest of every mail row and the vnodes' generations. */
async function snapshot(): Promise<{ counts: Record<string, number>; digest: string }> {
  const em = db.em();
  const tables = ["mail_vhosts", "mail_vboxes", "mail_valias", "vconfs"] as const;
  const counts: Record<string, number> = {};
  const hash = createHash("sha256");
  for (const table of tables) {
    const rows = await em.execute<Array<Record<string, unknown>>>(`select * from ${table} order by id`);
    counts[table] = rows.length;
    hash.update(JSON.stringify(rows));
  }
  hash.update(JSON.stringify(await em.execute("select name, generation from vnodes order by name")));
  return { counts, digest: hash.digest("hex") };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "nsm-cli-mail-"));
  home = join(dir, "controller");
  Object.assign(env, { NETSERVA_MAIL_HOME: home, NETSERVA_MAIL_ACTOR: "tester" });
  const init = createCliContext({
    out: () => undefined,
    err: () => undefined,
    readStdin: async () => "",
    env,
    isTTY: false,
  });
  expect(await runCommand(["init", "--listen", "127.0.0.1:1"], init)).toBe(0);
  db = await init.openDb(init.paths());
  // The zone list the DNS check reads: every test domain lives under example.com.
  writeFileSync(join(home, "dns-zones"), "# zones served by our DNS\nexample.com\n");
  await ok(["vnode", "add", "mx1", "--address", "127.0.0.1:1"]);
  await ok(["vnode", "add", "mx2", "--address", "127.0.0.1:2"]);
});

afterAll(async () => {
  await db?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("command names", () => {
  it("every mail command is a subcommand and a bin alias", async () => {
    expect([...mailCommandNames].sort()).toEqual(
      [
        "addvalias",
        "addvmail",
        "addvmaildomain",
        "chvalias",
        "chvconf",
        "chvmail",
        "chvmaildomain",
        "delvalias",
        "delvconf",
        "delvmail",
        "delvmaildomain",
        "mail:export",
        "mail:import",
        "shvalias",
        "shvconf",
        "shvmail",
        "shvmaildomain",
      ].sort(),
    );
    expect(argvFor("/usr/local/bin/addvmail", ["mx1", "a@example.com"])).toEqual(["addvmail", "mx1", "a@example.com"]);
    expect(argvFor("/usr/local/bin/netserva-mail", ["status"])).toEqual(["status"]);
    for (const name of mailCommandNames) expect((await cli([name, "--help"])).code, name).toBe(0);
  });

  it("usage errors exit 2: a missing argument, an unknown option", async () => {
    expect((await cli(["addvmail", "mx1"])).code).toBe(2);
    expect((await cli(["shvmail"])).code).toBe(2);
    expect((await cli(["addvmail", "mx1", "a@example.com", "--no-such-flag"])).code).toBe(2);
    expect((await cli(["chvmail", "mx1", "a@example.com"])).code).toBe(2); // nothing to change
    expect((await cli(["chvalias", "mx1", "a@example.com"])).code).toBe(2);
    expect((await cli(["mail:import", join(dir, "missing.csv")])).code).toBe(2);
  });
});

describe("domains", () => {
  it("addvmaildomain, shvmaildomain, chvmaildomain, delvmaildomain", async () => {
    const added = await ok([
      "addvmaildomain",
      "mx1",
      "d1.example.com",
      "--quota",
      "2G",
      "--max-mailboxes",
      "5",
      "--max-quota",
      "10G",
    ]);
    expect(added.out).toMatch(/added mail domain d1\.example\.com on mx1 \(generation \d+/);
    expect(added.err).toMatch(/not pushed: /);
    const one = json<DomainView>(await ok(["shvmaildomain", "mx1", "d1.example.com", "--json"]));
    expect(one).toMatchObject({
      domain: "d1.example.com",
      ascii: "d1.example.com",
      vnode: "mx1",
      active: true,
      defaultQuota: 2 * 1024 ** 3,
      maxMailboxes: 5,
      maxQuota: 10 * 1024 ** 3,
      mailboxes: 0,
      aliases: 0,
    });
    const table = await ok(["shvmaildomain", "mx1"]);
    expect(table.out).toMatch(/^DOMAIN\s+ACTIVE\s+MAILBOXES/);
    expect(table.out).toMatch(/d1\.example\.com\s+yes\s+0\/5/);
    const csv = parseCsv((await ok(["shvmaildomain", "mx1", "--format", "csv"])).out);
    expect(csv[0]?.fields).toContain("defaultQuota");
    await ok(["chvmaildomain", "mx1", "d1.example.com", "--max-mailboxes", "7", "--active", "0"]);
    expect(json<DomainView>(await ok(["shvmaildomain", "mx1", "d1.example.com", "--format", "json"]))).toMatchObject({
      maxMailboxes: 7,
      active: false,
    });
    const del = await ok(["delvmaildomain", "mx1", "d1.example.com", "--yes"]);
    expect(del.out).toMatch(/deleted mail domain d1\.example\.com/);
    expect((await cli(["shvmaildomain", "mx1", "d1.example.com"])).code).toBe(3);
  });

  it("the DNS check: refused without a zone (4), allowed with --skip-dns-check", async () => {
    const refused = await cli(["addvmaildomain", "mx1", "d2.example.net"]);
    expect(refused.code).toBe(4);
    expect(refused.err).toMatch(/domain: no DNS zone covers d2\.example\.net/);
    await ok(["addvmaildomain", "mx1", "d2.example.net", "--skip-dns-check"]);
    const logged = await db
      .em()
      .execute<Array<{ args: Record<string, unknown> }>>(
        "select args from command_log where command = 'addvmaildomain' and result = 'ok' and args->>'domain' = 'd2.example.net'",
      );
    expect(logged[0]?.args["skipDnsCheck"]).toBe(true);
  });

  it("exit codes: 1 bad name, 3 unknown vnode, 4 already hosted, 4 active mailboxes block a delete", async () => {
    expect((await cli(["addvmaildomain", "mx1", "bad_domain!.example.com"])).code).toBe(1);
    expect((await cli(["addvmaildomain", "nosuchvnode", "d3.example.com"])).code).toBe(3);
    await ok(["addvmaildomain", "mx1", "d3.example.com"]);
    const dup = await cli(["addvmaildomain", "mx2", "d3.example.com"]);
    expect(dup.code).toBe(4);
    expect(dup.err).toMatch(/already hosted on another vnode/);
    await ok(["addvmail", "mx1", "u@d3.example.com"]);
    const blocked = await cli(["delvmaildomain", "mx1", "d3.example.com", "--yes"]);
    expect(blocked.code).toBe(4);
    expect(blocked.err).toMatch(/1 active mailbox/);
  });
});

describe("mailboxes", () => {
  beforeAll(async () => {
    await ok(["addvmaildomain", "mx1", "m.example.com", "--quota", "1G"]);
  });

  it("addvmail prints the generated password once, stores only a hash, never logs it", async () => {
    const run = await ok(["addvmail", "mx1", "alice@m.example.com", "--quota", "2G", "--name", "Alice Liddell"]);
    const password = /^password: (\S+)$/m.exec(run.out)?.[1] ?? "";
    expect(password.length).toBeGreaterThanOrEqual(16);
    expect(run.out.split(password).length - 1).toBe(1);
    expect(run.err).not.toContain(password);
    const stored = await db
      .em()
      .execute<Array<{ password_hash: string }>>(
        "select password_hash from mail_vboxes where address = 'alice@m.example.com'",
      );
    expect(stored[0]?.password_hash).toMatch(/^\{SHA512-CRYPT\}\$6\$/);
    expect(await verifyPassword(password, stored[0]?.password_hash ?? "")).toBe(true);
    const log = await db.em().execute<Array<{ row: unknown }>>("select row_to_json(c) as row from command_log c");
    expect(JSON.stringify(log)).not.toContain(password);
    // Shown once: no listing or detail view carries it, or the hash.
    for (const argv of [
      ["shvmail", "mx1", "alice@m.example.com", "--json"],
      ["shvmail", "mx1", "--format", "csv"],
      ["mail:export", "mx1"],
    ]) {
      expect((await ok(argv)).out).not.toContain(password);
    }
  });

  it("addvmail --password-stdin takes the operator's password (one trailing newline dropped) and prints none", async () => {
    const run = await ok(["addvmail", "mx1", "bob@m.example.com", "--password-stdin", "--scheme", "argon2id"], {
      stdin: "correct horse battery\n",
    });
    expect(run.out).not.toMatch(/password:/);
    const stored = await db
      .em()
      .execute<Array<{ password_hash: string }>>(
        "select password_hash from mail_vboxes where address = 'bob@m.example.com'",
      );
    expect(stored[0]?.password_hash).toMatch(/^\{ARGON2ID\}\$argon2id\$/);
    expect(await verifyPassword("correct horse battery", stored[0]?.password_hash ?? "")).toBe(true);
    const log = await db.em().execute<Array<{ row: unknown }>>("select row_to_json(c) as row from command_log c");
    expect(JSON.stringify(log)).not.toContain("correct horse battery");
  });

  it("addvmail --catch-all on admin@ makes @domain point at it", async () => {
    await ok(["addvmail", "mx1", "admin@m.example.com", "--catch-all"]);
    expect(json<AliasView>(await ok(["shvalias", "mx1", "@m.example.com", "--json"])).targets).toEqual([
      "admin@m.example.com",
    ]);
    expect((await cli(["addvmail", "mx1", "carol@m.example.com", "--catch-all"])).code).toBe(1);
  });

  it("shvmail lists (table, json, csv) and shows one mailbox in detail", async () => {
    await ok(["addvmail", "mx1", "dave@m.example.com"]);
    await ok(["addvalias", "mx1", "info@m.example.com", "dave@m.example.com,someone@remote.example.org"]);
    const list = json<MailboxView[]>(await ok(["shvmail", "mx1", "@m.example.com", "--json"]));
    const dave = list.find((m) => m.address === "dave@m.example.com");
    expect(dave).toMatchObject({
      vnode: "mx1",
      quota: 1024 ** 3,
      usage: null,
      active: true,
      maildir: "/srv/m.example.com/msg/dave/Maildir",
      hasSieve: false,
      aliases: ["info@m.example.com"],
    });
    expect(Object.keys(dave ?? {}).sort()).toEqual([
      "active",
      "address",
      "aliases",
      "ascii",
      "createdAt",
      "hasSieve",
      "maildir",
      "name",
      "passwordChangedAt",
      "passwordScheme",
      "quota",
      "updatedAt",
      "usage",
      "vnode",
      "weakPassword",
    ]);
    expect(dave).toMatchObject({ passwordScheme: "SHA512-CRYPT", weakPassword: false });
    const table = await ok(["shvmail", "mx1", "m.example.com"]);
    expect(table.out).toMatch(/^ADDRESS\s+NAME\s+QUOTA\s+USAGE\s+ACTIVE\s+ALIASES/);
    expect(table.out).toMatch(/dave@m\.example\.com\s+-\s+1G\s+-\s+yes\s+info@m\.example\.com/);
    const csv = parseCsv((await ok(["shvmail", "mx1", "--format", "csv"])).out);
    expect(csv[0]?.fields.slice(0, 3)).toEqual(["address", "ascii", "vnode"]);
    const detail = await ok(["shvmail", "mx1", "dave@m.example.com"]);
    expect(detail.out).toMatch(/^address\s+dave@m\.example\.com$/m);
    expect(detail.out).toMatch(/^aliases\s+info@m\.example\.com$/m);
    expect((await cli(["shvmail", "mx1", "nobody@m.example.com"])).code).toBe(3);
    expect((await cli(["shvmail", "mx1", "--format", "yaml"])).code).toBe(1);
  });

  it("chvmail changes quota, state, name, Sieve script and password", async () => {
    await ok(["addvmail", "mx1", "erin@m.example.com"]);
    await ok(["chvmail", "mx1", "erin@m.example.com", "--quota", "3G", "--active", "0", "--name", "Erin"]);
    expect(json<MailboxView>(await ok(["shvmail", "mx1", "erin@m.example.com", "--json"]))).toMatchObject({
      quota: 3 * 1024 ** 3,
      active: false,
      name: "Erin",
    });
    const script = join(dir, "vacation.sieve");
    writeFileSync(script, 'require ["vacation"];\nvacation "Away";\n');
    await ok(["chvmail", "mx1", "erin@m.example.com", "--sieve", script]);
    expect(json<MailboxView>(await ok(["shvmail", "mx1", "erin@m.example.com", "--json"])).hasSieve).toBe(true);
    await ok(["chvmail", "mx1", "erin@m.example.com", "--no-sieve"]);
    expect(json<MailboxView>(await ok(["shvmail", "mx1", "erin@m.example.com", "--json"])).hasSieve).toBe(false);
    const before = await db
      .em()
      .execute<Array<{ password_hash: string }>>(
        "select password_hash from mail_vboxes where address = 'erin@m.example.com'",
      );
    const run = await ok(["chvmail", "mx1", "erin@m.example.com", "--password"]);
    const password = /^password: (\S+)$/m.exec(run.out)?.[1] ?? "";
    expect(password.length).toBeGreaterThanOrEqual(16);
    const after = await db
      .em()
      .execute<Array<{ password_hash: string }>>(
        "select password_hash from mail_vboxes where address = 'erin@m.example.com'",
      );
    expect(after[0]?.password_hash).not.toBe(before[0]?.password_hash);
    expect(await verifyPassword(password, after[0]?.password_hash ?? "")).toBe(true);
    await ok(["chvmail", "mx1", "erin@m.example.com", "--password-stdin"], { stdin: "a new pass phrase\r\n" });
    const third = await db
      .em()
      .execute<Array<{ password_hash: string }>>(
        "select password_hash from mail_vboxes where address = 'erin@m.example.com'",
      );
    expect(await verifyPassword("a new pass phrase", third[0]?.password_hash ?? "")).toBe(true);
    expect((await cli(["chvmail", "mx1", "erin@m.example.com", "--password", "--password-stdin"])).code).toBe(2);
    expect((await cli(["chvmail", "mx1", "erin@m.example.com", "--quota", "-5"])).code).toBe(1);
    expect((await cli(["chvmail", "mx1", "erin@m.example.com", "--sieve", join(dir, "nope.sieve")])).code).toBe(1);
    expect((await cli(["chvmail", "mx1", "ghost@m.example.com", "--active", "1"])).code).toBe(3);
  });

  it("addvmail refuses a duplicate (4), a bad address (1), an unhosted domain (3)", async () => {
    await ok(["addvmail", "mx1", "frank@m.example.com"]);
    expect((await cli(["addvmail", "mx1", "frank@m.example.com"])).code).toBe(4);
    expect((await cli(["addvmail", "mx1", "frank@@m.example.com"])).code).toBe(1);
    expect((await cli(["addvmail", "mx1", "frank@elsewhere.example.com"])).code).toBe(3);
    expect((await cli(["addvmail", "mx1", "frank2@m.example.com", "--scheme", "md5"])).code).toBe(1);
  });

  it("delvmail asks: no terminal and no --yes exits 2, 'no' keeps it (1), 'yes' deletes it", async () => {
    await ok(["addvmail", "mx1", "gina@m.example.com"]);
    const noTty = await cli(["delvmail", "mx1", "gina@m.example.com"]);
    expect(noTty.code).toBe(2);
    expect(noTty.err).toMatch(/--yes/);
    questions.length = 0;
    const declined = await cli(["delvmail", "mx1", "gina@m.example.com"], { confirm: false });
    expect(declined.code).toBe(1);
    expect(questions[0]).toMatch(/delete mailbox gina@m\.example\.com on mx1, and its maildir/);
    await ok(["shvmail", "mx1", "gina@m.example.com"]);
    const accepted = await ok(["delvmail", "mx1", "gina@m.example.com", "--keep-maildir"], { confirm: true });
    expect(accepted.out).toMatch(/deleted mailbox gina@m\.example\.com \(maildir kept\)/);
    expect((await cli(["shvmail", "mx1", "gina@m.example.com"])).code).toBe(3);
    expect((await cli(["delvmail", "mx1", "gina@m.example.com", "--yes"])).code).toBe(3);
  });

  it("delvmail refuses while an alias only points at the mailbox, unless --remove-aliases", async () => {
    await ok(["addvmail", "mx1", "hank@m.example.com"]);
    await ok(["addvalias", "mx1", "sales@m.example.com", "hank@m.example.com"]);
    const refused = await cli(["delvmail", "mx1", "hank@m.example.com", "--yes"]);
    expect(refused.code).toBe(4);
    expect(refused.err).toMatch(/sales@m\.example\.com/);
    const done = await ok(["delvmail", "mx1", "hank@m.example.com", "--yes", "--remove-aliases"]);
    expect(done.out).toMatch(/alias sales@m\.example\.com/);
    expect((await cli(["shvalias", "mx1", "sales@m.example.com"])).code).toBe(3);
  });
});

describe("aliases", () => {
  beforeAll(async () => {
    await ok(["addvmaildomain", "mx1", "a.example.com"]);
    await ok(["addvmail", "mx1", "ann@a.example.com"]);
  });

  it("addvalias, shvalias, chvalias, delvalias", async () => {
    await ok(["addvalias", "mx1", "team@a.example.com", "ann@a.example.com,x@remote.example.org"]);
    const one = json<AliasView>(await ok(["shvalias", "mx1", "team@a.example.com", "--json"]));
    expect(one).toMatchObject({
      source: "team@a.example.com",
      targets: ["ann@a.example.com", "x@remote.example.org"],
      vnode: "mx1",
      active: true,
    });
    expect(Object.keys(one).sort()).toEqual(["active", "createdAt", "source", "targets", "updatedAt", "vnode"]);
    const byDomain = json<AliasView[]>(await ok(["shvalias", "mx1", "--domain", "a.example.com", "--json"]));
    // The domain's aliases only (the loop test adds its own there too, in whatever order).
    expect(byDomain.map((a) => a.source)).toContain("team@a.example.com");
    expect(byDomain.every((a) => a.source.endsWith("@a.example.com"))).toBe(true);
    expect((await ok(["shvalias", "mx1", "--domain", "a.example.com"])).out).toMatch(
      /team@a\.example\.com\s+ann@a\.example\.com,x@remote\.example\.org\s+yes/,
    );
    await ok(["chvalias", "mx1", "team@a.example.com", "--targets", "ann@a.example.com", "--active", "0"]);
    expect(json<AliasView>(await ok(["shvalias", "mx1", "team@a.example.com", "--json"]))).toMatchObject({
      targets: ["ann@a.example.com"],
      active: false,
    });
    expect((await cli(["delvalias", "mx1", "team@a.example.com"])).code).toBe(2);
    await ok(["delvalias", "mx1", "team@a.example.com", "--yes"]);
    expect((await cli(["shvalias", "mx1", "team@a.example.com"])).code).toBe(3);
  });

  it("refuses a duplicate (4), shadowing a mailbox (4), a loop, a bad target (1)", async () => {
    await ok(["addvalias", "mx1", "l1@a.example.com", "ann@a.example.com"]);
    expect((await cli(["addvalias", "mx1", "l1@a.example.com", "ann@a.example.com"])).code).toBe(4);
    expect((await cli(["addvalias", "mx1", "ann@a.example.com", "l1@a.example.com"])).code).toBe(4);
    await ok(["addvalias", "mx1", "l2@a.example.com", "l1@a.example.com"]);
    const loop = await cli(["chvalias", "mx1", "l1@a.example.com", "--targets", "l2@a.example.com"]);
    expect([1, 4]).toContain(loop.code);
    expect(loop.err).toMatch(/loop/i);
    const bad = await cli(["addvalias", "mx1", "l3@a.example.com", "ann@a.example.com,not an address"]);
    expect(bad.code).toBe(1);
    expect(bad.err).toMatch(/targets/);
  });
});

describe("vconfs", () => {
  it("chvconf sets (MQUOTA is the default quota, secrets hashed), shvconf lists, delvconf removes", async () => {
    await ok(["addvmaildomain", "mx1", "v.example.com"]);
    await ok(["chvconf", "mx1", "v.example.com", "MQUOTA", "3G"]);
    expect(json<DomainView>(await ok(["shvmaildomain", "mx1", "v.example.com", "--json"])).defaultQuota).toBe(
      3 * 1024 ** 3,
    );
    await ok(["chvconf", "mx1", "v.example.com", "DPASS", "--value-stdin"], { stdin: "db-secret-123\n" });
    await ok(["chvconf", "mx1", "v.example.com", "VUSER", "admin"]);
    const list = json<VConfView[]>(await ok(["shvconf", "mx1", "v.example.com", "--json"]));
    expect(list.find((v) => v.name === "DPASS")).toMatchObject({ secret: true });
    expect(JSON.stringify(list)).not.toContain("db-secret-123");
    expect(list.find((v) => v.name === "VUSER")).toMatchObject({ value: "admin", secret: false });
    const log = await db.em().execute<Array<{ row: unknown }>>("select row_to_json(c) as row from command_log c");
    expect(JSON.stringify(log)).not.toContain("db-secret-123");
    await ok(["delvconf", "mx1", "v.example.com", "VUSER"]);
    expect(json<VConfView[]>(await ok(["shvconf", "mx1", "v.example.com", "--json"])).map((v) => v.name)).not.toContain(
      "VUSER",
    );
    expect((await cli(["chvconf", "mx1", "v.example.com", "bad name", "x"])).code).toBe(1);
    expect((await cli(["chvconf", "mx1", "v.example.com", "VUSER"])).code).toBe(2);
  });
});

describe("--dry-run changes nothing", () => {
  it("for every mutating command", async () => {
    await ok(["addvmaildomain", "mx1", "dry.example.com"]);
    await ok(["addvmail", "mx1", "ida@dry.example.com"]);
    await ok(["addvalias", "mx1", "hi@dry.example.com", "ida@dry.example.com"]);
    await ok(["chvconf", "mx1", "dry.example.com", "VUSER", "x"]);
    const before = await snapshot();
    const runs: string[][] = [
      ["addvmaildomain", "mx1", "dry2.example.com"],
      ["chvmaildomain", "mx1", "dry.example.com", "--max-mailboxes", "3"],
      ["addvmail", "mx1", "jo@dry.example.com"],
      ["chvmail", "mx1", "ida@dry.example.com", "--password", "--quota", "5G"],
      ["delvmail", "mx1", "ida@dry.example.com", "--remove-aliases"],
      ["addvalias", "mx1", "yo@dry.example.com", "ida@dry.example.com"],
      ["chvalias", "mx1", "hi@dry.example.com", "--active", "0"],
      ["delvalias", "mx1", "hi@dry.example.com"],
      ["chvconf", "mx1", "dry.example.com", "VUSER", "y"],
      ["delvconf", "mx1", "dry.example.com", "VUSER"],
    ];
    for (const argv of runs) {
      const run = await ok([...argv, "--dry-run"]);
      expect(run.out, argv.join(" ")).toMatch(/^dry run: would have .*nothing was changed$/m);
      expect(run.out, argv.join(" ")).not.toMatch(/password:/);
    }
    // A dry run is refused like the real thing: the domain still has an active mailbox.
    expect((await cli(["delvmaildomain", "mx1", "dry.example.com", "--dry-run"])).code).toBe(4);
    expect(await snapshot()).toEqual(before);
  });
});

describe("mail:import and mail:export", () => {
  const wipe = async (): Promise<void> => {
    const em = db.em();
    for (const table of ["mail_valias", "mail_vboxes", "vconfs"])
      await em.execute(
        `delete from ${table} where domain_id in (select id from mail_vhosts where domain like '%.rt.example.com')`,
      );
    await em.execute("delete from mail_vhosts where domain like '%.rt.example.com'");
  };

  it("export re-imports cleanly (JSON and CSV), keeping password hashes and Sieve scripts", async () => {
    await ok([
      "addvmaildomain",
      "mx2",
      "one.rt.example.com",
      "--quota",
      "2G",
      "--max-mailboxes",
      "100",
      "--max-quota",
      "50G",
    ]);
    await ok(["addvmaildomain", "mx2", "xn--bcher-kva.rt.example.com"]);
    await ok(["chvmaildomain", "mx2", "xn--bcher-kva.rt.example.com", "--active", "0"]);
    const alice =
      /^password: (\S+)$/m.exec(
        (await ok(["addvmail", "mx2", "alice@one.rt.example.com", "--name", "Alice, the first"])).out,
      )?.[1] ?? "";
    await ok(["addvmail", "mx2", "bob@one.rt.example.com", "--quota", "512M"]);
    await ok(["chvmail", "mx2", "bob@one.rt.example.com", "--active", "0"]);
    const script = join(dir, "rt.sieve");
    writeFileSync(script, 'require "fileinto";\r\nif header :contains "subject" "x,y" { fileinto "Junk"; }\n');
    await ok(["chvmail", "mx2", "alice@one.rt.example.com", "--sieve", script]);
    await ok(["addvmail", "mx2", "admin@xn--bcher-kva.rt.example.com", "--catch-all"]);
    await ok([
      "addvalias",
      "mx2",
      "team@one.rt.example.com",
      "alice@one.rt.example.com,bob@one.rt.example.com,ext@remote.example.org",
    ]);
    await ok(["addvalias", "mx2", "off@one.rt.example.com", "alice@one.rt.example.com"]);
    await ok(["chvalias", "mx2", "off@one.rt.example.com", "--active", "0"]);

    for (const format of ["json", "csv"] as const) {
      const first = (await ok(["mail:export", "mx2", "--format", format])).out;
      const file = join(dir, `export.${format}`);
      writeFileSync(file, first);
      await wipe();
      expect(
        json<DomainView[]>(await ok(["shvmaildomain", "mx2", "--json"])).filter((d) =>
          d.ascii.endsWith(".rt.example.com"),
        ),
      ).toEqual([]);
      const imported = await ok(["mail:import", file, "--batch", "3"]);
      expect(imported.out).toMatch(/^imported 8 of 8 rows \(2 domains, 3 mailboxes, 3 aliases\); refused 0$/m);
      expect(imported.out).not.toMatch(/generated passwords/);
      const second = (await ok(["mail:export", "mx2", "--format", format])).out;
      const strip = (text: string): string => text.replace(/"exportedAt": "[^"]+"/, "");
      expect(strip(second)).toBe(strip(first));
      const stored = await db
        .em()
        .execute<Array<{ password_hash: string; sieve_script: string }>>(
          "select password_hash, sieve_script from mail_vboxes where address = 'alice@one.rt.example.com'",
        );
      expect(await verifyPassword(alice, stored[0]?.password_hash ?? "")).toBe(true);
      expect(stored[0]?.sieve_script).toBe(readFileSync(script, "utf8"));
    }
    const exports = await db
      .em()
      .execute<Array<{ actor: string; result: string }>>(
        "select actor, result from command_log where command = 'mail:export' and vnode_name = 'mx2'",
      );
    expect(exports).toEqual(Array.from({ length: 4 }, () => ({ actor: "tester", result: "ok" })));
    const mailbox = json<MailboxView>(await ok(["shvmail", "mx2", "bob@one.rt.example.com", "--json"]));
    expect(mailbox).toMatchObject({ active: false, quota: 512 * 1024 ** 2 });
    expect(
      json<DomainView>(await ok(["shvmaildomain", "mx2", "xn--bcher-kva.rt.example.com", "--json"])),
    ).toMatchObject({ domain: "bücher.rt.example.com", active: false });
  });

  it("refused rows are reported (row, field, reason) and exit 1; accepted rows are stored; passwords generated once", async () => {
    const file = join(dir, "partial.csv");
    writeFileSync(
      file,
      [
        "kind,vnode,domain,address,source,targets,quota,passwordHash",
        "domain,mx1,imp.example.com,,,,,",
        "mailbox,mx1,,ok1@imp.example.com,,,1G,",
        "mailbox,mx1,,bad/one@imp.example.com,,,,",
        "mailbox,mx1,,ok2@imp.example.com,,,-3G,",
        "mailbox,mx1,,ok3@imp.example.com,,,,{SHA512-CRYPT}nothash",
        "alias,mx1,,,info@imp.example.com,ok1@imp.example.com,,",
        "alias,mx1,,,ok1@imp.example.com,x@remote.example.org,,",
        "",
      ].join("\n"),
    );
    const run = await cli(["mail:import", file]);
    expect(run.code).toBe(1);
    expect(run.err).toMatch(/^row 4: address: /m);
    expect(run.err).toMatch(/^row 5: quota: /m);
    expect(run.err).toMatch(/^row 6: passwordHash: /m);
    expect(run.err).toMatch(/^row 8: source: /m);
    expect(run.err).toMatch(/4 rows were refused/);
    expect(run.out).toMatch(/^imported 3 of 7 rows \(1 domains, 1 mailboxes, 1 aliases\); refused 4$/m);
    const password = /^ok1@imp\.example\.com\t(\S+)$/m.exec(run.out)?.[1] ?? "";
    const stored = await db
      .em()
      .execute<Array<{ password_hash: string }>>(
        "select password_hash from mail_vboxes where address = 'ok1@imp.example.com'",
      );
    expect(await verifyPassword(password, stored[0]?.password_hash ?? "")).toBe(true);
    expect((await cli(["shvmail", "mx1", "ok2@imp.example.com"])).code).toBe(3);
    const log = await db.em().execute<Array<{ row: unknown }>>("select row_to_json(c) as row from command_log c");
    expect(JSON.stringify(log)).not.toContain(password);
    // The import itself is one command log row, refused because some rows were.
    const entry = await db
      .em()
      .execute<Array<{ result: string; error: string; args: Record<string, unknown> }>>(
        "select result, error, args from command_log where command = 'mail:import' order by id desc limit 1",
      );
    expect(entry[0]).toMatchObject({ result: "refused", args: { file, format: "csv", dryRun: false, batch: 500 } });
    expect(entry[0]?.error).toMatch(/4 rows were refused/);
  });

  it("an imported hash with an absurd cost is refused naming passwordHash, and nothing of it is stored", async () => {
    await ok(["addvmaildomain", "mx1", "cost.example.com"]);
    const file = join(dir, "costly.json");
    const costly = `{SHA512-CRYPT}$6$rounds=999999999$saltsalt$${"x".repeat(86)}`;
    const argon = `{ARGON2ID}$argon2id$v=19$m=4194304,t=3,p=1$${"A".repeat(22)}$${"B".repeat(43)}`;
    writeFileSync(
      file,
      JSON.stringify([
        { kind: "mailbox", vnode: "mx1", address: "slow@cost.example.com", passwordHash: costly },
        { kind: "mailbox", vnode: "mx1", address: "big@cost.example.com", passwordHash: argon },
      ]),
    );
    const before = await snapshot();
    const run = await cli(["mail:import", file]);
    expect(run.code).toBe(1);
    expect(run.err).toMatch(/^row 1: passwordHash: SHA512-CRYPT rounds=999999999 exceed the limit of 50,000/m);
    expect(run.err).toMatch(/^row 2: passwordHash: Argon2id memory m=4194304 KiB exceeds the limit/m);
    expect(await snapshot()).toEqual(before);
  });

  it("--format json reports refusals as JSON; --vnode places rows; --dry-run changes nothing", async () => {
    const file = join(dir, "rows.json");
    writeFileSync(
      file,
      JSON.stringify({
        version: 1,
        rows: [
          { kind: "domain", domain: "jimp.example.com", maxMailboxes: 10, overcommit: false },
          { kind: "mailbox", address: "a@jimp.example.com", quota: 1073741824, active: true },
          { kind: "mailbox", address: "b@jimp.example.com", password: "clear text" },
          { kind: "alias", source: "c@jimp.example.com", targets: ["a@jimp.example.com"] },
        ],
      }),
    );
    const before = await snapshot();
    const dry = await cli(["mail:import", file, "--vnode", "mx1", "--dry-run", "--format", "json"]);
    expect(dry.code).toBe(1);
    const report = JSON.parse(dry.out) as {
      dryRun: boolean;
      rows: number;
      accepted: Record<string, number>;
      refused: Array<{ row: number; field: string; reason: string }>;
      passwords: unknown[];
    };
    expect(report).toMatchObject({
      dryRun: true,
      rows: 4,
      accepted: { domain: 1, mailbox: 1, alias: 1 },
      passwords: [],
    });
    expect(report.refused).toEqual([
      {
        row: 3,
        field: "password",
        reason: expect.stringMatching(/clear-text passwords are not imported/) as unknown as string,
      },
    ]);
    expect(await snapshot()).toEqual(before);
    const noVnode = await cli(["mail:import", file]);
    expect(noVnode.code).toBe(1);
    expect(noVnode.err).toMatch(/^row 1: vnode: /m);
    expect(await snapshot()).toEqual(before);
  });

  it("a progress bar on a terminal only", async () => {
    const file = join(dir, "tty.json");
    writeFileSync(file, JSON.stringify([{ kind: "domain", vnode: "mx1", domain: "tty.example.com" }]));
    const run = await ok(["mail:import", file], { tty: true });
    expect(run.err).toMatch(/\[#+\] 1\/1 rows 100%/);
    const again = await cli(["mail:import", file, "--dry-run"]);
    expect(again.code).toBe(1); // the domain exists now
    expect(again.err).not.toContain("[#");
  });
});
