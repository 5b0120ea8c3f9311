// Hostile input through the CLI, table-driven: path traversal, shell metacharacters, CR/LF and
// NUL, Dovecot/Postfix/shell expansions, over-long and Unicode-confusable names, negative and
// huge quotas, malformed CSV/JSON import rows. Each one must exit 1, name the refused field on
// stderr, and leave the database as it was (counts and a digest of every mail row, and the
// vnodes' generations, compared before and after).
import { createHash } from "node:crypto";
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createCliContext } from "../../controller/cli/cli-context.ts";
import type { CliContext } from "../../controller/cli/cli-context.ts";
import { runCommand } from "../../controller/cli/main.ts";
import type { Database } from "../../controller/db/open-database.ts";

interface Case {
  name: string;
  argv: string[];
  /** The field the refusal must name. */
  field: string;
  stdin?: string;
  /** An import file: written to FILE (the argv placeholder) with this extension and content. */
  file?: { ext: "csv" | "json"; content: string };
}

const D = "h.example.com";
const long = (n: number, ch = "a"): string => ch.repeat(n);
const csv = (...lines: string[]): { ext: "csv"; content: string } => ({ ext: "csv", content: lines.join("\n") + "\n" });
const jsonFile = (value: unknown): { ext: "json"; content: string } => ({
  ext: "json",
  content: typeof value === "string" ? value : JSON.stringify(value),
});
const HEADER = "kind,vnode,domain,address,source,targets,quota,active,passwordHash";

const cases: Case[] = [
  // Path traversal: into /srv/<domain>/msg/<user>/Maildir, key files, the zone list.
  { name: "traversal in a local part", argv: ["addvmail", "mx1", `../../etc/passwd@${D}`], field: "email" },
  { name: "a local part of '..'", argv: ["addvmail", "mx1", `..@${D}`], field: "email" },
  { name: "a slash in a local part", argv: ["addvmail", "mx1", `a/b@${D}`], field: "email" },
  { name: "a backslash in a local part", argv: ["addvmail", "mx1", `a\\b@${D}`], field: "email" },
  { name: "traversal in a domain", argv: ["addvmaildomain", "mx1", `../${D}`], field: "domain" },
  { name: "a path after a domain", argv: ["addvmaildomain", "mx1", `${D}/../../etc`], field: "domain" },
  { name: "an empty label (..) in a domain", argv: ["addvmaildomain", "mx1", "h..example.com"], field: "domain" },
  { name: "traversal in an alias source", argv: ["addvalias", "mx1", `../x@${D}`, `known@${D}`], field: "source" },
  { name: "traversal in a vnode name", argv: ["addvmail", "../mx1", `new@${D}`], field: "vnode" },
  { name: "traversal in a vconf name", argv: ["chvconf", "mx1", D, "../MPWD", "x"], field: "name" },
  {
    name: "a directory as the Sieve script",
    argv: ["chvmail", "mx1", `known@${D}`, "--sieve", "/etc"],
    field: "sieve",
  },
  // Shell metacharacters.
  { name: "';' in a local part", argv: ["addvmail", "mx1", `a;rm -rf /@${D}`], field: "email" },
  { name: "'|' in a local part (aliases(5) pipe)", argv: ["addvmail", "mx1", `|/bin/sh@${D}`], field: "email" },
  { name: "backticks in a local part", argv: ["addvmail", "mx1", `a\`id\`@${D}`], field: "email" },
  { name: "$(…) in a local part", argv: ["addvmail", "mx1", `$(id)@${D}`], field: "email" },
  { name: "'&' and '>' in a local part", argv: ["addvmail", "mx1", `a&b>c@${D}`], field: "email" },
  { name: "a quote in a local part", argv: ["addvmail", "mx1", `a'b@${D}`], field: "email" },
  { name: "a space in a local part", argv: ["addvmail", "mx1", `a b@${D}`], field: "email" },
  { name: "';' after a domain", argv: ["addvmaildomain", "mx1", `${D};reboot`], field: "domain" },
  { name: "';' in an alias target", argv: ["addvalias", "mx1", `info@${D}`, `known@${D};rm`], field: "targets" },
  {
    name: "a quote in a display name",
    argv: ["addvmail", "mx1", `new@${D}`, "--name", 'Bob"; DROP TABLE mail_vboxes; --'],
    field: "name",
  },
  // CR/LF (SMTP/IMAP/log injection) and NUL (C-string truncation).
  { name: "CRLF in a local part", argv: ["addvmail", "mx1", `a\r\nRCPT TO:<x>@${D}`], field: "email" },
  { name: "LF in a local part", argv: ["addvmail", "mx1", `a\n@${D}`], field: "email" },
  { name: "NUL in a local part", argv: ["addvmail", "mx1", `a\0b@${D}`], field: "email" },
  { name: "LF after a domain", argv: ["addvmaildomain", "mx1", `${D}\n`], field: "domain" },
  { name: "NUL in a domain", argv: ["addvmaildomain", "mx1", "h.exa\0mple.com"], field: "domain" },
  {
    name: "CRLF header injection in a display name",
    argv: ["chvmail", "mx1", `known@${D}`, "--name", "Bob\r\nBcc: evil@example.org"],
    field: "name",
  },
  { name: "a tab in a display name", argv: ["addvmail", "mx1", `new@${D}`, "--name", "Bob\tSmith"], field: "name" },
  {
    name: "LF inside a piped password",
    argv: ["addvmail", "mx1", `new@${D}`, "--password-stdin"],
    stdin: "pass\nword123\n",
    field: "password",
  },
  {
    name: "NUL inside a piped password",
    argv: ["chvmail", "mx1", `known@${D}`, "--password-stdin"],
    stdin: "pass\0word123",
    field: "password",
  },
  {
    name: "CRLF in alias targets",
    argv: ["chvalias", "mx1", `info@${D}`, "--targets", `known@${D}\r\n`],
    field: "targets",
  },
  { name: "LF in a vconf value", argv: ["chvconf", "mx1", D, "VUSER", "val\nue"], field: "value" },
  {
    name: "NUL in a secret vconf value",
    argv: ["chvconf", "mx1", D, "DPASS", "--value-stdin"],
    stdin: "secret\u0000123456",
    field: "value",
  },
  // Expansions that Dovecot (%d, %{home}), Postfix ($name, %u) or a shell (${…}) would interpret.
  { name: "%d in a local part", argv: ["addvmail", "mx1", `%d@${D}`], field: "email" },
  {
    name: "%u in a local part (Postfix percent hack)",
    argv: ["addvmail", "mx1", `%u%evil.example.org@${D}`],
    field: "email",
  },
  { name: "${home} in a local part", argv: ["addvmail", "mx1", `\${home}@${D}`], field: "email" },
  { name: "$HOME in a local part", argv: ["addvmail", "mx1", `$HOME@${D}`], field: "email" },
  { name: "%d in a domain", argv: ["addvmaildomain", "mx1", "%d.example.com"], field: "domain" },
  { name: "${domain} in a domain", argv: ["addvmaildomain", "mx1", "${domain}.example.com"], field: "domain" },
  { name: "%n in an alias source", argv: ["addvalias", "mx1", `%n@${D}`, `known@${D}`], field: "source" },
  { name: "%{home} in an alias target", argv: ["addvalias", "mx1", `info2@${D}`, `%{home}@${D}`], field: "targets" },
  { name: "${QUOTA} as a quota", argv: ["addvmail", "mx1", `new@${D}`, "--quota", "${QUOTA}"], field: "quota" },
  { name: "%d as a quota", argv: ["chvmail", "mx1", `known@${D}`, "--quota", "%d"], field: "quota" },
  // Over-long names.
  { name: "a 65-character local part", argv: ["addvmail", "mx1", `${long(65)}@${D}`], field: "email" },
  { name: "a 64-character domain label", argv: ["addvmaildomain", "mx1", `${long(64)}.example.com`], field: "domain" },
  {
    name: "a 254-character domain",
    argv: ["addvmaildomain", "mx1", `${Array.from({ length: 5 }, () => long(50)).join(".")}.com`],
    field: "domain",
  },
  {
    name: "a 255-character address",
    argv: ["addvmail", "mx1", `${long(60)}@${long(60, "b")}.${long(60, "c")}.${long(60, "d")}.example.com`],
    field: "email",
  },
  { name: "a 5000-character argument", argv: ["addvmail", "mx1", `${long(5000)}@${D}`], field: "email" },
  { name: "a 129-character display name", argv: ["addvmail", "mx1", `new@${D}`, "--name", long(129)], field: "name" },
  {
    name: "a 1025-character password",
    argv: ["addvmail", "mx1", `new@${D}`, "--password-stdin"],
    stdin: long(1025),
    field: "password",
  },
  {
    name: "a 7-character password",
    argv: ["addvmail", "mx1", `new@${D}`, "--password-stdin"],
    stdin: "short12\n",
    field: "password",
  },
  {
    name: "51 alias targets",
    argv: ["addvalias", "mx1", `many@${D}`, Array.from({ length: 51 }, (_, i) => `t${i}@remote.example.org`).join(",")],
    field: "targets",
  },
  { name: "a 17-character vconf name", argv: ["chvconf", "mx1", D, long(17, "A"), "x"], field: "name" },
  // Unicode confusables and invisible characters.
  {
    name: "a Cyrillic 'а' among Latin letters in a domain",
    argv: ["addvmaildomain", "mx1", "\u0430pple.example.com"],
    field: "domain",
  },
  {
    name: "Cyrillic 'е' and 'х' in a Latin label",
    argv: ["addvmail", "mx1", "admin@h.\u0435\u0445ample.com"],
    field: "email",
  },
  { name: "a Cyrillic 'а' in a local part", argv: ["addvmail", "mx1", `p\u0430ypal@${D}`], field: "email" },
  { name: "a zero-width space in a domain", argv: ["addvmaildomain", "mx1", "h\u200B.example.com"], field: "domain" },
  { name: "a right-to-left override in a local part", argv: ["addvmail", "mx1", `\u202Eabc@${D}`], field: "email" },
  {
    name: "a right-to-left override in a display name",
    argv: ["addvmail", "mx1", `new@${D}`, "--name", "Invoice \u202Efdp.exe"],
    field: "name",
  },
  {
    name: "a zero-width joiner in an alias source",
    argv: ["addvalias", "mx1", `in\u200Dfo@${D}`, `known@${D}`],
    field: "source",
  },
  // Negative, huge and malformed quotas and limits.
  { name: "a negative quota", argv: ["addvmail", "mx1", `new@${D}`, "--quota", "-1"], field: "quota" },
  { name: "a negative quota with a unit", argv: ["chvmail", "mx1", `known@${D}`, "--quota", "-1G"], field: "quota" },
  { name: "an exponent quota", argv: ["addvmail", "mx1", `new@${D}`, "--quota", "1e9"], field: "quota" },
  { name: "a hex quota", argv: ["addvmail", "mx1", `new@${D}`, "--quota", "0x10"], field: "quota" },
  { name: "a quota over 1 PiB", argv: ["addvmail", "mx1", `new@${D}`, "--quota", "99999999T"], field: "quota" },
  { name: "a fraction of a byte", argv: ["addvmail", "mx1", `new@${D}`, "--quota", "1.5"], field: "quota" },
  { name: "a space inside a quota", argv: ["chvmail", "mx1", `known@${D}`, "--quota", "2 G"], field: "quota" },
  { name: "a negative default quota", argv: ["chvmaildomain", "mx1", D, "--quota", "-2G"], field: "defaultQuota" },
  {
    name: "a negative max quota",
    argv: ["addvmaildomain", "mx1", "q.example.com", "--max-quota", "-5G"],
    field: "maxQuota",
  },
  {
    name: "a negative max-mailboxes",
    argv: ["addvmaildomain", "mx1", "q.example.com", "--max-mailboxes", "-1"],
    field: "maxMailboxes",
  },
  {
    name: "a huge max-aliases",
    argv: ["chvmaildomain", "mx1", D, "--max-aliases", "99999999999"],
    field: "maxAliases",
  },
  { name: "a negative MQUOTA", argv: ["chvconf", "mx1", D, "MQUOTA", "-1"], field: "value" },
  { name: "an active flag of 2", argv: ["chvmail", "mx1", `known@${D}`, "--active", "2"], field: "active" },
  { name: "an unknown password scheme", argv: ["addvmail", "mx1", `new@${D}`, "--scheme", "md5"], field: "scheme" },
  // Malformed import files and rows (nothing in them is stored).
  {
    name: "CSV: a quoted field never closed",
    argv: ["mail:import", "FILE"],
    file: csv(HEADER, `mailbox,mx1,,"new@${D},,,,,`),
    field: "csv",
  },
  {
    name: "CSV: a quote inside a plain field",
    argv: ["mail:import", "FILE"],
    file: csv(HEADER, `mailbox,mx1,,ne"w@${D},,,,,`),
    field: "csv",
  },
  {
    name: "CSV: an unknown header column",
    argv: ["mail:import", "FILE"],
    file: csv("kind,vnode,address,homedir", `mailbox,mx1,new@${D},/etc`),
    field: "csv",
  },
  {
    name: "CSV: a bare CR line end",
    argv: ["mail:import", "FILE"],
    file: { ext: "csv", content: `${HEADER}\rmailbox,mx1,,new@${D},,,,,\r` },
    field: "csv",
  },
  {
    name: "CSV: a row with too many fields",
    argv: ["mail:import", "FILE"],
    file: csv(HEADER, `mailbox,mx1,,new@${D},,,,,,extra`),
    field: "csv",
  },
  {
    name: "CSV: an unknown kind",
    argv: ["mail:import", "FILE"],
    file: csv(HEADER, `user,mx1,,new@${D},,,,,`),
    field: "kind",
  },
  {
    name: "CSV: traversal in an address",
    argv: ["mail:import", "FILE"],
    file: csv(HEADER, `mailbox,mx1,,../../root@${D},,,,,`),
    field: "address",
  },
  {
    name: "CSV: a negative quota",
    argv: ["mail:import", "FILE"],
    file: csv(HEADER, `mailbox,mx1,,new@${D},,,-5G,,`),
    field: "quota",
  },
  {
    name: "CSV: a mailbox field on a domain row",
    argv: ["mail:import", "FILE"],
    file: csv(HEADER, "domain,mx1,q.example.com,,,,1G,,"),
    field: "quota",
  },
  {
    name: "CSV: CRLF inside a quoted address",
    argv: ["mail:import", "FILE"],
    file: csv(HEADER, `mailbox,mx1,,"new\r\n@${D}",,,,,`),
    field: "address",
  },
  {
    name: "CSV: a plain-text password in passwordHash",
    argv: ["mail:import", "FILE"],
    file: csv(HEADER, `mailbox,mx1,,new@${D},,,,,hunter2`),
    field: "passwordHash",
  },
  {
    name: "CSV: an alias shadowing a mailbox",
    argv: ["mail:import", "FILE"],
    file: csv(HEADER, `alias,mx1,,,known@${D},x@remote.example.org,,,`),
    field: "source",
  },
  { name: "JSON: not JSON", argv: ["mail:import", "FILE"], file: jsonFile('{"rows": [ {"kind": '), field: "json" },
  {
    name: "JSON: rows is not a list",
    argv: ["mail:import", "FILE"],
    file: jsonFile({ version: 1, rows: { kind: "mailbox" } }),
    field: "rows",
  },
  {
    name: "JSON: an unsupported version",
    argv: ["mail:import", "FILE"],
    file: jsonFile({ version: 2, rows: [] }),
    field: "version",
  },
  {
    name: "JSON: a row that is a string",
    argv: ["mail:import", "FILE"],
    file: jsonFile([`mailbox new@${D}`]),
    field: "row",
  },
  {
    name: "JSON: a row without a kind",
    argv: ["mail:import", "FILE"],
    file: jsonFile([{ vnode: "mx1", address: `new@${D}` }]),
    field: "kind",
  },
  {
    name: "JSON: an unknown key",
    argv: ["mail:import", "FILE"],
    file: jsonFile([{ kind: "mailbox", vnode: "mx1", address: `new@${D}`, maildir: "/etc" }]),
    field: "maildir",
  },
  {
    name: "JSON: a clear-text password",
    argv: ["mail:import", "FILE"],
    file: jsonFile([{ kind: "mailbox", vnode: "mx1", address: `new@${D}`, password: "hunter2hunter2" }]),
    field: "password",
  },
  {
    name: "JSON: a negative quota number",
    argv: ["mail:import", "FILE"],
    file: jsonFile([{ kind: "mailbox", vnode: "mx1", address: `new@${D}`, quota: -1 }]),
    field: "quota",
  },
  {
    name: "JSON: a huge quota number",
    argv: ["mail:import", "FILE"],
    file: jsonFile([{ kind: "mailbox", vnode: "mx1", address: `new@${D}`, quota: 1e300 }]),
    field: "quota",
  },
  {
    name: "JSON: targets as a number",
    argv: ["mail:import", "FILE"],
    file: jsonFile([{ kind: "alias", vnode: "mx1", source: `x@${D}`, targets: 42 }]),
    field: "targets",
  },
  {
    name: "JSON: active as 'yes'",
    argv: ["mail:import", "FILE"],
    file: jsonFile([{ kind: "alias", vnode: "mx1", source: `x@${D}`, targets: `known@${D}`, active: "yes" }]),
    field: "active",
  },
  {
    name: "JSON: NUL in an address",
    argv: ["mail:import", "FILE"],
    file: jsonFile([{ kind: "mailbox", vnode: "mx1", address: `new\u0000@${D}` }]),
    field: "address",
  },
  {
    name: "JSON: NUL in an alias source",
    argv: ["mail:import", "FILE"],
    file: jsonFile([{ kind: "alias", vnode: "mx1", source: `x\u0000@${D}`, targets: `known@${D}` }]),
    field: "source",
  },
  {
    name: "CSV: NUL in a domain",
    argv: ["mail:import", "FILE"],
    file: csv(HEADER, "domain,mx1,q\u0000.example.com,,,,,,"),
    field: "domain",
  },
  {
    name: "JSON: traversal in a vnode",
    argv: ["mail:import", "FILE"],
    file: jsonFile([{ kind: "mailbox", vnode: "../mx1", address: `new@${D}` }]),
    field: "vnode",
  },
  {
    name: "JSON: a byte-order mark as a Sieve script",
    argv: ["mail:import", "FILE"],
    file: jsonFile([{ kind: "mailbox", vnode: "mx1", address: `new@${D}`, sieve: "\uFEFFkeep;" }]),
    field: "sieve",
  },
  {
    name: "JSON: an alias loop",
    argv: ["mail:import", "FILE"],
    file: jsonFile([{ kind: "alias", vnode: "mx1", source: `loop@${D}`, targets: `loop@${D}` }]),
    field: "targets",
  },
];

let dir = "";
let db: Database;
const env: Record<string, string | undefined> = {};

async function cli(argv: string[], stdin = ""): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const base = createCliContext({
    out: (t) => void (out += t),
    err: (t) => void (err += t),
    readStdin: async () => stdin,
    env,
    isTTY: false,
  });
  const ctx: CliContext = { ...base, openDb: async () => ({ ...db, close: async () => undefined }) };
  return { code: await runCommand(argv, ctx), out, err };
}

async function snapshot(): Promise<{ counts: Record<string, number>; digest: string }> {
  const em = db.em();
  const counts: Record<string, number> = {};
  const hash = createHash("sha256");
  for (const table of ["mail_vhosts", "mail_vboxes", "mail_valias", "vconfs"]) {
    const rows = await em.execute<Array<Record<string, unknown>>>(`select * from ${table} order by id`);
    counts[table] = rows.length;
    hash.update(JSON.stringify(rows));
  }
  const vnodes = await em.execute<Array<{ name: string; generation: string | number }>>(
    "select name, generation from vnodes order by name",
  );
  counts["vnodes.generation"] = vnodes.reduce((sum, v) => sum + Number(v.generation), 0);
  hash.update(JSON.stringify(vnodes));
  return { counts, digest: hash.digest("hex") };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "nsm-cli-hostile-"));
  const home = join(dir, "controller");
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
  writeFileSync(join(home, "dns-zones"), "example.com\n");
  mkdirSync(join(dir, "files"));
  for (const argv of [
    ["vnode", "add", "mx1", "--address", "127.0.0.1:1"],
    ["addvmaildomain", "mx1", D],
    ["addvmail", "mx1", `known@${D}`],
    ["addvalias", "mx1", `info@${D}`, `known@${D}`],
    ["chvconf", "mx1", D, "VUSER", "admin"],
  ]) {
    const run = await cli(argv);
    expect(run.code, `${argv.join(" ")}: ${run.err}`).toBe(0);
  }
});

afterAll(async () => {
  await db?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("hostile input is refused at the edge: exit 1, the field named, nothing changed", () => {
  it(`has at least 60 cases (${cases.length})`, () => {
    expect(cases.length).toBeGreaterThanOrEqual(60);
    expect(new Set(cases.map((c) => c.name)).size).toBe(cases.length);
  });

  it.each(cases.map((c, i) => [i + 1, c.name, c] as const))("%i. %s", async (i, _name, c) => {
    let argv = c.argv;
    if (c.file) {
      const path = join(dir, "files", `case-${i}.${c.file.ext}`);
      writeFileSync(path, c.file.content);
      argv = argv.map((a) => (a === "FILE" ? path : a));
    }
    const before = await snapshot();
    const run = await cli(argv, c.stdin);
    expect(run.code, run.err).toBe(1);
    // "error: <field>: …" from a command, "row N: <field>: …" from an import row.
    const named = new RegExp(`(^|\\n)(error|row \\d+): ${c.field.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}: `);
    expect(run.err, `stderr must name ${c.field}`).toMatch(named);
    // The refusal never echoes control characters raw (no forged log lines).
    expect(
      run.err
        .replace(/\n$/, "")
        .split("\n")
        .every((line) => !/[\r\0\u202E]/.test(line)),
    ).toBe(true);
    expect(await snapshot()).toEqual(before);
  });
});
