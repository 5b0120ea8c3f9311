// One controller, a swarm of agents (issue 16): a real `serve` process, and 50 real agent daemons
// in this process (test/swarm/: each its own grpc-js server, key, CSR, join token and certificate
// from real enrollment, health stream; the mail host records what it is told). It asserts
// behaviour and counts: everyone enrolled and live in `status`, an addvmail reaches exactly its
// vnode, health history rows stay bounded while reports keep coming, a revocation cuts off the
// revoked agent only. PostgreSQL when scripts/test provides one, else the embedded PGlite.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startServeProcess, type ServeProcess } from "../helpers/serve-process.ts";
import { until } from "../helpers/mail-fleet.ts";
import { createSwarm, type Swarm } from "../swarm/swarm.ts";
import { freshPostgresUrl } from "../helpers/fresh-postgres.ts";

const AGENTS = 50;
const HEALTH_INTERVAL_MS = 500;
const pgUrl = process.env["DATABASE_URL_TEST"];

interface StatusRow {
  vnode: string;
  status: string;
  connected: boolean;
  generation: number;
  appliedGeneration: number;
}

const freshPostgres = (url: string): Promise<string> => freshPostgresUrl(url, "swarm");

let serve: ServeProcess;
let swarm: Swarm;
const names = Array.from({ length: AGENTS }, (_, i) => `sw${String(i).padStart(3, "0")}`);

async function cli(argv: string[]): Promise<string> {
  const r = await serve.cli(argv);
  if (r.code !== 0) throw new Error(`${argv.join(" ")}: exit ${r.code}: ${r.err}`);
  return r.out;
}

async function status(): Promise<StatusRow[]> {
  return JSON.parse(await cli(["status", "--json"])) as StatusRow[];
}

beforeAll(async () => {
  serve = await startServeProcess({
    env: pgUrl ? { DATABASE_URL: await freshPostgres(pgUrl) } : {},
    args: ["--health-interval", String(HEALTH_INTERVAL_MS)],
  });
  swarm = createSwarm({
    dir: mkdtempSync(join(tmpdir(), "nsm-swarm-")),
    controller: `127.0.0.1:${serve.port}`,
    async addVnode(name, address) {
      const out = await cli(["vnode", "add", name, "--address", address]);
      return out.trim().split("\n").pop() ?? "";
    },
    async newToken(name) {
      return (await cli(["vnode", "token", name])).trim().split("\n").pop() ?? "";
    },
  });
  await swarm.addMany(names, 4);
}, 600_000);

afterAll(async () => {
  await swarm?.close();
  await serve?.stop();
});

describe(`one controller, ${AGENTS} swarm agents`, () => {
  it("enrolls every agent and shows each live in status", async () => {
    const rows = await until(
      async () => {
        const all = (await status()).filter((r) => names.includes(r.vnode));
        return all.length === AGENTS && all.every((r) => r.connected) ? all : undefined;
      },
      240_000,
      "every swarm vnode connected",
    );
    expect(rows.map((r) => r.status)).toEqual(names.map(() => "enrolled"));
    // Links connect through the fleet's gate: never more than 32 handshakes at once.
    expect(await serve.metric('netserva_controller_link_connects{which="peak"}')).toBeLessThanOrEqual(32);
  }, 300_000);

  it("pushes one addvmail to exactly its vnode", async () => {
    const target = names[7] as string;
    const domain = `${target}.test`;
    await cli(["vnode", "set", target, "--mail-hostname", `mail.${domain}`]);
    await cli(["addvmaildomain", target, domain, "--skip-dns-check"]);
    const before = new Map(swarm.agents.map((a) => [a.name, a.host.calls.length]));
    await cli(["addvmail", target, `alice@${domain}`]);
    const host = swarm.get(target)?.host;
    await until(
      async () => (host?.mailboxes.has(`alice@${domain}`) ? true : undefined),
      30_000,
      "the mailbox on its vnode",
    );
    const others = swarm.agents.filter((a) => a.name !== target);
    expect(others.filter((a) => a.host.mailboxes.has(`alice@${domain}`))).toEqual([]);
    // Nothing else was told anything by this change (the reconciler has nothing to repair).
    expect(others.filter((a) => a.host.calls.length !== before.get(a.name)).map((a) => a.name)).toEqual([]);
    // And status shows it at its generation.
    await until(
      async () => {
        const row = (await status()).find((r) => r.vnode === target);
        return row && row.generation > 0 && row.appliedGeneration === row.generation ? row : undefined;
      },
      30_000,
      "status showing the vnode at its generation",
    );
  }, 120_000);

  it("writes health at a bounded count of statements and rows, not one per report", async () => {
    type Counts = Record<"reports" | "statements" | "vnodes" | "services" | "samples", number>;
    const counters = async (): Promise<Counts> => ({
      reports: (await serve.metric("netserva_controller_health_reports_total")) ?? 0,
      statements: (await serve.metric("netserva_controller_health_statements_total")) ?? 0,
      vnodes: (await serve.metric('netserva_controller_health_rows_total{table="vnodes"}')) ?? 0,
      services: (await serve.metric('netserva_controller_health_rows_total{table="mail_services"}')) ?? 0,
      samples: (await serve.metric('netserva_controller_health_rows_total{table="mail_health_history"}')) ?? 0,
    });
    // Start from a settled fleet: what the other tests changed (a vnode's first report, a new
    // generation reported) writes its rows once, and may still be doing so under load. Wait for
    // a window that writes no daemon row while flushes went on: a round of reports, and a
    // liveness row per vnode (each flush writes a vnode's changed rows with its liveness, every
    // 5 s). A round of reports alone was not enough: under load a flush can take longer than a
    // round, and CI counted 20 vnodes' first rows, still being written, as steady state.
    let settled = await counters();
    await until(
      async () => {
        const now = await counters();
        if (now.reports - settled.reports < AGENTS || now.vnodes - settled.vnodes < AGENTS) return undefined;
        if (now.services === settled.services) return true;
        settled = now;
        return undefined;
      },
      120_000,
      "a round of reports that changes no daemon row",
    );
    const before = await counters();
    // Twenty rounds of reports from every agent (counted, not timed).
    const after = await until(
      async () => {
        const now = await counters();
        return now.reports - before.reports >= AGENTS * 20 ? now : undefined;
      },
      120_000,
      "twenty rounds of health reports",
    );
    const d = (k: keyof Counts): number => after[k] - before[k];
    const rounds = d("reports") / AGENTS;
    // One report used to cost ~5 statements and a row in vnodes plus one per daemon: now the
    // whole fleet's reports share a flush, liveness is rewritten every 5 s (every ~10th report
    // at this interval), daemon rows only when they change, history once a minute per vnode.
    expect(d("statements")).toBeLessThanOrEqual(rounds + 5);
    expect(d("vnodes")).toBeLessThanOrEqual(d("reports") / 4);
    expect(d("services")).toBeLessThanOrEqual(d("reports") / 20);
    expect(d("samples")).toBeLessThanOrEqual(AGENTS);
  }, 300_000);

  it("reads no rows in a refresh while nothing changes, whatever the fleet's size", async () => {
    const counters = async (): Promise<{ refreshes: number; rows: number }> => ({
      refreshes: (await serve.metric("netserva_controller_fleet_refreshes_total")) ?? 0,
      rows:
        ((await serve.metric('netserva_controller_fleet_refresh_rows_total{table="vnodes"}')) ?? 0) +
        ((await serve.metric('netserva_controller_fleet_refresh_rows_total{table="certificates"}')) ?? 0),
    });
    // The first refresh read the whole fleet (every vnode); after that, only changed rows. A
    // stretch of five refreshes that read no row at all, with every vnode enrolled and linked
    // (a refresh that read the whole fleet would read AGENTS rows every time). Polled, not
    // timed: other work may change a row now and then (another test's vnode, a revocation).
    await until(
      async () => {
        const rows = (await status()).filter((r) => names.includes(r.vnode));
        return rows.length === AGENTS && rows.every((r) => r.connected) ? true : undefined;
      },
      240_000,
      "every swarm vnode connected",
    );
    expect((await counters()).rows).toBeGreaterThanOrEqual(AGENTS);
    let start = await counters();
    const quiet = await until(
      async () => {
        const now = await counters();
        if (now.rows !== start.rows) {
          start = now;
          return undefined;
        }
        return now.refreshes - start.refreshes >= 5 ? now : undefined;
      },
      120_000,
      "five refreshes in a row that read no row",
    );
    expect(quiet.rows - start.rows).toBe(0);
    expect(quiet.refreshes - start.refreshes).toBeGreaterThanOrEqual(5);
  }, 300_000);

  it("revoking one vnode disconnects that agent only", async () => {
    // Its own victim, so the other tests (in any order) keep all of `names` enrolled.
    const victim = `swvictim${Date.now().toString(36)}`;
    await swarm.add(victim);
    await until(
      async () => ((await status()).find((r) => r.vnode === victim)?.connected ? true : undefined),
      120_000,
      "the victim live",
    );
    /** The controller's "link dropped" log lines: which vnodes' links it closed, and why. */
    const dropped = (): string[] =>
      serve
        .stderr()
        .split("\n")
        .filter((line) => line.includes('"link dropped"'))
        .map((line) => (JSON.parse(line) as { vnode?: string }).vnode ?? "");
    const droppedBefore = dropped().length;
    const fanOut = async (): Promise<{ pushes: number; turns: number }> => ({
      pushes: (await serve.metric("netserva_controller_revocation_pushes_total")) ?? 0,
      turns: (await serve.metric("netserva_controller_revocation_fanout_turns_total")) ?? 0,
    });
    const fanOutBefore = await fanOut();
    await cli(["vnode", "revoke", victim]);
    await until(
      async () => {
        const rows = await status();
        const mine = rows.filter((r) => names.includes(r.vnode) || r.vnode === victim);
        const down = mine.filter((r) => !r.connected).map((r) => r.vnode);
        return down.length === 1 && down[0] === victim ? mine : undefined;
      },
      60_000,
      "the revoked vnode down and every other one live",
    );
    // The controller closed the victim's link and no other: the rest keep their connections.
    // (status shows the revocation at once; the fleet drops the link at its next refresh.)
    await until(
      async () => (dropped().slice(droppedBefore).includes(victim) ? true : undefined),
      30_000,
      "the victim's link dropped",
    );
    expect(dropped().slice(droppedBefore)).toEqual([victim]);
    // The new list went to every other link, a slice of links per turn of the controller's event
    // loop (16 a turn: at least AGENTS / 16 turns), not all in one task.
    const fanOutAfter = await until(
      async () => {
        const now = await fanOut();
        return now.pushes - fanOutBefore.pushes >= AGENTS ? now : undefined;
      },
      30_000,
      "the revocation fan-out counted",
    );
    const pushes = fanOutAfter.pushes - fanOutBefore.pushes;
    expect(fanOutAfter.turns - fanOutBefore.turns).toBeGreaterThanOrEqual(Math.ceil(pushes / 16));
  }, 120_000);
});
