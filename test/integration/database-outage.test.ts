// PostgreSQL goes away under a running `serve` and comes back (issue 13). A real `serve` process
// on PostgreSQL reached through a TCP forwarder the test cuts (every connection reset, new ones
// refused) — the shared cluster keeps running for the other test files. While the database is
// away: serve keeps its pid, says the database is unreachable (log and metric), CLI commands fail
// with exit 5 and a message naming the database, and nothing they attempted is written. When it
// is back, without a restart: a mutation succeeds and is logged, the agent's health is written
// again. Transitions are polled with generous limits, never timed.
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { silentLogger } from "../../common/log.ts";
import { runAgentCli } from "../../agent/cli/main.ts";
import { startAgentDaemon } from "../../agent/agent-daemon.ts";
import type { AgentDaemon } from "../../agent/agent-daemon.ts";
import { createCliContext } from "../../controller/cli/cli-context.ts";
import { runCommand } from "../../controller/cli/main.ts";
import { openDatabase } from "../../controller/db/open-database.ts";
import type { Database } from "../../controller/db/open-database.ts";
import { CommandLog, VMailDomain, Vnode } from "../../controller/db/entities/index.ts";
import { freePort } from "../helpers/controller-harness.ts";
import { startServeProcess } from "../helpers/serve-process.ts";
import type { ServeProcess } from "../helpers/serve-process.ts";
import { startTcpCut } from "../helpers/tcp-cut.ts";
import type { TcpCut } from "../helpers/tcp-cut.ts";

const pgUrl = process.env["DATABASE_URL_TEST"];
const DB_UP = "netserva_controller_database_up";

let serve: ServeProcess | undefined;
let forwarder: TcpCut | undefined;
let direct: Database | undefined;
let agent: AgentDaemon | undefined;
let dir = "";
let proxiedUrl = "";

async function until(what: string, predicate: () => Promise<boolean>, ms = 90_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await predicate()) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${what}: not within ${ms} ms`);
}

function logLines(s: ServeProcess, message: string): Array<Record<string, unknown>> {
  return s
    .stderr()
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((l) => l["msg"] === message);
}

/** The CLI as an operator runs it with DATABASE_URL set: in its own context, opening the database. */
async function directCli(argv: string[]): Promise<{ code: number; err: string }> {
  let err = "";
  const ctx = createCliContext({
    out: () => undefined,
    err: (t) => void (err += t),
    readStdin: async () => "",
    env: { NETSERVA_MAIL_HOME: serve?.home ?? "", NETSERVA_MAIL_ACTOR: "tester", DATABASE_URL: proxiedUrl },
    isTTY: false,
  });
  return { code: await runCommand(argv, ctx), err };
}

async function domainCount(name: string): Promise<number> {
  return direct!.em().count(VMailDomain, { domain: name });
}

async function loggedFor(name: string): Promise<number> {
  const rows = await direct!.em().find(CommandLog, { command: "addvmaildomain" });
  return rows.filter((r) => JSON.stringify(r.args ?? {}).includes(name)).length;
}

describe.skipIf(!pgUrl)("PostgreSQL stopped under a running serve", () => {
  beforeAll(async () => {
    const admin = await openDatabase({ url: pgUrl });
    const name = `nsm_outage_${randomUUID().replace(/-/g, "").slice(0, 12)}`;
    await admin.em().getConnection().execute(`create database ${name}`);
    await admin.close();
    const real = new URL(pgUrl!);
    real.pathname = `/${name}`;
    forwarder = await startTcpCut({ host: real.hostname, port: Number(real.port) });
    const proxied = new URL(real.toString());
    proxied.port = String(forwarder.port);
    proxiedUrl = proxied.toString();
    // The test's own view of the database, not through the forwarder.
    direct = await openDatabase({ url: real.toString(), poolSize: 2 });
    serve = await startServeProcess({ env: { DATABASE_URL: proxiedUrl }, args: ["--health-interval", "500"] });

    dir = mkdtempSync(join(tmpdir(), "nsm-pgdown-"));
    const address = `127.0.0.1:${await freePort()}`;
    const added = await serve.cli(["vnode", "add", "vn1", "--address", address]);
    expect(added.code, added.err).toBe(0);
    const token = added.out.trim().split("\n").pop() ?? "";
    const home = join(dir, "agent-vn1");
    let err = "";
    const io = { out: () => undefined, err: (t: string) => void (err += t) };
    const code = await runAgentCli(
      ["enroll", "--controller", `127.0.0.1:${serve.port}`, "--token", token, "--home", home],
      io as never,
    );
    expect(code, err).toBe(0);
    agent = await startAgentDaemon({ home, listen: address, log: silentLogger });
    await until("vn1 connected", async () => {
      const rows = JSON.parse((await serve!.cli(["status", "--json"])).out) as Array<Record<string, unknown>>;
      return rows.find((r) => r["vnode"] === "vn1")?.["connected"] === true;
    });
  }, 180_000);

  afterAll(async () => {
    await agent?.close().catch(() => undefined);
    await serve?.stop();
    if (serve) rmSync(serve.dir, { recursive: true, force: true });
    await forwarder?.close();
    await direct?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("stays up, refuses commands with exit 5 while away, writes nothing, resumes when back", async () => {
    const s = serve!;
    const pid = s.child.pid;
    const before = await s.cli(["addvmaildomain", "vn1", "before.test", "--skip-dns-check"]);
    expect(before.code, before.err).toBe(0);
    expect(await s.metric(DB_UP)).toBe(1);

    forwarder!.cut();
    await until("serve reports the database unreachable", async () => (await s.metric(DB_UP)) === 0);
    expect(logLines(s, "database unreachable").length).toBeGreaterThan(0);

    const outage = ["away1.test", "away2.test", "away3.test"];
    for (const domain of outage) {
      const run = await s.cli(["addvmaildomain", "vn1", domain, "--skip-dns-check"]);
      expect(run.code, run.err).toBe(5);
      expect(run.err).toMatch(/database.*unreachable/i);
    }
    const status = await s.cli(["status"]);
    expect(status.code).toBe(5);
    expect(status.err).toMatch(/database.*unreachable/i);
    const local = await directCli(["addvmaildomain", "vn1", "away-direct.test", "--skip-dns-check"]);
    expect(local.code, local.err).toBe(5);
    expect(local.err).toMatch(/database/i);
    expect(s.child.exitCode).toBeNull();
    expect(s.child.pid).toBe(pid);

    // Health written before the cut; it must move again after the restore.
    const seenBefore = (await direct!.em().findOneOrFail(Vnode, { name: "vn1" })).lastSeenAt;
    forwarder!.restore();
    await until("serve reports the database reachable", async () => (await s.metric(DB_UP)) === 1);
    expect(logLines(s, "database reachable again").length).toBeGreaterThan(0);

    const after = await s.cli(["addvmaildomain", "vn1", "after.test", "--skip-dns-check"]);
    expect(after.code, after.err).toBe(0);
    await until("health written again", async () => {
      const seen = (await direct!.em().findOneOrFail(Vnode, { name: "vn1" })).lastSeenAt;
      return seen != null && (seenBefore == null || seen > seenBefore);
    });
    const status2 = await s.cli(["status", "--json"]);
    expect(status2.code, status2.err).toBe(0);

    // Rows and the command log together or not at all.
    for (const domain of [...outage, "away-direct.test"]) {
      expect(await domainCount(domain), domain).toBe(0);
      expect(await loggedFor(domain), domain).toBe(0);
    }
    for (const domain of ["before.test", "after.test"]) {
      expect(await domainCount(domain), domain).toBe(1);
      expect(await loggedFor(domain), domain).toBe(1);
    }
    expect(s.child.pid).toBe(pid);
    expect(s.child.exitCode).toBeNull();
    expect(await s.metric('netserva_controller_last_resort_total{kind="uncaught_exception"}')).toBe(0);
    expect(await s.metric('netserva_controller_last_resort_total{kind="unhandled_rejection"}')).toBe(0);
  }, 300_000);
});
