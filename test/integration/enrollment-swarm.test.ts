// Enrollment and renewal limits at fleet scale (issue 16): a thousand agents behind one address
// (a NAT, a hosting provider's egress) must not be throttled, so nothing is keyed by the source
// address but refusals. A real `serve` and a swarm of real agent daemons in this process
// (test/swarm/), every one enrolling from 127.0.0.1 with its own join token, then renewing its
// short-lived certificate about when the others do: every enrollment and every renewal goes
// through, and the controller counts no rate-limited request. PostgreSQL when scripts/test
// provides one, else the embedded PGlite.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { agentHomePaths, loadAgentIdentity } from "../../agent/home/agent-home.ts";
import { inspectCertificate } from "../../common/pki/inspect.ts";
import { until } from "../helpers/mail-fleet.ts";
import { startServeProcess, type ServeProcess } from "../helpers/serve-process.ts";
import { createSwarm, type Swarm } from "../swarm/swarm.ts";
import { freshPostgresUrl } from "../helpers/fresh-postgres.ts";

// Above the per-address budget of refused enrollments (20), so a limit keyed by address would show.
const AGENTS = 40;
/** Renewed at two thirds: every agent renews within the test, most of them close together. */
const CERTIFICATE_SECONDS = 30;
const pgUrl = process.env["DATABASE_URL_TEST"];

const freshPostgres = (url: string): Promise<string> => freshPostgresUrl(url, "enroll");

let serve: ServeProcess;
let swarm: Swarm;
const names = Array.from({ length: AGENTS }, (_, i) => `en${String(i).padStart(3, "0")}`);

async function cli(argv: string[]): Promise<string> {
  const r = await serve.cli(argv);
  if (r.code !== 0) throw new Error(`${argv.join(" ")}: exit ${r.code}: ${r.err}`);
  return r.out;
}

const rateLimited = async (method: "enroll" | "renew"): Promise<number> =>
  (await serve.metric(`netserva_controller_enrollment_refused_total{method="${method}",reason="rate_limited"}`)) ?? 0;

const serialOf = (home: string): string =>
  inspectCertificate(loadAgentIdentity(agentHomePaths(home)).certPem).serialHex;

beforeAll(async () => {
  serve = await startServeProcess({
    env: pgUrl ? { DATABASE_URL: await freshPostgres(pgUrl) } : {},
    args: ["--health-interval", "2000"],
    config: { agentCertificateSeconds: CERTIFICATE_SECONDS },
  });
  swarm = createSwarm({
    dir: mkdtempSync(join(tmpdir(), "nsm-swarm-")),
    controller: `127.0.0.1:${serve.port}`,
    // No fresh token on failure: a throttled enrollment fails the test.
    async addVnode(name, address) {
      return (await cli(["vnode", "add", name, "--address", address])).trim().split("\n").pop() ?? "";
    },
  });
}, 120_000);

afterAll(async () => {
  await swarm?.close();
  await serve?.stop();
});

describe(`${AGENTS} agents behind one address`, () => {
  it("all enroll and all renew, none rate-limited", async () => {
    // Ten at a time from the one address, each with its own join token.
    const agents = await swarm.addMany(names, 10);
    expect(agents.map((a) => a.name)).toEqual(names);
    expect(await rateLimited("enroll")).toBe(0);
    const first = new Map(agents.map((a) => [a.name, serialOf(a.home)]));
    // Every agent renews by itself at two thirds of its certificate's lifetime.
    const renewed = await until(
      async () => {
        const now = agents.filter((a) => serialOf(a.home) !== first.get(a.name));
        return now.length === AGENTS ? now : undefined;
      },
      240_000,
      "every agent renewed its certificate",
    );
    expect(renewed).toHaveLength(AGENTS);
    expect(await rateLimited("renew")).toBe(0);
    expect(await rateLimited("enroll")).toBe(0);
  }, 420_000);
});
