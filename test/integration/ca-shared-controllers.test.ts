// The CA across controllers (issue 16): on PostgreSQL the CA key is kept in the database, sealed
// under a key-encryption key (KEK) every controller is given (controller/pki/ca-seal.ts,
// ca-store.ts). Two real `serve` processes and a few swarm agents (test/swarm/: real agent
// daemons, each enrolled for real): the second controller joins with the KEK and DATABASE_URL
// only (no CA file copied), a wrong or missing KEK is refused with the reason and leaves the home
// without a CA, and a CA rotation begun on one controller is taken up by the other (its files,
// its own certificate from the new CA), every agent is re-issued exactly once and stays
// connected, and `ca retire-old` on the other controller ends it on both.
//
// In order (opted out of the suite's shuffle): each step is one stage of one rollover.
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createCliContext } from "../../controller/cli/cli-context.ts";
import { runCommand } from "../../controller/cli/main.ts";
import { openDatabase } from "../../controller/db/open-database.ts";
import { verifyIssuedBy } from "../../common/pki/inspect.ts";
import { caPin } from "../../common/pki/pin.ts";
import { startServeProcess, type ServeProcess } from "../helpers/serve-process.ts";
import { until } from "../helpers/mail-fleet.ts";
import { createSwarm, type Swarm } from "../swarm/swarm.ts";
import { freshPostgresUrl } from "../helpers/fresh-postgres.ts";

const pgUrl = process.env["DATABASE_URL_TEST"];
const AGENTS = 4;

interface StatusRow {
  vnode: string;
  connected: boolean;
  generation: number;
  appliedGeneration: number;
  holder: string | null;
}
interface CaStatusJson {
  activePin: string;
  vnodes: Array<{ vnode: string; certificateCa: string | null; waitingFor: string | null }>;
}
interface CertRow {
  role: string;
  identity: string;
  serial: string;
  state: string;
}

let dir = "";
let databaseUrl = "";
let kekFile = "";
let a: ServeProcess;
let b: ServeProcess | undefined;
let swarm: Swarm | undefined;
let oldPin = "";
let newPin = "";
const names = Array.from({ length: AGENTS }, (_, i) => `kek${i}`);

const freshPostgres = (url: string): Promise<string> => freshPostgresUrl(url, "kek");

async function cli(on: ServeProcess, argv: string[]): Promise<string> {
  const r = await on.cli(argv);
  if (r.code !== 0) throw new Error(`${argv.join(" ")}: exit ${r.code}: ${r.err}`);
  return r.out;
}
const json = async <T>(on: ServeProcess, argv: string[]): Promise<T> => JSON.parse(await cli(on, argv)) as T;

/** `init` in this process with `env`: exit code and stderr. */
async function init(home: string, env: Record<string, string>): Promise<{ code: number; err: string }> {
  let err = "";
  const ctx = createCliContext({
    out: () => undefined,
    err: (t) => void (err += t),
    readStdin: async () => "",
    env: { ...env, DATABASE_URL: databaseUrl, NETSERVA_MAIL_HOME: home, NETSERVA_MAIL_ACTOR: "tester" },
    isTTY: false,
  });
  const code = await runCommand(["init", "--listen", "127.0.0.1:7443"], ctx);
  return { code, err };
}

/** The second controller, once it joined. */
function peer(): ServeProcess {
  if (!b) throw new Error("ctl-b has not joined");
  return b;
}
const pinOf = (on: ServeProcess): string => caPin(readFileSync(join(on.home, "ca", "ca.crt"), "utf8"));
/** The controller certificate live in a home (a link through `current`). */
const controllerCert = (on: ServeProcess): string => readFileSync(join(on.home, "controller.crt"), "utf8");

/** Every agent connected and at its generation, as controller `on` sees the fleet. */
async function allCurrent(on: ServeProcess): Promise<StatusRow[] | undefined> {
  const rows = (await json<StatusRow[]>(on, ["status", "--json"])).filter((r) => names.includes(r.vnode));
  return rows.length === AGENTS && rows.every((r) => r.connected && r.appliedGeneration === r.generation)
    ? rows
    : undefined;
}

beforeAll(async () => {
  if (!pgUrl) return;
  dir = mkdtempSync(join(tmpdir(), "nsm-kek-"));
  databaseUrl = await freshPostgres(pgUrl);
  kekFile = join(dir, "ca.kek");
  writeFileSync(kekFile, randomBytes(32).toString("base64") + "\n", { mode: 0o600 });
  a = await startServeProcess({
    env: { DATABASE_URL: databaseUrl, NETSERVA_CA_KEK_FILE: kekFile },
    args: ["--health-interval", "500"],
    config: { name: "ctl-a" },
  });
}, 180_000);

afterAll(async () => {
  await swarm?.close().catch(() => undefined);
  await b?.stop().catch(() => undefined);
  await a?.stop().catch(() => undefined);
  for (const s of [a, b]) if (s) rmSync(s.dir, { recursive: true, force: true });
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe.skipIf(!pgUrl)("one CA, sealed in PostgreSQL, across two controllers", { shuffle: false }, () => {
  it("keeps the first controller's CA key in the database, sealed, never in clear", async () => {
    const db = await openDatabase({ url: databaseUrl });
    try {
      const rows = (await db
        .em()
        .getConnection()
        .execute("select pin, state, key_sealed from certificate_authorities")) as Array<{
        pin: string;
        state: string;
        key_sealed: string | null;
      }>;
      oldPin = pinOf(a);
      expect(rows.map((r) => [r.pin, r.state])).toEqual([[oldPin, "active"]]);
      expect(rows[0]?.key_sealed).toMatch(/^nsm-sealed-v1:/);
      expect(rows[0]?.key_sealed).not.toContain("PRIVATE KEY");
    } finally {
      await db.close();
    }
  });

  it("refuses a controller without the KEK, with a wrong one or a malformed one, and writes no CA", async () => {
    const missing = join(dir, "missing");
    const r1 = await init(missing, {});
    expect(r1.code).not.toBe(0);
    expect(r1.err).toMatch(/no key-encryption key: set NETSERVA_CA_KEK_FILE/);
    expect(existsSync(join(missing, "ca", "ca.key"))).toBe(false);

    const wrongFile = join(dir, "wrong.kek");
    writeFileSync(wrongFile, randomBytes(32).toString("base64"), { mode: 0o600 });
    const wrong = join(dir, "wrong");
    const r2 = await init(wrong, { NETSERVA_CA_KEK_FILE: wrongFile });
    expect(r2.code).not.toBe(0);
    expect(r2.err).toContain(`NETSERVA_CA_KEK_FILE=${wrongFile} does not open the CA key sealed in the database`);
    expect(existsSync(join(wrong, "ca", "ca.key"))).toBe(false);

    const r3 = await init(join(dir, "short"), { NETSERVA_CA_KEK: "c2hvcnQ=" });
    expect(r3.code).not.toBe(0);
    expect(r3.err).toMatch(/NETSERVA_CA_KEK: the CA key-encryption key must be 32 bytes in base64/);
  });

  it("lets a second controller join with the KEK and DATABASE_URL only (no CA copied)", async () => {
    b = await startServeProcess({
      env: { DATABASE_URL: databaseUrl, NETSERVA_CA_KEK_FILE: kekFile },
      args: ["--health-interval", "500"],
      config: { name: "ctl-b" },
    });
    expect(pinOf(peer())).toBe(oldPin);
    // Its own certificate, from the same CA.
    expect(controllerCert(peer())).not.toBe(controllerCert(a));
    expect(verifyIssuedBy(controllerCert(peer()), readFileSync(join(a.home, "ca", "ca.crt"), "utf8"))).toBe(true);

    swarm = createSwarm({
      dir: join(dir, "swarm"),
      controller: `127.0.0.1:${a.port}`,
      addVnode: async (name, address) =>
        (await cli(a, ["vnode", "add", name, "--address", address])).trim().split("\n").pop() ?? "",
      newToken: async (name) => (await cli(a, ["vnode", "token", name])).trim().split("\n").pop() ?? "",
    });
    await swarm.addMany(names, 2);
    // Both controllers drive some of the agents.
    const rows = await until(
      async () => {
        const current = await allCurrent(a);
        const holders = new Set(current?.map((r) => r.holder));
        return holders.has("ctl-a") && holders.has("ctl-b") ? current : undefined;
      },
      120_000,
      "every agent current, the leases split between ctl-a and ctl-b",
    );
    expect(rows).toHaveLength(AGENTS);
  }, 240_000);

  it("takes up a CA rotation begun on the other controller: new CA everywhere, each agent re-issued once, all connected", async () => {
    const controllerSerials = async (): Promise<CertRow[]> =>
      (await json<CertRow[]>(a, ["cert", "list", "--role", "agent", "--json"])).filter((c) =>
        names.includes(c.identity),
      );
    expect((await controllerSerials()).length).toBe(AGENTS);
    const aCertBefore = controllerCert(a);

    await cli(peer(), ["ca", "rotate"]);
    newPin = pinOf(peer());
    expect(newPin).not.toBe(oldPin);
    // Controller A: the new CA's files from the database, its own certificate from the new CA.
    await until(async () => (pinOf(a) === newPin ? true : undefined), 30_000, "ctl-a's home on the new CA");
    await until(
      async () =>
        verifyIssuedBy(controllerCert(a), readFileSync(join(a.home, "ca", "ca.crt"), "utf8")) ? true : undefined,
      30_000,
      "ctl-a's certificate from the new CA",
    );
    expect(controllerCert(a)).not.toBe(aCertBefore);
    expect(readFileSync(join(a.home, "ca", "trust.crt"), "utf8")).toBe(
      readFileSync(join(peer().home, "ca", "trust.crt"), "utf8"),
    );
    // Every agent on a new-CA certificate, trusting the new CA, whichever controller holds it.
    await until(
      async () => {
        const status = await json<CaStatusJson>(a, ["ca", "status", "--json"]);
        const mine = status.vnodes.filter((v) => names.includes(v.vnode));
        return status.activePin === newPin &&
          mine.length === AGENTS &&
          mine.every((v) => v.certificateCa === "active" && v.waitingFor === null)
          ? true
          : undefined;
      },
      120_000,
      "every agent renewed by the new CA and trusting it",
    );
    // Re-issued once: each agent has its enrollment certificate and one renewal, no more.
    const certs = await controllerSerials();
    for (const name of names) expect(certs.filter((c) => c.identity === name).length, name).toBe(2);
    // And every agent is connected and current as both controllers see it.
    await until(async () => allCurrent(a), 60_000, "every agent current (ctl-a)");
    await until(async () => allCurrent(peer()), 60_000, "every agent current (ctl-b)");
  }, 240_000);

  it("ends the rotation from the other controller: old key gone on both, agents still connected", async () => {
    await cli(a, ["ca", "retire-old"]);
    // ctl-b rewrites its ca/ file by file (the old key first, trust.crt after): wait for both.
    const trustOf = (home: string): string => readFileSync(join(home, "ca", "trust.crt"), "utf8");
    await until(
      async () =>
        existsSync(join(peer().home, "ca", "previous.key")) ||
        trustOf(peer().home).match(/BEGIN CERTIFICATE/g)?.length !== 1
          ? undefined
          : true,
      30_000,
      "ctl-b's copy of the old key removed and its trust bundle the new CA alone",
    );
    expect(existsSync(join(a.home, "ca", "previous.key"))).toBe(false);
    const trustB = trustOf(peer().home);
    expect(caPin(trustB)).toBe(newPin);
    expect(trustB.match(/BEGIN CERTIFICATE/g)).toHaveLength(1);
    const db = await openDatabase({ url: databaseUrl });
    try {
      const rows = (await db
        .em()
        .getConnection()
        .execute(
          "select pin, state, key_sealed is not null as sealed from certificate_authorities order by id",
        )) as Array<{
        pin: string;
        state: string;
        sealed: boolean;
      }>;
      expect(rows.map((r) => [r.pin, r.state, r.sealed])).toEqual([
        [oldPin, "retired", false],
        [newPin, "active", true],
      ]);
    } finally {
      await db.close();
    }
    // A change through A to a vnode B holds still goes live: B's links work on the new CA alone.
    const rows = await until(async () => allCurrent(a), 60_000, "every agent current after retirement");
    const heldByB = rows.find((r) => r.holder === "ctl-b")?.vnode as string;
    await cli(a, ["vnode", "set", heldByB, "--mail-hostname", `mail.${heldByB}.test`]);
    await cli(a, ["addvmaildomain", heldByB, `${heldByB}.test`, "--skip-dns-check"]);
    expect(await cli(a, ["addvmail", heldByB, `alice@${heldByB}.test`])).toMatch(/live on/);
    expect(swarm?.get(heldByB)?.host.mailboxes.has(`alice@${heldByB}.test`)).toBe(true);
  }, 180_000);
});
