// PostgreSQL away under a running `serve` with two mail vnodes (agent processes in namespaces) and
// a stream of CLI commands (issue 13). The database is reached through a TCP forwarder the test
// cuts: stopped (every connection reset, new ones refused) for OUTAGE_MS (30 s in the long run),
// and silent (black-holed: nothing answers, nothing is refused). While it is away serve keeps its
// pid and says the database is unreachable, every command fails with exit 5 and a message naming
// the database, and nothing is half-written (each mutation's row, command-log entry and generation
// bump together or none). When it is back, without a restart, commands succeed again and the
// mailboxes added after the outage reach each vnode's lookup rows. Limits only catch hangs.
import { randomInt, randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createCliContext } from "../../controller/cli/cli-context.ts";
import { runCommand } from "../../controller/cli/main.ts";
import { openDatabase, type Database } from "../../controller/db/open-database.ts";
import { chaosLong, recordChaos } from "../chaos/report.ts";
import { until } from "../helpers/mail-fleet.ts";
import { startServeFleet, type ServeFleet, type ServeVnode } from "../helpers/serve-fleet.ts";
import { startTcpCut, type TcpCut } from "../helpers/tcp-cut.ts";

const isRoot = process.getuid?.() === 0;
const pgUrl = process.env["DATABASE_URL_TEST"];
/** The issue asks for 30 s; the normal suite holds the outage for 12 s. */
const OUTAGE_MS = chaosLong ? 30_000 : 12_000;
const DB_UP = "netserva_controller_database_up";

let fleet: ServeFleet;
let forwarder: TcpCut;
let direct: Database;
let proxiedUrl = "";

interface Attempt {
  vnode: string;
  address: string;
  startedAt: number;
  endedAt: number;
  code: number;
  err: string;
}

/** Mailboxes added one after another, alternating vnodes, until stopped; every outcome kept. */
function traffic(vnodes: ServeVnode[], tag: string): { attempts: Attempt[]; stop(): Promise<void> } {
  const attempts: Attempt[] = [];
  let stopped = false;
  const loop = (async () => {
    for (let i = 0; !stopped; i += 1) {
      const v = vnodes[i % vnodes.length] as ServeVnode;
      const address = `${tag}${i}-${randomInt(1e6)}@${v.domain}`;
      const startedAt = Date.now();
      const run = await fleet.serve.cli(["addvmail", v.name, address, "--password-stdin"], "Outage-pass-123\n");
      attempts.push({ vnode: v.name, address, startedAt, endedAt: Date.now(), code: run.code, err: run.err });
      await new Promise((r) => setTimeout(r, 200));
    }
  })();
  return {
    attempts,
    async stop() {
      stopped = true;
      await loop;
    },
  };
}

/** The CLI as an operator runs it with DATABASE_URL set: its own context, opening the database. */
async function directCli(argv: string[]): Promise<{ code: number; err: string }> {
  let err = "";
  const ctx = createCliContext({
    out: () => undefined,
    err: (t) => void (err += t),
    readStdin: async () => "Outage-pass-123\n",
    env: { NETSERVA_MAIL_HOME: fleet.serve.home, NETSERVA_MAIL_ACTOR: "tester", DATABASE_URL: proxiedUrl },
    isTTY: false,
  });
  return { code: await runCommand(argv, ctx), err };
}

async function generations(): Promise<Map<string, number>> {
  const rows = await direct
    .em()
    .getConnection()
    .execute<Array<{ name: string; generation: string | number }>>("select name, generation from vnodes");
  return new Map(rows.map((r) => [r.name, Number(r.generation)]));
}

/** Each attempt whole: its row and its ok log entry together or neither; returns those stored. */
async function stored(attempts: Attempt[]): Promise<Attempt[]> {
  const conn = direct.em().getConnection();
  const out: Attempt[] = [];
  for (const a of attempts) {
    const [rows] = await conn.execute<Array<{ n: string }>>("select count(*) as n from mail_vboxes where address = ?", [
      a.address,
    ]);
    const [logs] = await conn.execute<Array<{ n: string }>>(
      "select count(*) as n from command_log where command = 'addvmail' and result = 'ok' and args::text like ?",
      [`%"${a.address}"%`],
    );
    expect(Number(logs?.n), `${a.address}: row and log entry together or neither`).toBe(Number(rows?.n));
    if (a.code === 0) expect(Number(rows?.n), `${a.address}: exit 0 means stored`).toBe(1);
    if (Number(rows?.n) === 1) out.push(a);
  }
  return out;
}

async function mailboxesOf(v: ServeVnode): Promise<string[]> {
  const rows = await direct
    .em()
    .getConnection()
    .execute<Array<{ address: string }>>(
      "select b.address from mail_vboxes b join mail_vhosts d on d.id = b.domain_id join vnodes n on n.id = d.vnode_id where n.name = ?",
      [v.name],
    );
  return rows.map((r) => r.address).sort();
}

/** Every vnode at its generation with the database's mailboxes in its lookup rows. */
async function vnodesCaughtUp(): Promise<void> {
  await fleet.converged();
  for (const v of fleet.vnodes) {
    const want = await mailboxesOf(v);
    await until(
      async () => (JSON.stringify((await fleet.lookupRows(v)).mailboxes) === JSON.stringify(want) ? true : undefined),
      60_000,
      `${v.name}'s lookup rows equal the database's`,
    );
  }
}

describe.skipIf(!isRoot || !pgUrl)("PostgreSQL away under serve with two vnodes and CLI traffic", () => {
  beforeAll(async () => {
    const admin = await openDatabase({ url: pgUrl });
    const name = `nsm_dbout_${randomUUID().replace(/-/g, "").slice(0, 12)}`;
    await admin.em().getConnection().execute(`create database ${name}`);
    await admin.close();
    const real = new URL(pgUrl!);
    real.pathname = `/${name}`;
    forwarder = await startTcpCut({ host: real.hostname, port: Number(real.port) });
    const proxied = new URL(real.toString());
    proxied.port = String(forwarder.port);
    proxiedUrl = proxied.toString();
    direct = await openDatabase({ url: real.toString(), poolSize: 2 });
    fleet = await startServeFleet(["do1", "do2"], "dbo", { databaseUrl: proxiedUrl });
  }, 400_000);

  afterAll(async () => {
    forwarder?.restore();
    await fleet?.close();
    await forwarder?.close();
    await direct?.close();
  });

  it(`stopped for ${OUTAGE_MS / 1000} s: serve stays up, commands exit 5, nothing half-written, all resumes`, async () => {
    const s = fleet.serve;
    const pid = s.child.pid;
    const before = await generations();
    const load = traffic(fleet.vnodes, "o");
    let cutAt = 0;
    let backAt = 0;
    try {
      await until(
        async () => (load.attempts.filter((a) => a.code === 0).length >= 2 ? true : undefined),
        60_000,
        "traffic",
      );
      forwarder.cut();
      cutAt = Date.now();
      await until(async () => ((await s.metric(DB_UP)) === 0 ? true : undefined), 60_000, "serve says unreachable");
      const status = await s.cli(["status"]);
      expect(status.code).toBe(5);
      expect(status.err).toMatch(/database.*unreachable/i);
      // The outage lasts its full length (the fault's duration, not a wait for readiness).
      const left = OUTAGE_MS - (Date.now() - cutAt);
      if (left > 0) await new Promise((r) => setTimeout(r, left));
      expect(s.child.exitCode).toBeNull();
      expect(s.child.pid).toBe(pid);
      forwarder.restore();
      backAt = Date.now();
      await until(async () => ((await s.metric(DB_UP)) === 1 ? true : undefined), 60_000, "serve says reachable");
      await until(
        async () => (load.attempts.filter((a) => a.code === 0 && a.startedAt > backAt).length >= 2 ? true : undefined),
        60_000,
        "commands succeed again",
      );
    } finally {
      forwarder.restore();
      await load.stop();
    }
    const during = load.attempts.filter((a) => a.startedAt > cutAt && a.endedAt < backAt);
    expect(during.length).toBeGreaterThan(0);
    for (const a of during) {
      expect(a.code, a.err).toBe(5);
      expect(a.err).toMatch(/database.*unreachable/i);
    }
    const kept = await stored(load.attempts);
    expect(kept.filter((a) => during.includes(a))).toEqual([]);
    const after = await generations();
    for (const v of fleet.vnodes)
      expect(after.get(v.name), `${v.name}: one bump per stored mailbox`).toBe(
        (before.get(v.name) ?? 0) + kept.filter((a) => a.vnode === v.name).length,
      );
    await vnodesCaughtUp();
    expect(s.child.pid).toBe(pid);
    expect(await s.metric('netserva_controller_last_resort_total{kind="uncaught_exception"}')).toBe(0);
    expect(await s.metric('netserva_controller_last_resort_total{kind="unhandled_rejection"}')).toBe(0);
    recordChaos({
      fault: "PostgreSQL stopped",
      where: `under serve, 2 vnodes, CLI traffic (${OUTAGE_MS / 1000} s)`,
      times: 1,
      config: "-",
      mailAccepted: true,
      converged: true,
      secondsToConverge: (Date.now() - backAt) / 1000,
      lost: 0,
      duplicated: 0,
      note: `${load.attempts.length} commands: ${during.length} during the outage, all exit 5; ${kept.length} stored whole`,
    });
  }, 600_000);

  it("silent (black-holed): commands fail with exit 5 instead of hanging, and resume when it answers", async () => {
    const s = fleet.serve;
    const pid = s.child.pid;
    const [v1] = fleet.vnodes as [ServeVnode];
    const tries: Attempt[] = [];
    forwarder.blackhole();
    let backAt = 0;
    try {
      for (let i = 0; i < 2; i += 1) {
        const address = `bh${i}-${randomInt(1e6)}@${v1.domain}`;
        const startedAt = Date.now();
        const run = await s.cli(["addvmail", v1.name, address, "--password-stdin"], "Outage-pass-123\n");
        tries.push({ vnode: v1.name, address, startedAt, endedAt: Date.now(), code: run.code, err: run.err });
        expect(run.code, run.err).toBe(5);
        expect(run.err).toMatch(/database.*unreachable/i);
      }
      // A command in its own process (DATABASE_URL): its first connection never answers.
      const address = `bhd-${randomInt(1e6)}@${v1.domain}`;
      const local = await directCli(["addvmail", v1.name, address, "--password-stdin"]);
      tries.push({ vnode: v1.name, address, startedAt: 0, endedAt: 0, code: local.code, err: local.err });
      expect(local.code, local.err).toBe(5);
      expect(local.err).toMatch(/database.*unreachable/i);
      await until(async () => ((await s.metric(DB_UP)) === 0 ? true : undefined), 120_000, "serve says unreachable");
    } finally {
      forwarder.restore();
      backAt = Date.now();
    }
    await until(async () => ((await s.metric(DB_UP)) === 1 ? true : undefined), 120_000, "serve says reachable");
    const address = `bhafter-${randomInt(1e6)}@${v1.domain}`;
    const after = await until(
      async () => {
        const run = await s.cli(["addvmail", v1.name, address, "--password-stdin"], "Outage-pass-123\n");
        return run.code === 0 ? run : undefined;
      },
      120_000,
      "a command succeeds after the silence",
    );
    expect(after.code).toBe(0);
    expect(await stored(tries)).toEqual([]);
    await vnodesCaughtUp();
    expect((await fleet.lookupRows(v1)).mailboxes).toContain(address);
    expect(s.child.pid).toBe(pid);
    recordChaos({
      fault: "PostgreSQL silent (packets dropped)",
      where: "under serve, 2 vnodes",
      times: 1,
      config: "-",
      mailAccepted: true,
      converged: true,
      secondsToConverge: (Date.now() - backAt) / 1000,
      lost: 0,
      duplicated: 0,
      note: `each command exit 5 (connect/query timeouts 10 s / 30 s), longest through serve ${Math.max(
        ...tries.filter((t) => t.startedAt > 0).map((t) => (t.endedAt - t.startedAt) / 1000),
      )} s`,
    });
  }, 600_000);
});
