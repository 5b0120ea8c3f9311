// The controller SIGKILLed mid-mutation and mid-push (issue 13), on the embedded PGlite and on
// PostgreSQL: a real `serve` process with a real agent process in a network namespace. Kills come
// at named points (NETSERVA_CONTROLLER_KILL_AT: inside the mutation's transaction, after its
// commit, with the push on the wire, after the agent applied it but before the controller
// recorded that) and at random moments under a stream of mutations. After each: the database
// holds every mutation's row, its command-log entry and its generation bump together or none of
// them; serve starts again on it, and the vnode reaches the desired generation with lookup rows
// equal to the database's. Seconds go to the chaos table, never into assertions.
import { randomInt } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KILL_POINTS, type KillPoint } from "../../controller/faults/kill-points.ts";
import { createCliContext } from "../../controller/cli/cli-context.ts";
import { homePaths } from "../../controller/home/home-paths.ts";
import { openDatabase, type Database } from "../../controller/db/open-database.ts";
import { chaosFull, recordChaos } from "../chaos/report.ts";
import { until } from "../helpers/mail-fleet.ts";
import { AGENT_PORT, startServeFleet, type ServeFleet, type ServeVnode } from "../helpers/serve-fleet.ts";
import { freshPostgresUrl } from "../helpers/fresh-postgres.ts";

const isRoot = process.getuid?.() === 0;
const pgUrl = process.env["DATABASE_URL_TEST"];
/** Timed kills under a stream of mutations: one in the normal suite, more in the full matrix. */
const TIMED_KILLS = chaosFull ? 8 : 1;
/** Named points run again in the full matrix at later arrivals (the n-th push, the n-th commit). */
const ARRIVALS = chaosFull ? [1, 2] : [1];

const freshPostgres = (url: string): Promise<string> => freshPostgresUrl(url, "ctlkill");

interface Target {
  kind: "pglite" | "postgresql";
  url?: string;
}

const targets: Array<[string, () => Promise<Target>]> = [["pglite", async () => ({ kind: "pglite" })]];
if (pgUrl) targets.push(["postgresql", async () => ({ kind: "postgresql", url: await freshPostgres(pgUrl) })]);

/** What the database says about one vnode and a set of mutations, read while serve is down. */
interface Ledger {
  generation: number;
  /** Per key (domain or address): [rows, ok command-log entries]. */
  entries: Map<string, [number, number]>;
  /** Generations recorded by the ok log entries of these mutations. */
  loggedGenerations: number[];
  domains: string[];
  mailboxes: string[];
  history: string[];
}

describe.skipIf(!isRoot).each(targets)("controller SIGKILL on %s", (_name, makeTarget) => {
  let fleet: ServeFleet;
  let vn: ServeVnode;
  let target: Target;

  /** Opens the database the way an operator's command would while serve is down (the lock included). */
  async function openForCheck(): Promise<Database> {
    if (target.url) return openDatabase({ url: target.url, poolSize: 2 });
    const env = { NETSERVA_MAIL_HOME: fleet.serve.home, NETSERVA_MAIL_ACTOR: "tester" };
    const ctx = createCliContext({
      out: () => undefined,
      err: () => undefined,
      readStdin: async () => "",
      env,
      isTTY: false,
    });
    return ctx.openDb(homePaths(fleet.serve.home));
  }

  async function ledger(command: "addvmaildomain" | "addvmail", keys: string[]): Promise<Ledger> {
    const db = await openForCheck();
    try {
      const conn = db.em().getConnection();
      const [row] = await conn.execute<Array<{ id: number; generation: string | number }>>(
        "select id, generation from vnodes where name = ?",
        [vn.name],
      );
      if (!row) throw new Error(`vnode ${vn.name} missing`);
      const entries = new Map<string, [number, number]>();
      const loggedGenerations: number[] = [];
      for (const key of keys) {
        const rows = await conn.execute<Array<{ n: string | number }>>(
          command === "addvmaildomain"
            ? "select count(*) as n from mail_vhosts where domain = ?"
            : "select count(*) as n from mail_vboxes where address = ?",
          [key],
        );
        const logs = await conn.execute<Array<{ generation: string | number | null }>>(
          "select generation from command_log where command = ? and result = 'ok' and args::text like ?",
          [command, `%"${key}"%`],
        );
        entries.set(key, [Number(rows[0]?.n ?? 0), logs.length]);
        for (const l of logs) loggedGenerations.push(Number(l.generation));
      }
      const domains = (
        await conn.execute<Array<{ domain: string }>>("select domain from mail_vhosts where vnode_id = ?", [row.id])
      )
        .map((r) => r.domain)
        .sort();
      const mailboxes = (
        await conn.execute<Array<{ address: string }>>(
          "select b.address from mail_vboxes b join mail_vhosts d on d.id = b.domain_id where d.vnode_id = ?",
          [row.id],
        )
      )
        .map((r) => r.address)
        .sort();
      // For the failure message: what the log says happened last.
      const recent = await conn.execute<Array<Record<string, unknown>>>(
        "select id, actor, command, generation, result from command_log order by id desc limit 12",
      );
      const history = recent.map((r) => `${r["id"]} ${r["actor"]} ${r["command"]} g${r["generation"]} ${r["result"]}`);
      return { generation: Number(row.generation), entries, loggedGenerations, domains, mailboxes, history };
    } finally {
      await db.close();
    }
  }

  /** Rows, log entries and generation bumps: each mutation all or none; returns how many committed. */
  function assertWhole(before: number, after: Ledger): number {
    let committed = 0;
    for (const [key, [rows, logs]] of after.entries) {
      expect(rows, `${key}: at most one row`).toBeLessThanOrEqual(1);
      expect(logs, `${key}: row and command-log entry together or neither`).toBe(rows);
      committed += rows;
    }
    expect(
      after.generation,
      `one generation bump per committed mutation (from ${before}); log: ${after.history.join("; ")}`,
    ).toBe(before + committed);
    expect([...after.loggedGenerations].sort((a, b) => a - b)).toEqual(
      Array.from({ length: committed }, (_, i) => before + i + 1),
    );
    return committed;
  }

  /** The armed serve's end; one that never reaches its kill point fails with its log, not a hang. */
  async function waitExit(limitMs = 120_000): Promise<string | null> {
    const child = fleet.serve.child;
    if (child.exitCode === null && child.signalCode === null) {
      let timer: NodeJS.Timeout | undefined;
      const exited = await Promise.race([
        new Promise<boolean>((resolve) => child.once("exit", () => resolve(true))),
        new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), limitMs))),
      ]);
      clearTimeout(timer);
      if (!exited)
        throw new Error(`serve never reached its kill point in ${limitMs / 1000} s; its log:\n${fleet.serve.stderr()}`);
    }
    return child.signalCode;
  }

  /** After the kill: serve again without the fault, every vnode at its generation, lookup rows = DB. */
  async function recover(expected: Ledger): Promise<number> {
    const restartedAt = Date.now();
    await fleet.restart({ NETSERVA_CONTROLLER_KILL_AT: "" });
    const rows = await fleet.converged();
    expect(rows.find((r) => r.vnode === vn.name)?.generation).toBe(expected.generation);
    await until(
      async () => {
        const lookup = await fleet.lookupRows(vn);
        return JSON.stringify(lookup) === JSON.stringify({ domains: expected.domains, mailboxes: expected.mailboxes })
          ? true
          : undefined;
      },
      60_000,
      "the vnode's lookup rows equal the database's",
    );
    return (Date.now() - restartedAt) / 1000;
  }

  /** serve running without a kill point and every vnode at its generation. */
  async function settled(): Promise<Awaited<ReturnType<ServeFleet["converged"]>>> {
    const s = fleet.serve;
    if (
      s.child.exitCode !== null ||
      s.child.signalCode !== null ||
      /NETSERVA_CONTROLLER_KILL_AT/.test(Object.keys(s.env).join(" "))
    ) {
      await s.stop();
      await fleet.restart({ NETSERVA_CONTROLLER_KILL_AT: "" });
    }
    return fleet.converged();
  }

  beforeAll(async () => {
    target = await makeTarget();
    fleet = await startServeFleet(["ck1"], `ck${target.kind === "pglite" ? "l" : "p"}`, {
      ...(target.url ? { databaseUrl: target.url } : {}),
    });
    vn = fleet.vnodes[0] as ServeVnode;
  }, 300_000);

  afterAll(async () => {
    await fleet?.close();
  });

  // The reconciler's own point needs a vnode behind its generation: its own test below.
  const cases: Array<[KillPoint, number]> = KILL_POINTS.filter((p) => p !== "reconcile-push-sent").flatMap((p) =>
    ARRIVALS.map((n): [KillPoint, number] => [p, n]),
  );

  /** The agent's gRPC port blackholed inside its namespace: pushes and health reports stop. */
  const BLACKHOLE = [
    ["sport", String(AGENT_PORT)],
    ["dport", String(AGENT_PORT)],
  ] as const;
  async function cutLink(): Promise<void> {
    for (const [key, port] of BLACKHOLE) await vn.ns.run("ip", ["rule", "add", key, port, "blackhole"]);
  }
  async function restoreLink(): Promise<void> {
    for (const [key, port] of BLACKHOLE)
      await vn.ns.run("ip", ["rule", "del", key, port, "blackhole"]).catch(() => undefined);
  }

  it("killed inside the catch-up push after a restart (reconciler or lease holder): the change stays whole, then the vnode converges", async () => {
    await settled();
    const domain = `r${randomInt(1e9)}.${vn.domain}`;
    let before = 0;
    let code = -1;
    try {
      // A change the vnode cannot get now: stored, then owed to it. The blackhole drops only what
      // the agent sends (packets to a local address are delivered before any rule is read), so
      // a push on the still-open connection would arrive and be applied with its answer lost:
      // the change is made once the controller has seen the link go down, when a push needs a
      // new connection, which cannot open.
      await cutLink();
      await until(
        async () => ((await fleet.status()).find((r) => r.vnode === vn.name)?.connected === false ? true : undefined),
        60_000,
        "the vnode shown down after the cut",
      );
      before = (await fleet.status()).find((r) => r.vnode === vn.name)?.generation ?? 0;
      code = (await fleet.serve.cli(["addvmaildomain", vn.name, domain, "--skip-dns-check"])).code;
      expect(code).toBe(0);
      await fleet.serve.stop();
      // The first push that catches the vnode up after the restart: the reconciler's whole state,
      // or on PostgreSQL the lease holder's push of the change feed (which usually comes first).
      await fleet.restart({ NETSERVA_CONTROLLER_KILL_AT: "reconcile-push-sent,push-sent" });
    } finally {
      await restoreLink();
    }
    // The vnode reports the generation it is behind; the reconciler sends the whole state.
    expect(await waitExit()).toBe("SIGKILL");
    const reached = /kill point (reconcile-push-sent|push-sent) reached/.exec(fleet.serve.stderr())?.[1];
    expect(reached).toBeDefined();
    const after = await ledger("addvmaildomain", [domain]);
    expect(assertWhole(before, after)).toBe(1);
    const seconds = await recover(after);
    recordChaos({
      fault: "controller SIGKILL",
      where: `${reached ?? "?"} (${target.kind}): the catch-up push after a restart on the wire`,
      times: 1,
      config: "new",
      mailAccepted: true,
      converged: true,
      secondsToConverge: seconds,
      lost: 0,
      duplicated: 0,
      note: `CLI exit code ${code} (change stored while the vnode was cut off)`,
    });
  }, 300_000);

  it.each(cases)(
    "killed at %s (arrival %i): all or nothing, then the vnode converges",
    async (point, arrival) => {
      // Converged first without the fault (whatever an earlier test left), so the only push after
      // the restart below is this test's own: a reconciler push must not reach the kill point.
      await settled();
      await fleet.serve.stop();
      await fleet.restart({ NETSERVA_CONTROLLER_KILL_AT: `${point}:${arrival}` });
      const before = (await fleet.status()).find((r) => r.vnode === vn.name)?.generation ?? 0;
      // A domain per arrival: the kill comes at the arrival-th one (a domain change reloads Postfix,
      // so the agent is busy for a while with each push).
      const domains = Array.from({ length: arrival }, (_, i) => `k${randomInt(1e9)}-${i}.${vn.domain}`);
      const codes: number[] = [];
      for (const domain of domains) {
        const run = await fleet.serve.cli(["addvmaildomain", vn.name, domain, "--skip-dns-check"]);
        codes.push(run.code);
        if (run.code !== 0) break;
      }
      expect(await waitExit()).toBe("SIGKILL");
      expect(fleet.serve.stderr()).toContain(`kill point ${point} reached`);

      const after = await ledger("addvmaildomain", domains);
      const committed = assertWhole(before, after);
      // Inside the transaction: the last one vanished; from its commit on: all of them are stored.
      expect(committed).toBe(point === "mutation-before-commit" ? arrival - 1 : arrival);
      const seconds = await recover(after);
      recordChaos({
        fault: "controller SIGKILL",
        where: `${point} (${target.kind}, arrival ${arrival})`,
        times: 1,
        config: committed === arrival ? "new" : "old",
        mailAccepted: true,
        converged: true,
        secondsToConverge: seconds,
        lost: 0,
        duplicated: 0,
        note: `CLI exit codes ${codes.join(",")}`,
      });
    },
    300_000,
  );

  it("killed at random moments under a stream of mutations: each one whole, then the vnode converges", async () => {
    let worst = 0;
    let attempted = 0;
    let committedAll = 0;
    for (let round = 0; round < TIMED_KILLS; round += 1) {
      if (fleet.serve.child.exitCode === null && fleet.serve.child.signalCode === null) {
        await fleet.serve.stop();
        await fleet.restart({ NETSERVA_CONTROLLER_KILL_AT: "" });
      }
      const [start] = await fleet.converged();
      const before = start?.generation ?? 0;
      const serve = fleet.serve;
      const addresses: string[] = [];
      let done = 0;
      // Several writers at once, so the kill can land in any of them, in any step.
      const writer = async (w: number): Promise<void> => {
        for (let i = 0; ; i += 1) {
          const address = `m${round}w${w}n${i}-${randomInt(1e6)}@${vn.domain}`;
          addresses.push(address);
          const run = await serve
            .cli(["addvmail", vn.name, address, "--password-stdin"], "Stream-pass-123\n")
            .catch(() => ({ code: 5 }));
          if (run.code !== 0) return;
          done += 1;
        }
      };
      const writers = [0, 1, 2].map((w) => writer(w));
      // Let the stream run a little first (until something committed), then kill at a random moment.
      await until(async () => (done >= 3 ? true : undefined), 60_000, "the stream running");
      await new Promise((r) => setTimeout(r, randomInt(200, 1500)));
      serve.child.kill("SIGKILL");
      await Promise.all(writers);
      expect(await waitExit()).toBe("SIGKILL");
      attempted += addresses.length;
      const after = await ledger("addvmail", addresses);
      committedAll += assertWhole(before, after);
      worst = Math.max(worst, await recover(after));
    }
    recordChaos({
      fault: "controller SIGKILL",
      where: `timed, under a stream of addvmail (${target.kind})`,
      times: TIMED_KILLS,
      config: "old or new",
      mailAccepted: true,
      converged: true,
      secondsToConverge: worst,
      lost: 0,
      duplicated: 0,
      note: `${attempted} mutations attempted, ${committedAll} committed`,
    });
  }, 600_000);
});
