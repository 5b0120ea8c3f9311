// Three `serve` processes on one PostgreSQL sharing three real agents (issue 16): every vnode is
// driven by exactly one controller through its lease. The holder of a vnode is SIGKILLed in the
// middle of a burst of `addvmail` run by CLIs on PostgreSQL (they commit, the holder is notified
// and pushes): another controller takes the lease over with a higher epoch, every mailbox ends
// live exactly once, the agent's applied generation only ever moves forwards, and the command log
// has each change once. Then a controller is cut off from PostgreSQL (its packets black-holed)
// while it keeps its agent links, run with the fault switch that makes it ignore its own clock as
// a paused holder would: once another controller took its vnode, the agent refuses its old epoch.
// Seconds go to the chaos table; limits only catch hangs.
import { copyFileSync, existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createCliContext } from "../../controller/cli/cli-context.ts";
import { runCommand } from "../../controller/cli/main.ts";
import { openDatabase, type Database } from "../../controller/db/open-database.ts";
import { recordChaos } from "../chaos/report.ts";
import type { CliRun } from "../helpers/controller-harness.ts";
import { until } from "../helpers/mail-fleet.ts";
import { startServeFleet, type ServeFleet, type ServeVnode } from "../helpers/serve-fleet.ts";
import { startServeProcess, type ServeProcess } from "../helpers/serve-process.ts";
import { startTcpCut, type TcpCut } from "../helpers/tcp-cut.ts";
import { freshPostgresUrl } from "../helpers/fresh-postgres.ts";

const isRoot = process.getuid?.() === 0;
const pgUrl = process.env["DATABASE_URL_TEST"];
const BURST = 16;

interface LeaseRow {
  vnode: string;
  holder: string | null;
  controller: string | null;
  epoch: bigint;
  live: boolean;
}

const freshPostgres = (url: string): Promise<string> => freshPostgresUrl(url, "leases");

describe.skipIf(!isRoot || !pgUrl)("three controllers on one PostgreSQL", () => {
  let url: string;
  let fleet: ServeFleet;
  let db: Database;
  let cut: TcpCut;
  const peers: ServeProcess[] = [];

  /** Another controller: the first one's CA copied into its home, its own certificate and name. */
  async function startPeer(name: string, env: Record<string, string>): Promise<ServeProcess> {
    const peer = await startServeProcess({
      env,
      args: ["--health-interval", "500"],
      config: { name },
      prepareHome: (home) => {
        mkdirSync(join(home, "ca"), { recursive: true, mode: 0o700 });
        for (const file of ["ca.key", "ca.crt"])
          copyFileSync(join(fleet.serve.home, "ca", file), join(home, "ca", file));
      },
    });
    peers.push(peer);
    return peer;
  }

  /** A command as an operator's CLI on PostgreSQL runs it: in its own process, not via a serve. */
  async function cli(argv: string[]): Promise<CliRun> {
    let out = "";
    let err = "";
    const env = { DATABASE_URL: url, NETSERVA_MAIL_HOME: fleet.serve.home, NETSERVA_MAIL_ACTOR: "tester" };
    const ctx = createCliContext({
      out: (t) => void (out += t),
      err: (t) => void (err += t),
      readStdin: async () => "",
      env,
      isTTY: false,
    });
    const code = await runCommand(argv, ctx);
    return { code, out, err };
  }

  async function leases(): Promise<LeaseRow[]> {
    const rows = await db
      .em()
      .getConnection()
      .execute<
        Array<{
          vnode: string;
          holder: string | null;
          controller: string | null;
          epoch: string | number;
          live: boolean;
        }>
      >(
        `select v.name as vnode, l.holder, c.name as controller, l.epoch, coalesce(l.expires_at > now(), false) as live
         from vnode_leases l join vnodes v on v.id = l.vnode_id left join controllers c on c.id = l.holder
         order by v.name`,
      );
    return rows.map((r) => ({ ...r, epoch: BigInt(String(r.epoch)) }));
  }

  const agentFile = (v: ServeVnode, file: string): string => join(fleet.serve.dir, `agent-${v.name}`, file);
  const agentNumber = (v: ServeVnode, file: string, key: string): number => {
    const path = agentFile(v, file);
    if (!existsSync(path)) return 0;
    return Number((JSON.parse(readFileSync(path, "utf8")) as Record<string, string>)[key] ?? 0);
  };

  beforeAll(async () => {
    if (!isRoot || !pgUrl) return;
    url = await freshPostgres(pgUrl);
    db = await openDatabase({ url, poolSize: 2 });
    fleet = await startServeFleet(["lsa", "lsb", "lsc"], "lse", { databaseUrl: url });
    await startPeer("ctl-b", { DATABASE_URL: url });
    // The third reaches PostgreSQL through a forwarder the test can black-hole.
    const target = new URL(url);
    cut = await startTcpCut({ host: target.hostname, port: Number(target.port || 5432) });
    const via = new URL(url);
    via.hostname = "127.0.0.1";
    via.port = String(cut.port);
    await startPeer("ctl-c", { DATABASE_URL: via.toString(), NETSERVA_FAULT_IGNORE_LEASE_LAPSE: "1" });
  }, 600_000);

  afterAll(async () => {
    for (const peer of peers) await peer.stop().catch(() => undefined);
    await fleet?.close();
    await cut?.close();
    await db?.close();
  }, 180_000);

  it("spreads the vnodes; a holder killed mid-burst is taken over and every change is live once; a cut-off holder's old epoch is refused", async () => {
    const [peerB, peerC] = peers as [ServeProcess, ServeProcess];
    // Spread: three controllers, three vnodes, one each; every vnode exactly one live holder.
    const spread = await until(
      async () => {
        const rows = await leases();
        const holders = new Set(rows.filter((r) => r.live).map((r) => r.holder));
        return rows.length === 3 && rows.every((r) => r.live && r.holder) && holders.size === 3 ? rows : undefined;
      },
      120_000,
      "one vnode per controller",
    );
    expect(spread.map((r) => r.controller).sort()).toEqual(["controller", "ctl-b", "ctl-c"]);
    await fleet.converged();

    // --- the holder of a vnode SIGKILLed in the middle of a burst of addvmail ----------------
    const victimLease = spread.find((r) => r.controller === "ctl-b");
    const victim = fleet.vnodes.find((v) => v.name === victimLease?.vnode);
    if (!victimLease || !victim) throw new Error("ctl-b holds no vnode");
    const addresses = Array.from({ length: BURST }, (_, i) => `burst${i}@${victim.domain}`);
    const applied: number[] = [];
    const sampler = setInterval(() => applied.push(agentNumber(victim, "applied.json", "generation")), 10);
    let killedAt = 0;
    let done = 0;
    const results: CliRun[] = [];
    const viaHolderMs: number[] = [];
    /** Watches the lease from the kill on, so the takeover's time is not the burst's. */
    let takeover: Promise<LeaseRow> | undefined;
    let takeoverSeconds = 0;
    const watchTakeover = (): Promise<LeaseRow> =>
      until(
        async () => {
          const row = (await leases()).find((r) => r.vnode === victim.name);
          if (!row?.live || row.holder === victimLease.holder) return undefined;
          takeoverSeconds = (performance.now() - killedAt) / 1000;
          return row;
        },
        120_000,
        "the victim's vnode taken over",
      );
    try {
      // Two streams of commands, each waiting for the holder's report before the next.
      await Promise.all(
        [0, 1].map(async (stream) => {
          for (let i = stream; i < BURST; i += 2) {
            const started = performance.now();
            const run = await cli(["addvmail", victim.name, addresses[i] ?? ""]);
            // Through a live holder (before the kill): commit, NOTIFY, the holder's push, its record.
            if (killedAt === 0 && /live on/.test(run.out)) viaHolderMs.push(performance.now() - started);
            results.push(run);
            done += 1;
            if (done === 4 && killedAt === 0) {
              killedAt = performance.now();
              peerB.child.kill("SIGKILL");
              takeover = watchTakeover();
            }
          }
        }),
      );
    } finally {
      clearInterval(sampler);
    }
    for (const r of results) expect(r.code, r.err).toBe(0);
    if (!takeover) throw new Error("the holder was never killed");
    const takenOver = await takeover;
    expect(takenOver.epoch).toBeGreaterThan(victimLease.epoch);
    const rows = await fleet.converged(180_000);
    const convergedSeconds = (performance.now() - killedAt) / 1000;
    // The burst's commands committed after the kill wait for a holder: the one taking the lease
    // pushes them at once (not after its reconciler's first health report and lag grace).
    const successorOfB = [fleet.serve, ...peers].find((p) => p !== peerB && holdsName(p, takenOver));
    const catchUp = (successorOfB?.stderr() ?? "")
      .split("\n")
      .filter((line) => line.includes("lease gained: pushing what the vnode has not applied"))
      .map((line) => JSON.parse(line) as { vnode: string; applied: number; generation: number })
      .filter((line) => line.vnode === victim.name);
    expect(catchUp.length, "the new holder's catch-up push").toBeGreaterThan(0);
    expect(catchUp[0]?.generation).toBeGreaterThan(catchUp[0]?.applied ?? Infinity);
    const mailboxes = (await fleet.lookupRows(victim)).mailboxes;
    for (const address of addresses) expect(mailboxes.filter((m) => m === address)).toHaveLength(1);
    const connection = db.em().getConnection();
    const logged = await connection.execute<Array<{ email: string; n: string | number }>>(
      `select args->>'email' as email, count(*) as n from command_log
       where command = 'addvmail' and result = 'ok' and vnode_name = ? group by args->>'email'`,
      [victim.name],
    );
    expect(logged.filter((r) => addresses.includes(r.email)).map((r) => Number(r.n))).toEqual(addresses.map(() => 1));
    const generations = await connection.execute<Array<{ generation: string | number }>>(
      // The operator's mutations (the reconciler's audit rows name the generation it found).
      "select generation from command_log where vnode_name = ? and actor = 'tester' and result = 'ok' and generation is not null order by generation",
      [victim.name],
    );
    const gens = generations.map((g) => Number(g.generation));
    expect(new Set(gens).size).toBe(gens.length);
    // The agent's applied generation, sampled all along: never backwards, and at the end the vnode's.
    for (let i = 1; i < applied.length; i += 1) expect(applied[i]).toBeGreaterThanOrEqual(applied[i - 1] ?? 0);
    const final = rows.find((r) => r.vnode === victim.name);
    expect(agentNumber(victim, "applied.json", "generation")).toBe(final?.generation);
    expect(agentNumber(victim, "lease-epoch.json", "epoch")).toBeGreaterThanOrEqual(Number(takenOver.epoch));
    recordChaos({
      fault: "controller SIGKILL (lease holder)",
      where: `3 controllers on PostgreSQL, mid-burst of ${BURST} addvmail`,
      times: 1,
      config: "new",
      mailAccepted: true,
      converged: true,
      secondsToConverge: convergedSeconds,
      lost: 0,
      duplicated: 0,
      note: `lease taken over after ${takeoverSeconds.toFixed(1)} s (TTL 10 s), epoch ${victimLease.epoch} → ${takenOver.epoch}; addvmail live through the holder in ${viaHolderMs
        .map((ms) => ms.toFixed(0))
        .join(
          ", ",
        )} ms per whole CLI run before the kill (opening the database, hashing the password, then the holder's push)`,
    });

    // --- a holder cut off from PostgreSQL, still linked to its agent --------------------------
    const before = await until(
      async () => {
        const row = (await leases()).find((r) => r.controller === "ctl-c" && r.live);
        return row;
      },
      120_000,
      "ctl-c holds a vnode",
    );
    const cutVnode = fleet.vnodes.find((v) => v.name === before.vnode);
    if (!cutVnode) throw new Error("unknown vnode");
    cut.blackhole();
    const successor = await until(
      async () => {
        const row = (await leases()).find((r) => r.vnode === cutVnode.name);
        return row?.live && row.controller !== "ctl-c" ? row : undefined;
      },
      120_000,
      "ctl-c's vnode taken over",
    );
    expect(successor.epoch).toBeGreaterThan(before.epoch);
    // The new holder announced its epoch to the agent on taking the lease.
    await until(
      async () => (agentNumber(cutVnode, "lease-epoch.json", "epoch") >= Number(successor.epoch) ? true : undefined),
      60_000,
      "the agent saw the new epoch",
    );
    cut.restore();
    // The successor paused while a change is committed: ctl-c (which believes it still holds the
    // vnode) is notified and pushes with its old epoch; the agent refuses it. Then the successor
    // resumes and pushes the change with its own epoch.
    const successorProcess = [fleet.serve, ...peers].find(
      (p) => p !== peerC && p.child.exitCode === null && p.child.signalCode === null && holdsName(p, successor),
    );
    successorProcess?.child.kill("SIGSTOP");
    let late: CliRun;
    try {
      const command = cli(["addvmail", cutVnode.name, `fenced@${cutVnode.domain}`]);
      await until(
        async () => (/refused our lease epoch/.test(peerC.stderr()) ? true : undefined),
        60_000,
        "ctl-c's push refused by the agent's fence",
      );
      successorProcess?.child.kill("SIGCONT");
      late = await command;
    } finally {
      successorProcess?.child.kill("SIGCONT");
    }
    expect(late.code, late.err).toBe(0);
    expect(late.out).toMatch(new RegExp(`live on ${cutVnode.name} at generation \\d+`));
    expect(peerC.stderr()).toContain(`lease epoch ${before.epoch} is older than epoch`);
    expect((await fleet.lookupRows(cutVnode)).mailboxes.filter((m) => m === `fenced@${cutVnode.domain}`)).toHaveLength(
      1,
    );
    recordChaos({
      fault: "controller cut off from PostgreSQL (lease holder)",
      where: "3 controllers on PostgreSQL, packets black-holed, agent links kept",
      times: 1,
      config: "new",
      mailAccepted: true,
      converged: true,
      lost: 0,
      duplicated: 0,
      note: `its epoch ${before.epoch} refused by the agent after the takeover (epoch ${successor.epoch})`,
    });
  }, 900_000);
});

/** Whether a serve process is the one named in a lease row (its config name). */
function holdsName(p: ServeProcess, row: LeaseRow): boolean {
  const config = JSON.parse(readFileSync(join(p.home, "controller.json"), "utf8")) as { name?: string };
  return config.name === row.controller;
}
