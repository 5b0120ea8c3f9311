// The deliver service against a real agent (in process, without a mail host, so every state it
// is sent is refused): a refusal is recorded with the agent's words and shown by `status` and
// `mail:status`; a newer generation starts the count again; a command run inside serve pushes over
// the daemon's link; and a whole-state push (vnode set) checks the agent's certificate against the
// revocation list like every other path.
import { readFileSync } from "node:fs";
import { request } from "node:https";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Certificate, Vnode } from "../../controller/db/entities/index.ts";
import { createDeliverService, deliverServiceFor } from "../../controller/fleet/deliver.ts";
import type { AgentClient } from "../../controller/fleet/agent-client.ts";
import { mailTlsIssuerFor } from "../../controller/pki/mail-tls.ts";
import { NetservaError } from "../../common/errors.ts";
import { homePaths } from "../../controller/home/home-paths.ts";
import { startHarness, type Harness } from "../helpers/controller-harness.ts";

let harness: Harness;

async function statusOf(name: string): Promise<Record<string, unknown> | undefined> {
  const result = await harness.cli(["status", "--json"]);
  return (JSON.parse(result.out) as Array<Record<string, unknown>>).find((r) => r["vnode"] === name);
}

async function until(predicate: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await predicate()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** Pings the agent on `port` has answered so far (its metrics, read with the controller's certificate). */
function pingsAnswered(port: number, vnode: string): Promise<number> {
  const home = (f: string): string => readFileSync(join(harness.home, f), "utf8");
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: "127.0.0.1",
        port,
        path: "/metrics",
        ca: home("ca/ca.crt"),
        cert: home("controller.crt"),
        key: home("controller.key"),
        servername: vnode,
      },
      (res) => {
        let body = "";
        res.on("data", (chunk: Buffer) => (body += chunk.toString()));
        res.on("end", () => {
          const line = body
            .split("\n")
            .find(
              (l) =>
                /^netserva_agent_commands_total\{/.test(l) && l.includes('command="Ping"') && l.includes('result="ok"'),
            );
          resolve(Number(line?.split(" ").pop() ?? 0));
        });
      },
    );
    req.on("error", reject);
    req.end();
  });
}

beforeAll(async () => {
  harness = await startHarness();
});

afterAll(async () => {
  await harness?.close();
});

describe("deliver", () => {
  it("a refused state is recorded with the agent's words and shown by status and mail:status", async () => {
    await harness.addAgent("vn-refuse");
    await until(async () => (await statusOf("vn-refuse"))?.["connected"] === true, 10_000, "vn-refuse up");
    const set = await harness.cli(["vnode", "set", "vn-refuse", "--rspamd", "0"]);
    expect(set.code).toBe(0); // stored; the push is an outcome, not the command's failure
    expect(set.err).toMatch(/not pushed: vnode vn-refuse refused generation \d+: .*without a mail host/);
    const row = await statusOf("vn-refuse");
    expect(row?.["refused"]).toMatch(/without a mail host/);
    expect(row?.["refusedGeneration"]).toBe(row?.["generation"]);
    expect(row?.["refusedCount"]).toBeGreaterThanOrEqual(1);
    expect(Date.parse(String(row?.["retryAt"]))).toBeGreaterThan(Date.now() - 60_000);
    const table = await harness.cli(["status"]);
    expect(table.out).toMatch(/generation \d+: .*without a mail host/);
    const mail = JSON.parse((await harness.cli(["mail:status", "vn-refuse", "--json"])).out) as {
      refused: { generation: number; reason: string } | null;
      problems: string[];
    };
    expect(mail.refused?.reason).toMatch(/without a mail host/);
    expect(mail.problems.join("; ")).toMatch(/refused: generation \d+/);
    expect((await harness.cli(["mail:status", "vn-refuse"])).out).toMatch(/REFUSED/);
    // A newer generation is a new attempt: its count starts at one.
    const again = await harness.cli(["vnode", "set", "vn-refuse", "--clamav", "0"]);
    expect(again.err).toMatch(/refused generation/);
    const after = await statusOf("vn-refuse");
    expect(after?.["refusedGeneration"]).toBe(after?.["generation"]);
    expect(after?.["refusedGeneration"]).not.toBe(row?.["refusedGeneration"]);
  });

  it("a connection opened ahead (warm) is the one the push uses; one left unused is closed", async () => {
    const { agent } = await harness.addAgent("vn-warm", { metrics: true });
    const port = agent.metricsPort ?? 0;
    await until(async () => (await statusOf("vn-warm"))?.["connected"] === true, 10_000, "vn-warm up");
    const generation = Number((await statusOf("vn-warm"))?.["generation"]);
    const push = { vnode: "vn-warm", actor: "test", changes: { generation: generation + 1, list: [] } };
    // Without warm(): the push opens its client and pings first.
    const cold = deliverServiceFor(harness.db, homePaths(harness.home));
    const p0 = await pingsAnswered(port, "vn-warm");
    const first = await cold.deliver(push);
    cold.close?.();
    const p1 = await pingsAnswered(port, "vn-warm");
    expect(p1 - p0).toBe(1);
    // With warm(): the ping is the warm one; the push itself adds none, and says the same.
    const warm = deliverServiceFor(harness.db, homePaths(harness.home));
    warm.warm?.("vn-warm");
    await until(async () => (await pingsAnswered(port, "vn-warm")) === p1 + 1, 10_000, "the warm ping");
    const second = await warm.deliver(push);
    warm.close?.();
    expect(await pingsAnswered(port, "vn-warm")).toBe(p1 + 1);
    expect(first.refused).toMatch(/without a mail host/); // this agent has none: every push is refused
    expect(second.refused).toBe(first.refused);
    // Warmed and never used (the command failed before its push): close() drops it.
    const unused = deliverServiceFor(harness.db, homePaths(harness.home));
    unused.warm?.("vn-warm");
    unused.warm?.("no-such-vnode");
    await until(async () => (await pingsAnswered(port, "vn-warm")) === p1 + 2, 10_000, "the unused warm ping");
    unused.close?.();
    const after = deliverServiceFor(harness.db, homePaths(harness.home));
    expect(
      (await after.deliver({ ...push, changes: { ...push.changes, generation: generation + 2 } })).refused,
    ).toMatch(/without a mail host/);
    after.close?.();
  });

  it("a command run as serve runs it pushes over the daemon's live link: no connection or ping of its own", async () => {
    const { agent } = await harness.addAgent("vn-link", { metrics: true });
    const port = agent.metricsPort ?? 0;
    await until(async () => (await statusOf("vn-link"))?.["connected"] === true, 10_000, "vn-link up");
    const p0 = await pingsAnswered(port, "vn-link");
    harness.commandsInDaemon = true;
    try {
      const linked = await harness.cli(["vnode", "set", "vn-link", "--rspamd", "0"]);
      // Pushed and refused (this agent has no mail host): the agent answered on the fleet's link.
      expect(linked.err).toMatch(/refused generation \d+: .*without a mail host/);
      expect(await pingsAnswered(port, "vn-link")).toBe(p0);
    } finally {
      harness.commandsInDaemon = false;
    }
    // The same command as a CLI process of its own: its own connection, pinged first.
    const own = await harness.cli(["vnode", "set", "vn-link", "--rspamd", "1"]);
    expect(own.err).toMatch(/refused generation \d+: .*without a mail host/);
    expect(await pingsAnswered(port, "vn-link")).toBe(p0 + 1);
  });

  it("a stream the link's agent refused (HTTP/2 REFUSED_STREAM) is sent again on a connection of its own", async () => {
    const { agent } = await harness.addAgent("vn-refused-stream", { metrics: true });
    const port = agent.metricsPort ?? 0;
    await until(async () => (await statusOf("vn-refused-stream"))?.["connected"] === true, 10_000, "up");
    const generation = Number((await statusOf("vn-refused-stream"))?.["generation"]);
    let refusedOnLink = 0;
    // A link whose every call is refused the way grpc-js reports RST_STREAM(REFUSED_STREAM).
    const link: AgentClient = {
      call: async () => {
        refusedOnLink++;
        throw new NetservaError("unavailable", "Stream refused by server");
      },
      watchHealth: () => {
        throw new Error("not used");
      },
      close: () => undefined,
    };
    const paths = homePaths(harness.home);
    const service = createDeliverService({
      db: harness.db,
      paths,
      mailTls: mailTlsIssuerFor(paths, undefined),
      linkFor: (name) => (name === "vn-refused-stream" ? { client: link, connected: true } : undefined),
    });
    const p0 = await pingsAnswered(port, "vn-refused-stream");
    const outcome = await service.deliver({
      vnode: "vn-refused-stream",
      actor: "test",
      changes: { generation: generation + 1, list: [] },
    });
    expect(refusedOnLink).toBe(1);
    // The agent answered the second send (refused: it has no mail host), over its own connection.
    expect(outcome.refused).toMatch(/without a mail host/);
    expect(await pingsAnswered(port, "vn-refused-stream")).toBe(p0 + 1);
  });

  it("a whole-state push refuses an agent whose certificate was revoked (the vnode still enrolled)", async () => {
    await harness.addAgent("vn-revoked-cert");
    await until(async () => (await statusOf("vn-revoked-cert"))?.["connected"] === true, 10_000, "vn up");
    const em = harness.db.em().fork();
    const vnode = await em.findOneOrFail(Vnode, { name: "vn-revoked-cert" });
    await em.nativeUpdate(Certificate, { vnodeId: vnode.id, revokedAt: null }, { revokedAt: new Date() });
    const set = await harness.cli(["vnode", "set", "vn-revoked-cert", "--rspamd", "0"]);
    expect(set.err).toMatch(/not pushed: .*revoked/);
    expect((await statusOf("vn-revoked-cert"))?.["refused"]).toBeNull();
  });
});
