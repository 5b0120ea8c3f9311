// The controller restarted under a swarm of agents (issue 16): a real `serve` process and swarm
// agents in this process (test/swarm/: real agent daemons, each enrolled for real, the mail host
// records what it is told). After the restart every agent is linked again and at its
// generation, including a change committed while no controller ran; the links connect through
// the bounded gate, and the restarted controller keeps its leases all along (none lapses, no link
// is dropped and made again: the 1,000-agent restart lost every lease twice while its first
// reports' database work held the pool, see vnode-leases.test.ts for that case made exact).
// PostgreSQL when scripts/test provides one, else the embedded PGlite (no leases, no change
// while down).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createCliContext } from "../../controller/cli/cli-context.ts";
import { runCommand } from "../../controller/cli/main.ts";
import { restartServeProcess, startServeProcess, type ServeProcess } from "../helpers/serve-process.ts";
import { until } from "../helpers/mail-fleet.ts";
import { createSwarm, type Swarm } from "../swarm/swarm.ts";
import { freshPostgresUrl } from "../helpers/fresh-postgres.ts";

const AGENTS = 20;
const HEALTH_INTERVAL_MS = 500;
const pgUrl = process.env["DATABASE_URL_TEST"];

interface StatusRow {
  vnode: string;
  status: string;
  connected: boolean;
  generation: number;
  appliedGeneration: number;
}

let serve: ServeProcess;
let swarm: Swarm;
let swarmDir = "";
const names = Array.from({ length: AGENTS }, (_, i) => `rs${String(i).padStart(3, "0")}`);

async function cli(argv: string[]): Promise<string> {
  const r = await serve.cli(argv);
  if (r.code !== 0) throw new Error(`${argv.join(" ")}: exit ${r.code}: ${r.err}`);
  return r.out;
}

/** Every swarm agent connected and at its generation, as `status` shows it. */
async function allCurrent(): Promise<StatusRow[] | undefined> {
  const rows = (JSON.parse(await cli(["status", "--json"])) as StatusRow[]).filter((r) => names.includes(r.vnode));
  return rows.length === AGENTS && rows.every((r) => r.connected && r.appliedGeneration === r.generation)
    ? rows
    : undefined;
}

beforeAll(async () => {
  serve = await startServeProcess({
    env: pgUrl ? { DATABASE_URL: await freshPostgresUrl(pgUrl, "restart") } : {},
    args: ["--health-interval", String(HEALTH_INTERVAL_MS)],
  });
  swarmDir = mkdtempSync(join(tmpdir(), "nsm-swarm-restart-"));
  swarm = createSwarm({
    dir: swarmDir,
    controller: `127.0.0.1:${serve.port}`,
    async addVnode(name, address) {
      return (await cli(["vnode", "add", name, "--address", address])).trim().split("\n").pop() ?? "";
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
  if (swarmDir) rmSync(swarmDir, { recursive: true, force: true });
});

describe(`a controller restarted under ${AGENTS} swarm agents`, () => {
  it("links every agent again, each at its generation, through the bounded gate, keeping its leases", async () => {
    const target = names[3] as string;
    const domain = `${target}.test`;
    await cli(["vnode", "set", target, "--mail-hostname", `mail.${domain}`]);
    await cli(["addvmaildomain", target, domain, "--skip-dns-check"]);
    await cli(["addvmail", target, `before@${domain}`]);
    await until(allCurrent, 240_000, "every agent connected and current before the restart");

    await serve.stop();
    // Committed while no controller runs (PostgreSQL: an operator's CLI on the database): the
    // restarted controller owes the agent this generation.
    if (pgUrl) {
      let err = "";
      const code = await runCommand(
        ["addvmail", target, `during@${domain}`],
        createCliContext({
          out: () => undefined,
          err: (t) => void (err += t),
          readStdin: async () => "",
          env: { ...serve.env, NETSERVA_MAIL_ACTOR: "tester" },
          isTTY: false,
        }),
      );
      // Stored, and said so: no controller holds the lease to push it now.
      expect(`${code}: ${err}`).toMatch(/no controller holds vnode .* is stored/);
    }
    serve = await restartServeProcess(serve);

    // Linked by the new process (its "vnode up" lines): status alone counts a vnode connected for
    // 15 s after the previous process last heard from it.
    const linked = (): Set<string> =>
      new Set(
        serve
          .stderr()
          .split("\n")
          .filter((line) => line.includes('"vnode up"'))
          .map((line) => (JSON.parse(line) as { vnode?: string }).vnode ?? ""),
      );
    const rows = await until(
      async () => (names.every((n) => linked().has(n)) ? allCurrent() : undefined),
      240_000,
      "every agent linked by the restarted controller, connected and current",
    );
    expect(rows.map((r) => r.vnode).sort()).toEqual(names);
    const host = swarm.get(target)?.host;
    expect(host?.mailboxes.has(`before@${domain}`)).toBe(true);
    if (pgUrl) expect(host?.mailboxes.has(`during@${domain}`)).toBe(true);
    // A thousand links would not open a thousand handshakes at once: the gate's bound holds.
    expect(await serve.metric('netserva_controller_link_connects{which="peak"}')).toBeLessThanOrEqual(32);
    // The restarted controller kept what it gained: no lease lapsed, no link dropped and made again.
    const log = serve.stderr();
    expect(log).not.toContain("lease lapsed by our clock");
    expect(log).not.toContain('"link dropped"');
  }, 600_000);
});
