// Changing the CA key-encryption key across controllers (issue 16; controller/pki/ca-seal.ts,
// ca-rekey.ts): two real `serve` processes on one real PostgreSQL and two swarm agents (real
// agent daemons, enrolled for real). The change-over as an operator runs it: a controller given
// the new KEK with the old one as NETSERVA_CA_KEK_PREVIOUS_FILE joins and runs a CA rotation the
// controller still on the old KEK alone follows (what it publishes stays sealed under the fleet's
// KEK); a bad --new-kek-file is refused by name and changes nothing; `ca rekey` re-seals every CA
// key at once, both controllers keep working and a later rotation runs through both; a
// controller with only the old KEK is then refused, naming the variable, and writes no CA.
//
// In order (opted out of the suite's shuffle): each step is one stage of one change-over.
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createCliContext } from "../../controller/cli/cli-context.ts";
import { runCommand } from "../../controller/cli/main.ts";
import { openDatabase } from "../../controller/db/open-database.ts";
import { kekId, openCaKey, readKekFile } from "../../controller/pki/ca-seal.ts";
import { verifyIssuedBy } from "../../common/pki/inspect.ts";
import { caPin } from "../../common/pki/pin.ts";
import { restartServeProcess, startServeProcess, type ServeProcess } from "../helpers/serve-process.ts";
import { until } from "../helpers/mail-fleet.ts";
import { createSwarm, type Swarm } from "../swarm/swarm.ts";
import { freshPostgresUrl } from "../helpers/fresh-postgres.ts";

const pgUrl = process.env["DATABASE_URL_TEST"];
const AGENTS = 2;
const names = Array.from({ length: AGENTS }, (_, i) => `rekey${i}`);

interface StatusRow {
  vnode: string;
  connected: boolean;
  generation: number;
  appliedGeneration: number;
}
interface CaStatusJson {
  activePin: string;
  vnodes: Array<{ vnode: string; certificateCa: string | null; waitingFor: string | null }>;
}
interface SealedRow {
  pin: string;
  state: string;
  key_sealed: string;
}

let dir = "";
let databaseUrl = "";
let oldKek = "";
let newKek = "";
let a: ServeProcess;
const newKekId = (): string => kekId(readKekFile(newKek, "test"));
const oldKekId = (): string => kekId(readKekFile(oldKek, "test"));
let b: ServeProcess | undefined;
let swarm: Swarm | undefined;

async function cli(on: ServeProcess, argv: string[]): Promise<string> {
  const r = await on.cli(argv);
  if (r.code !== 0) throw new Error(`${argv.join(" ")}: exit ${r.code}: ${r.err}`);
  return r.out;
}
const json = async <T>(on: ServeProcess, argv: string[]): Promise<T> => JSON.parse(await cli(on, argv)) as T;
function peer(): ServeProcess {
  if (!b) throw new Error("ctl-b has not joined");
  return b;
}
const pinOf = (on: ServeProcess): string => caPin(readFileSync(join(on.home, "ca", "ca.crt"), "utf8"));
const controllerCert = (on: ServeProcess): string => readFileSync(join(on.home, "controller.crt"), "utf8");

/** The sealed CA rows as the database keeps them. */
async function sealedRows(): Promise<SealedRow[]> {
  const db = await openDatabase({ url: databaseUrl });
  try {
    return (await db
      .em()
      .getConnection()
      .execute(
        "select pin, state, key_sealed from certificate_authorities where key_sealed is not null order by id",
      )) as SealedRow[];
  } finally {
    await db.close();
  }
}
/** Whether every sealed row opens with the KEK in `file` alone. */
async function allOpenWith(file: string): Promise<boolean> {
  const kek = readKekFile(file, "test");
  const rows = await sealedRows();
  if (rows.length === 0) return false;
  return rows.every((r) => {
    try {
      return openCaKey(kek, r.key_sealed, r.pin).includes("PRIVATE KEY");
    } catch {
      return false;
    }
  });
}

/** Every agent connected and at its generation, as controller `on` sees the fleet. */
async function allCurrent(on: ServeProcess): Promise<StatusRow[] | undefined> {
  const rows = (await json<StatusRow[]>(on, ["status", "--json"])).filter((r) => names.includes(r.vnode));
  return rows.length === AGENTS && rows.every((r) => r.connected && r.appliedGeneration === r.generation)
    ? rows
    : undefined;
}

/** A CA rotation begun on `on`, followed by `other`, every agent moved, retired on `other`. */
async function rotateThrough(on: ServeProcess, other: ServeProcess): Promise<string> {
  await cli(on, ["ca", "rotate"]);
  const pin = pinOf(on);
  await until(async () => (pinOf(other) === pin ? true : undefined), 30_000, "the other controller on the new CA");
  // Its own certificate reissued by the new CA, from the key it opened out of the database.
  await until(
    async () =>
      verifyIssuedBy(controllerCert(other), readFileSync(join(other.home, "ca", "ca.crt"), "utf8")) ? true : undefined,
    30_000,
    "the other controller's certificate from the new CA",
  );
  await until(
    async () => {
      const status = await json<CaStatusJson>(other, ["ca", "status", "--json"]);
      const mine = status.vnodes.filter((v) => names.includes(v.vnode));
      return status.activePin === pin &&
        mine.length === AGENTS &&
        mine.every((v) => v.certificateCa === "active" && v.waitingFor === null)
        ? true
        : undefined;
    },
    120_000,
    "every agent renewed by the new CA",
  );
  await cli(other, ["ca", "retire-old"]);
  await until(
    async () => (existsSync(join(on.home, "ca", "previous.key")) ? undefined : true),
    30_000,
    "the old key gone from the first controller's home",
  );
  await until(async () => allCurrent(on), 60_000, "every agent current (first controller)");
  await until(async () => allCurrent(other), 60_000, "every agent current (other controller)");
  return pin;
}

beforeAll(async () => {
  if (!pgUrl) return;
  dir = mkdtempSync(join(tmpdir(), "nsm-rekey-"));
  databaseUrl = await freshPostgresUrl(pgUrl, "rekey");
  oldKek = join(dir, "old.kek");
  newKek = join(dir, "new.kek");
  writeFileSync(oldKek, randomBytes(32).toString("base64") + "\n", { mode: 0o600 });
  writeFileSync(newKek, randomBytes(32).toString("base64") + "\n", { mode: 0o600 });
  a = await startServeProcess({
    env: { DATABASE_URL: databaseUrl, NETSERVA_CA_KEK_FILE: oldKek },
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

describe.skipIf(!pgUrl)("changing the CA key-encryption key across two controllers", { shuffle: false }, () => {
  it("mid change-over: a controller with new + previous KEK joins, and its CA rotation reaches the one with the old KEK only", async () => {
    b = await startServeProcess({
      env: { DATABASE_URL: databaseUrl, NETSERVA_CA_KEK_FILE: newKek, NETSERVA_CA_KEK_PREVIOUS_FILE: oldKek },
      args: ["--health-interval", "500"],
      config: { name: "ctl-b" },
    });
    expect(pinOf(peer())).toBe(pinOf(a));
    swarm = createSwarm({
      dir: join(dir, "swarm"),
      controller: `127.0.0.1:${a.port}`,
      addVnode: async (name, address) =>
        (await cli(a, ["vnode", "add", name, "--address", address])).trim().split("\n").pop() ?? "",
      newToken: async (name) => (await cli(a, ["vnode", "token", name])).trim().split("\n").pop() ?? "",
    });
    await swarm.addMany(names, 2);
    await until(async () => allCurrent(a), 120_000, "every agent current");

    // ctl-b holds the new KEK too, but seals under the fleet's (the old): ctl-a still opens it.
    const pin = await rotateThrough(peer(), a);
    expect(pinOf(a)).toBe(pin);
    expect(await allOpenWith(oldKek)).toBe(true);
    expect(await allOpenWith(newKek)).toBe(false);
  }, 360_000);

  it("refuses an unreadable or malformed --new-kek-file, naming the option, and changes nothing", async () => {
    const before = await sealedRows();
    const absent = join(dir, "absent.kek");
    const r1 = await peer().cli(["ca", "rekey", "--new-kek-file", absent]);
    expect(r1.code).toBe(1);
    expect(r1.err).toContain(`--new-kek-file=${absent}: cannot read the CA key-encryption key (ENOENT)`);
    const short = join(dir, "short.kek");
    writeFileSync(short, randomBytes(16).toString("base64"), { mode: 0o600 });
    const r2 = await peer().cli(["ca", "rekey", "--new-kek-file", short]);
    expect(r2.code).toBe(1);
    expect(r2.err).toContain(`--new-kek-file=${short}: the CA key-encryption key must be 32 bytes in base64`);
    expect(await sealedRows()).toEqual(before);
  });

  it("re-seals every CA key under the new KEK at once; both controllers keep working and a later rotation runs through both", async () => {
    // ctl-a still holds the old KEK alone: refused, naming it, nothing changed.
    const before = await sealedRows();
    const early = await peer().cli(["ca", "rekey"]);
    expect(early.code).toBe(4);
    expect(early.err).toMatch(
      new RegExp(
        `a running controller does not hold the new KEK \\(${newKekId()}\\): ctl-a \\(holds KEK ${oldKekId()}\\)`,
      ),
    );
    expect(await sealedRows()).toEqual(before);

    // The change-over's first half on ctl-a: the new KEK, the old one as previous, restarted.
    await a.stop();
    a = await restartServeProcess(a, { NETSERVA_CA_KEK_FILE: newKek, NETSERVA_CA_KEK_PREVIOUS_FILE: oldKek });
    await until(async () => allCurrent(a), 60_000, "every agent current after ctl-a's restart");

    const out = await cli(peer(), ["ca", "rekey"]);
    expect(out).toMatch(
      new RegExp(
        `re-sealed CA sha256:\\S+ \\(active\\) under NETSERVA_CA_KEK_FILE=${newKek} \\(KEK ${newKekId()}\\) \\(they were sealed under NETSERVA_CA_KEK_PREVIOUS_FILE=${oldKek}\\)`,
      ),
    );
    expect(await allOpenWith(newKek)).toBe(true);
    expect(await allOpenWith(oldKek)).toBe(false);
    // Again: nothing left to do.
    expect(await cli(a, ["ca", "rekey", "--new-kek-file", newKek])).toMatch(/already sealed under .*nothing changed/);

    await until(async () => allCurrent(a), 60_000, "every agent current after the rekey (ctl-a)");
    await until(async () => allCurrent(peer()), 60_000, "every agent current after the rekey (ctl-b)");
    const pin = await rotateThrough(a, peer());
    expect(pinOf(peer())).toBe(pin);
    expect(await allOpenWith(newKek)).toBe(true);
    expect(await allOpenWith(oldKek)).toBe(false);
  }, 360_000);

  it("refuses a controller with only the old KEK once it is retired, naming the variable, and writes no CA", async () => {
    const home = join(dir, "late");
    let err = "";
    const ctx = createCliContext({
      out: () => undefined,
      err: (t) => void (err += t),
      readStdin: async () => "",
      env: {
        DATABASE_URL: databaseUrl,
        NETSERVA_CA_KEK_FILE: oldKek,
        NETSERVA_MAIL_HOME: home,
        NETSERVA_MAIL_ACTOR: "tester",
      },
      isTTY: false,
    });
    expect(await runCommand(["init", "--listen", "127.0.0.1:7443"], ctx)).not.toBe(0);
    expect(err).toContain(`NETSERVA_CA_KEK_FILE=${oldKek} does not open the CA key sealed in the database`);
    expect(err).toContain("ca rekey");
    expect(existsSync(join(home, "ca", "ca.key"))).toBe(false);

    // A running controller restarted on the old KEK alone does not start, and says why.
    await peer().stop();
    await expect(
      restartServeProcess(peer(), { NETSERVA_CA_KEK_FILE: oldKek, NETSERVA_CA_KEK_PREVIOUS_FILE: "" }),
    ).rejects.toThrow(`NETSERVA_CA_KEK_FILE=${oldKek} does not open the CA key sealed in the database`);
    // The change-over's end: the new KEK alone, and it serves again.
    b = await restartServeProcess(peer(), { NETSERVA_CA_KEK_FILE: newKek, NETSERVA_CA_KEK_PREVIOUS_FILE: "" });
    await until(async () => allCurrent(peer()), 60_000, "every agent current with ctl-b on the new KEK alone");
  }, 180_000);
});
