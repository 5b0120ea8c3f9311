// serve on SIGTERM, against PostgreSQL, with a connected agent, an idle CLI connection and a
// command in flight (issue 13: fault-controller-kill's teardown once waited 300 s on a serve
// that never exited). The in-flight command is held on a row lock the test takes on the vnode,
// so it is provably running when the signal comes:
// - released soon after the signal: the command finishes and answers its client (exit 0, the
//   mailbox stored), the idle connection is dropped, and serve exits 0 with "controller stopped";
// - never released: the shutdown deadline ends serve with exit 1 and "shutdown cut short"
//   naming the step still running; the client hears the connection closed; nothing is stored.
import { randomUUID } from "node:crypto";
import { createConnection } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openDatabase, type Database } from "../../controller/db/open-database.ts";
import { until } from "../helpers/mail-fleet.ts";
import { startServeFleet, type ServeFleet, type ServeVnode } from "../helpers/serve-fleet.ts";
import { freshPostgresUrl } from "../helpers/fresh-postgres.ts";

const isRoot = process.getuid?.() === 0;
const pgUrl = process.env["DATABASE_URL_TEST"];

let fleet: ServeFleet;
let vn: ServeVnode;
let url: string;
let db: Database;

const freshPostgres = (base: string): Promise<string> => freshPostgresUrl(base, "shutdown");

/** serve running and the vnode at its generation (an earlier test may have stopped it, or left
 * it still shutting down). */
async function running(): Promise<void> {
  const serve = fleet.serve;
  const gone = (): boolean => serve.child.exitCode !== null || serve.child.signalCode !== null;
  if (!gone() && serve.stderr().includes('"shutting down"'))
    await new Promise((resolve) => serve.child.once("exit", resolve));
  if (gone()) await fleet.restart();
  await fleet.converged();
}

interface Lock {
  release(): Promise<void>;
}

/** Takes the vnode's row for update in a transaction of the test's own, until release(). */
async function lockVnodeRow(): Promise<Lock> {
  let taken!: () => void;
  const held = new Promise<void>((resolve) => (taken = resolve));
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  const tx = db.em().transactional(async (em) => {
    await em
      .getConnection()
      .execute("select id from vnodes where name = ? for update", [vn.name], "all", em.getTransactionContext());
    taken();
    await released;
  });
  await held;
  return {
    async release() {
      release();
      await tx;
    },
  };
}

/** addvmail's generation bump waits on the row (the command is inside its transaction). Health
 * reports update the same row and wait too: only the mutation's statement counts. */
async function mutationWaits(): Promise<true | undefined> {
  const rows = await db
    .em()
    .getConnection()
    .execute<Array<{ n: string | number }>>(
      "select count(*) as n from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock' and query like 'update vnodes set generation = generation + 1%'",
    );
  return Number(rows[0]?.n ?? 0) > 0 ? true : undefined;
}

async function mailboxStored(address: string): Promise<boolean> {
  const rows = await db
    .em()
    .getConnection()
    .execute<Array<{ n: string | number }>>("select count(*) as n from mail_vboxes where address = ?", [address]);
  return Number(rows[0]?.n ?? 0) === 1;
}

/** An admin connection that never sends its command (a CLI still reading its stdin). */
async function idleClient(): Promise<Promise<void>> {
  const socket = createConnection(fleet.serve.socket);
  socket.on("error", () => undefined);
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", () => resolve());
    socket.once("error", reject);
  });
  return new Promise<void>((resolve) => socket.once("close", () => resolve()));
}

describe.skipIf(!isRoot || !pgUrl)("serve on SIGTERM (PostgreSQL) with an agent, a CLI and a command in flight", () => {
  beforeAll(async () => {
    url = await freshPostgres(pgUrl as string);
    fleet = await startServeFleet(["sd1"], "sdn", { databaseUrl: url });
    vn = fleet.vnodes[0] as ServeVnode;
    db = await openDatabase({ url });
  }, 300_000);

  afterAll(async () => {
    await db?.close();
    await fleet?.close();
  });

  it("lets the command in flight finish and answer, then exits 0", async () => {
    await running();
    const serve = fleet.serve;
    const exited = new Promise<number | null>((resolve) => serve.child.once("exit", (code) => resolve(code)));
    const idleClosed = await idleClient();
    const address = `shutdown-ok-${randomUUID().slice(0, 8)}@${vn.domain}`;
    const lock = await lockVnodeRow();
    const command = serve.cli(["addvmail", vn.name, address, "--password-stdin"], "Shutdown-pass-123\n");
    try {
      await until(mutationWaits, 60_000, "addvmail waiting on the vnode's row");
      serve.child.kill("SIGTERM");
      await until(
        async () => (serve.stderr().includes('"shutting down"') ? true : undefined),
        60_000,
        "serve shutting down",
      );
    } finally {
      await lock.release();
    }
    const result = await command;
    expect(result.code, `${result.err}\n${serve.stderr()}`).toBe(0);
    expect(await exited, serve.stderr()).toBe(0);
    await idleClosed;
    expect(serve.stderr()).toContain('"controller stopped"');
    expect(serve.stderr()).not.toContain("shutdown cut short");
    expect(await mailboxStored(address)).toBe(true);
  }, 300_000);

  it("a command that cannot finish: the deadline ends serve with exit 1 and names the step", async () => {
    await running();
    const serve = fleet.serve;
    const exited = new Promise<number | null>((resolve) => serve.child.once("exit", (code) => resolve(code)));
    const address = `shutdown-stuck-${randomUUID().slice(0, 8)}@${vn.domain}`;
    const lock = await lockVnodeRow();
    const command = serve.cli(["addvmail", vn.name, address, "--password-stdin"], "Shutdown-pass-123\n");
    let code: number | null;
    try {
      await until(mutationWaits, 60_000, "addvmail waiting on the vnode's row");
      serve.child.kill("SIGTERM");
      // Held until serve is gone: its statement would wait for its query timeout (30 s), past
      // the shutdown deadline (10 s).
      code = await exited;
    } finally {
      await lock.release();
    }
    expect(code).toBe(1);
    const line = serve
      .stderr()
      .split("\n")
      .find((l) => l.includes("shutdown cut short"));
    expect(line).toBeDefined();
    const logged = JSON.parse(line as string) as Record<string, unknown>;
    expect(logged["step"]).toBe("admin socket");
    expect(String(logged["why"])).toContain("not finished within");
    const result = await command;
    expect(result.code).toBe(5);
    expect(result.err).toContain("closed the connection before the command ended");
    // Its transaction died with the process: nothing half-written.
    expect(await mailboxStored(address)).toBe(false);
  }, 300_000);
});
