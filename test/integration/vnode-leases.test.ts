// Vnode leases on a real PostgreSQL (several controllers, one database): each enrolled vnode has
// exactly one holder, the fleet is spread evenly and rebalanced when a controller joins, and a
// controller cut off from the database stops using its leases by its own clock before the others
// take them over with a higher epoch; `leases` names each vnode's holder. Each keeper reaches
// PostgreSQL through its own TCP forwarder, so one can be cut off while the others keep theirs.
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { silentLogger } from "../../common/log.ts";
import { createCliContext } from "../../controller/cli/cli-context.ts";
import { runCommand } from "../../controller/cli/main.ts";
import { openDatabase, type Database } from "../../controller/db/open-database.ts";
import { startLeaseKeeper, type LeaseKeeper } from "../../controller/fleet/lease-keeper.ts";
import { deliverServiceFor } from "../../controller/fleet/deliver.ts";
import { homePaths } from "../../controller/home/home-paths.ts";
import { CHANGES_CHANNEL } from "../../controller/db/change-feed.ts";
import { Client } from "pg";
import { until } from "../helpers/mail-fleet.ts";
import { startTcpCut, type TcpCut } from "../helpers/tcp-cut.ts";

const pgUrl = process.env["DATABASE_URL_TEST"];
const TTL_MS = 3000;
const RENEW_MS = 200;
const VNODES = 6;

interface Controller {
  name: string;
  cut: TcpCut;
  db: Database;
  keeper: LeaseKeeper;
}

describe.skipIf(!pgUrl)("vnode leases on PostgreSQL", () => {
  let url: string;
  let admin: Database;
  const controllers: Controller[] = [];

  async function startController(name: string): Promise<Controller> {
    const target = new URL(url);
    const cut = await startTcpCut({ host: target.hostname, port: Number(target.port || 5432) });
    const via = new URL(url);
    via.hostname = "127.0.0.1";
    via.port = String(cut.port);
    const db = await openDatabase({ url: via.toString(), poolSize: 2, connectTimeoutMs: 1000, queryTimeoutMs: 1000 });
    const keeper = startLeaseKeeper({ db, name, log: silentLogger, ttlMs: TTL_MS, renewMs: RENEW_MS });
    const controller = { name, cut, db, keeper };
    controllers.push(controller);
    return controller;
  }

  /** Vnode → holders among the running keepers (by their own view: lease valid on their clock). */
  function holders(list: Controller[]): Map<string, string[]> {
    const map = new Map<string, string[]>();
    for (const c of list)
      for (const lease of c.keeper.held()) map.set(lease.vnode, [...(map.get(lease.vnode) ?? []), c.name]);
    return map;
  }

  /** A command as an operator's CLI on PostgreSQL runs it (no controller home needed). */
  async function cli(argv: string[]): Promise<string> {
    let out = "";
    let err = "";
    const code = await runCommand(
      argv,
      createCliContext({
        out: (t) => void (out += t),
        err: (t) => void (err += t),
        readStdin: async () => "",
        env: { DATABASE_URL: url, NETSERVA_MAIL_HOME: "/nonexistent", NETSERVA_MAIL_ACTOR: "tester" },
        isTTY: false,
      }),
    );
    expect(code, `${argv.join(" ")}: ${err}`).toBe(0);
    return out;
  }

  beforeAll(async () => {
    if (!pgUrl) return;
    const root = await openDatabase({ url: pgUrl });
    const name = `nsm_leases_${randomUUID().replace(/-/g, "").slice(0, 12)}`;
    await root.em().getConnection().execute(`create database ${name}`);
    await root.close();
    const target = new URL(pgUrl);
    target.pathname = `/${name}`;
    url = target.toString();
    admin = await openDatabase({ url, poolSize: 2 });
    for (let i = 0; i < VNODES; i += 1)
      await admin
        .em()
        .getConnection()
        .execute("insert into vnodes (name, address, status) values (?, ?, 'enrolled')", [
          `lease${i}`,
          `10.0.0.${i}:7444`,
        ]);
  }, 60_000);

  afterAll(async () => {
    for (const c of controllers) {
      await c.keeper.stop().catch(() => undefined);
      await c.db.close().catch(() => undefined);
      await c.cut.close();
    }
    await admin?.close();
  });

  it("spreads the vnodes, one holder each; a cut-off holder stops by its clock and is taken over with a higher epoch; a newcomer gets its share", async () => {
    const [a, b, c] = [await startController("a"), await startController("b"), await startController("c")];
    const running = [a, b, c];
    // Never two holders of one vnode, sampled all along.
    let overlaps = 0;
    const sampler = setInterval(() => {
      for (const names of holders(controllers.filter((x) => running.includes(x))).values())
        if (names.length > 1) overlaps += 1;
    }, 20);
    try {
      const spread = await until(
        async () => {
          const map = holders(running);
          const counts = running.map((x) => x.keeper.held().length);
          return map.size === VNODES && counts.every((n) => n === VNODES / running.length) ? counts : undefined;
        },
        60_000,
        "every vnode held, two each",
      );
      expect(spread).toEqual([2, 2, 2]);
      const rows = await admin
        .em()
        .getConnection()
        .execute<Array<{ holder: string | null; n: string | number }>>(
          "select holder, count(*) as n from vnode_leases where expires_at > now() group by holder",
        );
      expect(rows.map((r) => r.holder).sort()).toEqual([a.keeper.id, b.keeper.id, c.keeper.id].sort());
      // `leases --json`, as an operator's CLI on PostgreSQL runs it: the same holders by name.
      const report = JSON.parse(await cli(["leases", "--json"])) as Array<{
        vnode: string;
        controller: string;
        epoch: number;
      }>;
      expect(report).toHaveLength(VNODES);
      for (const row of report) {
        const holder = [a, b, c].find((x) => x.keeper.epochOf(row.vnode) !== undefined);
        expect(row.controller, row.vnode).toBe(holder?.name);
        expect(BigInt(row.epoch)).toBe(holder?.keeper.epochOf(row.vnode));
      }
      // `status` names each vnode's holder and lease epoch too, in JSON and in the table.
      const status = JSON.parse(await cli(["status", "--json"])) as Array<{
        vnode: string;
        holder: string | null;
        leaseEpoch: number;
      }>;
      expect(status).toHaveLength(VNODES);
      for (const row of status) {
        const holder = [a, b, c].find((x) => x.keeper.epochOf(row.vnode) !== undefined);
        expect(row.holder, row.vnode).toBe(holder?.name);
        expect(BigInt(row.leaseEpoch)).toBe(holder?.keeper.epochOf(row.vnode));
      }
      const table = (await cli(["status"])).split("\n");
      const header = table.find((line) => line.startsWith("VNODE")) ?? "";
      expect(header).toMatch(/HOLDER\s+LEASEEPOCH$/);
      for (const row of status)
        expect(table.find((line) => line.startsWith(`${row.vnode} `))).toMatch(
          new RegExp(`\\s${row.holder ?? "-"}\\s+${row.leaseEpoch}$`),
        );

      // Cut c off from PostgreSQL: it keeps running but can no longer renew.
      const lost = c.keeper.held();
      c.cut.blackhole();
      await until(
        async () => (c.keeper.held().length === 0 ? true : undefined),
        30_000,
        "c's leases lapse by its clock",
      );
      for (const lease of lost) expect(c.keeper.epochOf(lease.vnode)).toBeUndefined();
      running.splice(running.indexOf(c), 1);
      const after = await until(
        async () => {
          const map = holders([a, b]);
          return map.size === VNODES ? map : undefined;
        },
        60_000,
        "a and b hold every vnode",
      );
      expect([a, b].map((x) => x.keeper.held().length)).toEqual([3, 3]);
      for (const lease of lost) {
        const now = [a, b].map((x) => x.keeper.epochOf(lease.vnode)).find((e) => e !== undefined);
        expect(now).toBeGreaterThan(lease.epoch);
      }
      expect(after.size).toBe(VNODES);

      // A newcomer: a and b release their surplus, d takes its share.
      const d = await startController("d");
      running.push(d);
      const rebalanced = await until(
        async () => {
          const counts = running.map((x) => x.keeper.held().length);
          return holders(running).size === VNODES && counts.every((n) => n === 2) ? counts : undefined;
        },
        60_000,
        "a, b, d hold two each",
      );
      expect(rebalanced).toEqual([2, 2, 2]);
    } finally {
      clearInterval(sampler);
    }
    expect(overlaps).toBe(0);
  }, 240_000);
});

// A command run by a CLI on PostgreSQL never pushes itself: its push would carry no lease epoch
// and could race the controller that takes the lease meanwhile. With no controller alive it says
// so at once (the change is stored); with a live controller that does not hold the vnode yet it
// waits for the one that takes the lease to report the change applied. No agent here: the test
// plays the new holder's part by recording the applied generation, as its push would.
describe.skipIf(!pgUrl)("a CLI's change with no live lease holder", () => {
  let db: Database;
  let keeper: LeaseKeeper | undefined;

  beforeAll(async () => {
    if (!pgUrl) return;
    const root = await openDatabase({ url: pgUrl });
    const name = `nsm_holderless_${randomUUID().replace(/-/g, "").slice(0, 12)}`;
    await root.em().getConnection().execute(`create database ${name}`);
    await root.close();
    const target = new URL(pgUrl);
    target.pathname = `/${name}`;
    db = await openDatabase({ url: target.toString(), poolSize: 4 });
  }, 60_000);

  afterAll(async () => {
    await keeper?.stop().catch(() => undefined);
    await db?.close();
  });

  it("is not pushed unfenced: reported stored with no controller alive, live once a controller takes the lease", async () => {
    const sql = db.em().getConnection();
    // 192.0.2.0/24 answers nothing: a direct push would end in "unreachable" after its ping.
    await sql.execute(
      "insert into vnodes (name, address, status, generation, applied_generation) values ('nohold0', '192.0.2.10:7444', 'enrolled', 3, 2)",
    );
    const deliver = deliverServiceFor(db, homePaths("/nonexistent"));
    const alone = await deliver.deliver({ vnode: "nohold0", actor: "tester" });
    expect(alone.pushed).toBe(false);
    expect(alone.reason).toMatch(/no controller holds vnode nohold0's lease \(no serve runs on this database\)/);
    expect(alone.generation).toBe(3);

    // A live controller that renews only when told: it holds nohold0 after its first round.
    keeper = startLeaseKeeper({ db, name: "k", log: silentLogger, ttlMs: TTL_MS, renewMs: 3_600_000 });
    await until(async () => (keeper?.epochOf("nohold0") !== undefined ? true : undefined), 30_000, "k holds nohold0");
    // A vnode enrolled since: no lease row yet, so no holder, while k is alive.
    await sql.execute(
      "insert into vnodes (name, address, status, generation, applied_generation) values ('nohold1', '192.0.2.11:7444', 'enrolled', 5, 4)",
    );
    // The command wakes holders only after it looked for one: its notification says it found none.
    const listener = new Client({ connectionString: db.url });
    await listener.connect();
    const notified = new Promise<void>((resolve) =>
      listener.on("notification", (m) => (m.payload === "nohold1" ? resolve() : undefined)),
    );
    await listener.query(`listen ${CHANGES_CHANNEL}`);
    let settled = false;
    const waiting = deliver
      .deliver({ vnode: "nohold1", actor: "tester", changes: { generation: 5, list: [] } })
      .finally(() => (settled = true));
    try {
      await notified;
    } finally {
      await listener.end();
    }
    // k's next round takes the lease; its catch-up push is played here.
    await keeper.tick();
    const epoch = keeper.epochOf("nohold1");
    expect(epoch).toBeGreaterThan(0n);
    expect(settled).toBe(false);
    await sql.execute("update vnodes set applied_generation = 5 where name = 'nohold1'");
    const outcome = await waiting;
    expect(outcome).toMatchObject({ pushed: true, appliedGeneration: 5, generation: 5 });
  }, 120_000);
});

describe.skipIf(!pgUrl)("a lease keeper whose database pool is busy", () => {
  let db: Database | undefined;
  let keeper: LeaseKeeper | undefined;

  beforeAll(async () => {
    if (!pgUrl) return;
    const root = await openDatabase({ url: pgUrl });
    const name = `nsm_busypool_${randomUUID().replace(/-/g, "").slice(0, 12)}`;
    await root.em().getConnection().execute(`create database ${name}`);
    await root.close();
    const target = new URL(pgUrl);
    target.pathname = `/${name}`;
    db = await openDatabase({ url: target.toString(), poolSize: 2 });
  }, 60_000);

  afterAll(async () => {
    await keeper?.stop().catch(() => undefined);
    await db?.close();
  });

  it("keeps renewing while every pooled connection is taken (a restart's work must not let its leases lapse)", async () => {
    if (!db) throw new Error("no database");
    const sql = db.em().getConnection();
    for (let i = 0; i < 3; i += 1)
      await sql.execute("insert into vnodes (name, address, status) values (?, ?, 'enrolled')", [
        `busy${i}`,
        `10.0.1.${i}:7444`,
      ]);
    const lost: string[] = [];
    keeper = startLeaseKeeper({
      db,
      name: "busy",
      log: silentLogger,
      ttlMs: TTL_MS,
      renewMs: RENEW_MS,
      onChange: (_gained, gone) => lost.push(...gone.map((l) => l.vnode)),
    });
    const running = keeper;
    await until(async () => (running.held().length === 3 ? true : undefined), 30_000, "the keeper holding all three");
    const epochs = running.held().map((l) => `${l.vnode}@${l.epoch}`);
    // Both pooled connections busy for more than three TTLs, and more statements queued behind
    // them: what a restart's first reports (a reconcile, a trust push, a usage sync per vnode)
    // did to the pool at 1,000 vnodes.
    let poolFree = false;
    const busy = Promise.all(
      Array.from({ length: 4 }, () => db?.em().getConnection().execute("select pg_sleep(5)")),
    ).finally(() => (poolFree = true));
    // A whole round (heartbeat, renewal, share) completes while the pool is still taken.
    await running.tick();
    expect(poolFree).toBe(false);
    await busy;
    await running.tick();
    expect(lost).toEqual([]);
    expect(running.held().map((l) => `${l.vnode}@${l.epoch}`)).toEqual(epochs);
  }, 120_000);
});
