// One CA step at a time across controllers (issue 16; controller/pki/ca-step-lock.ts): with two
// controller homes on one real PostgreSQL sharing the sealed CA, a step that is running makes any
// other refused at once, naming what runs, on which controller, by whom and since when, and
// nothing changes; two `ca rotate`s started together on two controllers leave exactly one new CA.
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { openDatabase } from "../../controller/db/open-database.ts";
import { runCaStep } from "../../controller/pki/ca-step-lock.ts";
import { caPin } from "../../common/pki/pin.ts";
import { cliRunner, type CliRun } from "../helpers/controller-harness.ts";
import { freshPostgresUrl } from "../helpers/fresh-postgres.ts";

const pgUrl = process.env["DATABASE_URL_TEST"];
const dirs: string[] = [];

type Run = CliRun;
interface Fleet {
  databaseUrl: string;
  /** Runs the CLI on controller home `home` ("a" or "b") as `actor`. */
  cli(home: "a" | "b", argv: string[], actor?: string): Promise<Run>;
  pin(home: "a" | "b"): string;
  rows(): Promise<Array<{ pin: string; state: string; sealed: boolean }>>;
}

/** Two controller homes, ctl-a and ctl-b, on a fresh database: b joined with the KEK alone. */
async function twoControllers(): Promise<Fleet> {
  const dir = mkdtempSync(join(tmpdir(), "nsm-castep-"));
  dirs.push(dir);
  const databaseUrl = await freshPostgresUrl(pgUrl as string, "castep");
  const kekFile = join(dir, "ca.kek");
  writeFileSync(kekFile, randomBytes(32).toString("base64") + "\n", { mode: 0o600 });
  const cli = (home: "a" | "b", argv: string[], actor = "tester"): Promise<Run> =>
    cliRunner({
      DATABASE_URL: databaseUrl,
      NETSERVA_CA_KEK_FILE: kekFile,
      NETSERVA_MAIL_HOME: join(dir, home),
      NETSERVA_MAIL_ACTOR: actor,
    })(argv);

  for (const home of ["a", "b"] as const) {
    const r = await cli(home, ["init", "--listen", "127.0.0.1:7443"]);
    if (r.code !== 0) throw new Error(`init ${home}: ${r.err}`);
    const config = join(dir, home, "controller.json");
    writeFileSync(config, JSON.stringify({ ...JSON.parse(readFileSync(config, "utf8")), name: `ctl-${home}` }));
  }
  return {
    databaseUrl,
    cli,
    pin: (home) => caPin(readFileSync(join(dir, home, "ca", "ca.crt"), "utf8")),
    async rows() {
      const db = await openDatabase({ url: databaseUrl });
      try {
        return (await db
          .em()
          .getConnection()
          .execute(
            "select pin, state, key_sealed is not null as sealed from certificate_authorities order by id",
          )) as Array<{ pin: string; state: string; sealed: boolean }>;
      } finally {
        await db.close();
      }
    },
  };
}

afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

describe.skipIf(!pgUrl)("one CA step at a time across controllers (real PostgreSQL)", () => {
  it("refuses a step while another runs, naming it and since when, and changes nothing", async () => {
    const fleet = await twoControllers();
    const before = await fleet.rows();
    expect(before.map((r) => r.state)).toEqual(["active"]);
    const db = await openDatabase({ url: fleet.databaseUrl });
    let release = (): void => undefined;
    let entered = (): void => undefined;
    const inside = new Promise<void>((resolve) => (entered = resolve));
    const gate = new Promise<void>((resolve) => (release = resolve));
    try {
      // A step held open on another connection, as a slow `ca rotate` on ctl-a would be.
      const held = runCaStep(db, { step: "ca rotate", controller: "ctl-a", actor: "alice" }, async () => {
        entered();
        await gate;
        return "done";
      });
      await inside;
      const started = Date.now();
      for (const argv of [
        ["ca", "rotate"],
        ["ca", "retire-old"],
      ]) {
        const r = await fleet.cli("b", argv, "bob");
        expect(r.code, argv.join(" ")).toBe(4);
        const m =
          /another CA step is under way: ca rotate on ctl-a by alice, since (\S+Z) \(PostgreSQL backend \d+\)/.exec(
            r.err,
          );
        expect(m, r.err).not.toBeNull();
        // "since" is when the holder's transaction began: before the refused command ran.
        expect(new Date(m?.[1] as string).getTime()).toBeLessThanOrEqual(started);
      }
      expect(await fleet.rows()).toEqual(before);
      expect(fleet.pin("b")).toBe(before[0]?.pin);
      release();
      expect(await held).toBe("done");
      // Once it ended, the next step runs.
      const r = await fleet.cli("b", ["ca", "rotate"], "bob");
      expect(r.code, r.err).toBe(0);
      expect((await fleet.rows()).map((row) => [row.state, row.sealed])).toEqual([
        ["previous", true],
        ["active", true],
      ]);
      // The refusals are in the command log as refused, naming the running step.
      const log = (await db
        .em()
        .getConnection()
        .execute("select command, result, error from command_log where actor = 'bob' order by id")) as Array<{
        command: string;
        result: string;
        error: string | null;
      }>;
      expect(log.map((l) => [l.command, l.result])).toEqual([
        ["ca rotate", "refused"],
        ["ca retire-old", "refused"],
        ["ca rotate", "ok"],
      ]);
      expect(log[0]?.error).toMatch(/ca rotate on ctl-a by alice/);
    } finally {
      release();
      await db.close();
    }
  }, 120_000);

  it("runs exactly one of two `ca rotate`s started together on two controllers", async () => {
    const fleet = await twoControllers();
    const oldPin = fleet.pin("a");
    const runs = await Promise.all([fleet.cli("a", ["ca", "rotate"]), fleet.cli("b", ["ca", "rotate"])]);
    const won = runs.filter((r) => r.code === 0);
    const lost = runs.filter((r) => r.code !== 0);
    expect(won, runs.map((r) => r.err).join("\n")).toHaveLength(1);
    expect(lost).toHaveLength(1);
    // Refused by the lock (they overlapped) or, had the first committed already, by its state.
    expect(lost[0]?.code).toBe(4);
    expect(lost[0]?.err).toMatch(
      /another CA step is under way: ca rotate on ctl-[ab]|a CA rotation is already under way/,
    );
    const rows = await fleet.rows();
    expect(rows.filter((r) => r.state === "active")).toHaveLength(1);
    expect(rows.map((r) => [r.state, r.sealed])).toEqual([
      ["previous", true],
      ["active", true],
    ]);
    expect(rows[0]?.pin).toBe(oldPin);
    const winner = runs[0]?.code === 0 ? "a" : "b";
    expect(fleet.pin(winner)).toBe(rows[1]?.pin);
    // The other controller follows the database's one rotation, not one of its own.
    const loser = winner === "a" ? "b" : "a";
    expect((await fleet.cli(loser, ["ca", "status", "--json"])).code).toBe(0);
    expect(fleet.pin(loser)).toBe(rows[1]?.pin);
  }, 120_000);
});
