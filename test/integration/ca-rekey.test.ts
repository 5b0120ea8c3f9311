// `ca rekey` from the CLI (controller/pki/ca-rekey.ts), in this process on a real PostgreSQL: the
// check on running controllers (their heartbeat rows name the KEKs they hold), --force past it,
// the CA step lock, and the embedded database (no sealed key) refused. The change-over with two
// real `serve` processes is test/integration/ca-kek-rotation.test.ts.
import { randomBytes, randomUUID } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { openDatabase } from "../../controller/db/open-database.ts";
import { kekId, openCaKey, readKekFile } from "../../controller/pki/ca-seal.ts";
import { runCaStep } from "../../controller/pki/ca-step-lock.ts";
import { cliRunner, type CliRun } from "../helpers/controller-harness.ts";
import { freshPostgresUrl } from "../helpers/fresh-postgres.ts";

const pgUrl = process.env["DATABASE_URL_TEST"];
const dirs: string[] = [];

type Run = CliRun;

/** The CLI in this process (the harness's runner), as actor "tester" unless env says otherwise. */
function cli(env: Record<string, string>, argv: string[]): Promise<Run> {
  return cliRunner({ NETSERVA_MAIL_ACTOR: "tester", ...env })(argv);
}

function kekFile(dir: string, name: string): string {
  const file = join(dir, name);
  writeFileSync(file, randomBytes(32).toString("base64") + "\n", { mode: 0o600 });
  return file;
}

/** A controller home on a fresh database, its CA sealed under `old`; a new KEK beside it. */
async function sealedHome(): Promise<{ env: Record<string, string>; old: string; next: string; url: string }> {
  const dir = mkdtempSync(join(tmpdir(), "nsm-rekey-cli-"));
  dirs.push(dir);
  const url = await freshPostgresUrl(pgUrl as string, "rekeycli");
  const old = kekFile(dir, "old.kek");
  const next = kekFile(dir, "new.kek");
  const env = { DATABASE_URL: url, NETSERVA_CA_KEK_FILE: old, NETSERVA_MAIL_HOME: join(dir, "home") };
  const r = await cli(env, ["init", "--listen", "127.0.0.1:7443"]);
  if (r.code !== 0) throw new Error(`init: ${r.err}`);
  return { env, old, next, url };
}

async function sql<T>(url: string, query: string, params: unknown[] = []): Promise<T> {
  const db = await openDatabase({ url });
  try {
    return (await db.em().getConnection().execute(query, params)) as T;
  } finally {
    await db.close();
  }
}

async function opensWith(url: string, file: string): Promise<boolean> {
  const kek = readKekFile(file, "test");
  const rows = await sql<Array<{ pin: string; key_sealed: string }>>(
    url,
    "select pin, key_sealed from certificate_authorities where key_sealed is not null",
  );
  return (
    rows.length > 0 &&
    rows.every((r) => {
      try {
        return openCaKey(kek, r.key_sealed, r.pin).includes("PRIVATE KEY");
      } catch {
        return false;
      }
    })
  );
}

afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

describe.skipIf(!pgUrl)("ca rekey (real PostgreSQL)", () => {
  it("refuses while a live controller lacks the new KEK, naming it; --force re-seals and warns", async () => {
    const { env, old, next, url } = await sealedHome();
    // Two running controllers as their heartbeat rows show them: one rolled out, one not.
    const ids = (...files: string[]): string => files.map((f) => kekId(readKekFile(f, "test"))).join(",");
    await sql(
      url,
      "insert into controllers (id, name, kek_ids) values (?, 'ctl-a', ?), (?, 'ctl-b', ?), (?, 'ctl-c', null)",
      [randomUUID(), ids(next, old), randomUUID(), ids(old), randomUUID()],
    );
    const r1 = await cli(env, ["ca", "rekey", "--new-kek-file", next]);
    expect(r1.code, r1.err).toBe(4);
    expect(r1.err).toContain(
      `2 running controllers do not hold the new KEK (${ids(next)}): ctl-b (holds KEK ${ids(old)}), ctl-c (publishes no KEK id`,
    );
    expect(r1.err).not.toContain("ctl-a");
    expect(await opensWith(url, old)).toBe(true);

    // A controller whose heartbeat is older than the lease TTL is not running: it does not count.
    await sql(url, "update controllers set heartbeat_at = now() - interval '1 minute' where name = 'ctl-c'");
    const r2 = await cli(env, ["ca", "rekey", "--new-kek-file", next]);
    expect(r2.code).toBe(4);
    expect(r2.err).toMatch(/a running controller does not hold the new KEK .*: ctl-b \(/);

    const r3 = await cli(env, ["ca", "rekey", "--new-kek-file", next, "--force"]);
    expect(r3.code, r3.err).toBe(0);
    expect(r3.out).toMatch(/re-sealed CA sha256:\S+ \(active\) under --new-kek-file=/);
    expect(r3.err).toMatch(/warning: controller ctl-b \(holds KEK [0-9a-f]{16}\) does not hold the new KEK/);
    expect(await opensWith(url, next)).toBe(true);
    expect(await opensWith(url, old)).toBe(false);
    const log = await sql<Array<{ result: string }>>(
      url,
      "select result from command_log where command = 'ca rekey' order by id",
    );
    expect(log.map((l) => l.result)).toEqual(["refused", "refused", "ok"]);
  }, 120_000);

  it("waits its turn behind another CA step: refused while one runs, nothing changed", async () => {
    const { env, old, next, url } = await sealedHome();
    const db = await openDatabase({ url });
    let release = (): void => undefined;
    let entered = (): void => undefined;
    const inside = new Promise<void>((resolve) => (entered = resolve));
    try {
      const held = runCaStep(db, { step: "ca retire-old", controller: "ctl-a", actor: "alice" }, async () => {
        entered();
        await new Promise<void>((resolve) => (release = resolve));
      });
      await inside;
      const r = await cli(env, ["ca", "rekey", "--new-kek-file", next]);
      expect(r.code).toBe(4);
      expect(r.err).toMatch(/another CA step is under way: ca retire-old on ctl-a by alice, since \S+Z/);
      expect(await opensWith(url, old)).toBe(true);
      release();
      await held;
    } finally {
      release();
      await db.close();
    }
  }, 120_000);

  it("on the embedded database: refused, the key is in the home only", async () => {
    const dir = mkdtempSync(join(tmpdir(), "nsm-rekey-pglite-"));
    dirs.push(dir);
    const env = { NETSERVA_MAIL_HOME: join(dir, "home") };
    expect((await cli(env, ["init", "--listen", "127.0.0.1:7443"])).code).toBe(0);
    const r = await cli(env, ["ca", "rekey", "--new-kek-file", kekFile(dir, "new.kek")]);
    expect(r.code).toBe(4);
    expect(r.err).toMatch(/the embedded database keeps no CA key/);
  }, 120_000);
});
