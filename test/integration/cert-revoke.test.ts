// Revocation of any certificate the CA issued, not only agents': `cert list` shows them all,
// `cert revoke SERIAL` reaches the agents with the fleet's push and ends connections that are
// already open: a monitor's keep-alive connection to /metrics and another controller's
// health stream on the gRPC channel.
import { request, Agent } from "node:https";
import type { TLSSocket } from "node:tls";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { create } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { AgentService } from "../../common/gen/netserva/mail/v1/agent_pb.ts";
import { CommandMetaSchema } from "../../common/gen/netserva/mail/v1/command_pb.ts";
import { issueCertificate } from "../../common/pki/ca.ts";
import { createKeyAndCsr } from "../../common/pki/keys.ts";
import { inspectCertificate } from "../../common/pki/inspect.ts";
import { recordCertificate } from "../../controller/pki/certificate-records.ts";
import { startHarness, type Harness } from "../helpers/controller-harness.ts";

let harness: Harness;
let agentAddress = "";
let metricsPort = 0;
let caPem = "";

interface Row {
  serial: string;
  role: string;
  identity: string;
  state: string;
}

async function certList(...args: string[]): Promise<Row[]> {
  const result = await harness.cli(["cert", "list", "--json", ...args]);
  expect(result.code).toBe(0);
  return JSON.parse(result.out) as Row[];
}

async function until(predicate: () => boolean | Promise<boolean>, ms: number): Promise<void> {
  const started = Date.now();
  while (Date.now() - started < ms) {
    if (await predicate()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`condition not met within ${ms} ms`);
}

async function issueRecorded(
  role: "controller" | "monitor",
  identity: string,
): Promise<{ cert: string; key: string; serial: string }> {
  const { keyPem, csrPem } = await createKeyAndCsr({ commonName: identity });
  const issued = issueCertificate({
    caKeyPem: readFileSync(join(harness.home, "ca", "ca.key"), "utf8"),
    caCertPem: caPem,
    csrPem,
    role,
    identity,
    validSeconds: 3600,
  });
  await recordCertificate(harness.db.em(), { pem: issued.certPem, vnodeId: null });
  return { cert: issued.certPem, key: keyPem, serial: inspectCertificate(issued.certPem).serialHex };
}

function get(agent: Agent, port = metricsPort, servername = "vn1"): Promise<{ status: number; socket: TLSSocket }> {
  return new Promise((resolve, reject) => {
    let socket: TLSSocket | undefined;
    const req = request({ host: "127.0.0.1", port, path: "/metrics", agent, servername }, (res) => {
      res.resume();
      res.on("end", () => (socket ? resolve({ status: res.statusCode ?? 0, socket }) : reject(new Error("no socket"))));
    });
    req.on("socket", (s) => (socket = s as TLSSocket));
    req.on("error", reject);
    req.end();
  });
}

/** Whether the controller saved a health report from this vnode after `since` (epoch ms). */
async function reportedSince(name: string, since: number): Promise<boolean> {
  const status = await harness.cli(["status", "--json"]);
  const row = (JSON.parse(status.out) as Array<Record<string, unknown>>).find((r) => r["vnode"] === name);
  return row?.["connected"] === true && Date.parse(String(row["lastHealthAt"])) > since;
}

beforeAll(async () => {
  harness = await startHarness();
  caPem = readFileSync(join(harness.home, "ca", "ca.crt"), "utf8");
  const added = await harness.addAgent("vn1", { metrics: true });
  agentAddress = added.address;
  metricsPort = added.agent.metricsPort ?? 0;
  await until(async () => {
    const status = await harness.cli(["status", "--json"]);
    return (JSON.parse(status.out) as Array<Record<string, unknown>>)[0]?.["connected"] === true;
  }, 10_000);
});

afterAll(async () => {
  await harness?.close();
});

describe("cert list / cert revoke", () => {
  it("lists the controller's, the agents' and the monitors' certificates", async () => {
    // Its own monitor certificate: the other tests issue and revoke theirs, in any order.
    const monitor = await harness.cli(["cert", "issue-monitor", "prom-list", "--out", join(harness.dir, "prom-list")]);
    expect(monitor.code).toBe(0);
    const rows = await certList();
    expect(rows.map((r) => `${r.role}/${r.identity}/${r.state}`)).toEqual(
      expect.arrayContaining(["agent/vn1/valid", "controller/controller/valid", "monitor/prom-list/valid"]),
    );
    const monitors = await certList("--role", "monitor");
    expect(monitors.map((r) => r.identity)).toContain("prom-list");
    expect(monitors.every((r) => r.role === "monitor")).toBe(true);
  });

  it("a revoked monitor certificate's open keep-alive connection to /metrics is closed at once", async () => {
    const dir = join(harness.dir, "prom");
    const issued = await harness.cli(["cert", "issue-monitor", "prom", "--out", dir]);
    expect(issued.code, issued.err).toBe(0);
    const cert = readFileSync(join(dir, "prom.crt"), "utf8");
    const key = readFileSync(join(dir, "prom.key"), "utf8");
    const agent = new Agent({ keepAlive: true, maxSockets: 1, ca: caPem, cert, key });
    const first = await get(agent);
    expect(first.status).toBe(200);
    let closed = false;
    first.socket.once("close", () => (closed = true));
    const serial = inspectCertificate(cert).serialHex;
    const revoked = await harness.cli(["cert", "revoke", serial, "--yes"]);
    expect(revoked.code).toBe(0);
    expect(revoked.out).toMatch(/revoked/);
    await harness.controller.fleet.refresh();
    await until(() => closed, 10_000);
    // A new connection with it is refused too.
    const again = await get(agent).catch(() => ({ status: 0 }));
    expect(again.status === 403 || again.status === 0).toBe(true);
    agent.destroy();
    expect((await certList("--role", "monitor"))[0]?.state).toBe("revoked");
  });

  it("a revoked controller certificate's open health stream on the agent's channel ends at once", async () => {
    const other = await issueRecorded("controller", "ctl2");
    const transport = createGrpcTransport({
      baseUrl: `https://${agentAddress}`,
      nodeOptions: { ca: caPem, cert: other.cert, key: other.key, servername: "vn1" },
    });
    const client = createClient(AgentService, transport);
    const stream = client.watchHealth({ intervalMs: 200 });
    const iterator = stream[Symbol.asyncIterator]();
    expect((await iterator.next()).done).toBe(false);
    const revoked = await harness.cli(["cert", "revoke", other.serial, "--yes"]);
    expect(revoked.code).toBe(0);
    await harness.controller.fleet.refresh();
    // Reports stop: the stream fails (connection closed) within the push, not after a timeout.
    const ended = (async (): Promise<string> => {
      try {
        for (;;) {
          const next = await iterator.next();
          if (next.done) return "ended";
        }
      } catch (error) {
        return String(error);
      }
    })();
    expect(await ended).toBeTruthy();
    await expect(
      client.ping({ meta: create(CommandMetaSchema, { requestId: "after-revoke" }) }, { timeoutMs: 5000 }),
    ).rejects.toThrow();
  });

  it("an agent that was down when a certificate was revoked gets the list once it is back", async () => {
    const late = await harness.addAgent("vn-late", { metrics: true });
    const port = late.agent.metricsPort ?? 0;
    const dir = join(harness.dir, "prom-late");
    expect((await harness.cli(["cert", "issue-monitor", "prom-late", "--out", dir])).code).toBe(0);
    const cert = readFileSync(join(dir, "prom-late.crt"), "utf8");
    const key = readFileSync(join(dir, "prom-late.key"), "utf8");
    const before = new Agent({ keepAlive: false, ca: caPem, cert, key });
    expect((await get(before, port, "vn-late")).status).toBe(200);
    before.destroy();
    // Down while the revocation is pushed: the push made with the new link finds nobody.
    await late.agent.close();
    const revoked = await harness.cli(["cert", "revoke", inspectCertificate(cert).serialHex, "--yes"]);
    expect(revoked.code).toBe(0);
    await harness.controller.fleet.refresh();
    const restartedAt = Date.now();
    await late.restart();
    // Back: its health reports resume, and with them the list reaches it (no new revocation).
    await until(() => reportedSince("vn-late", restartedAt), 20_000);
    await until(async () => {
      const after = new Agent({ keepAlive: false, ca: caPem, cert, key });
      const answer = await get(after, port, "vn-late").catch(() => ({ status: 0 }));
      after.destroy();
      return answer.status === 403 || answer.status === 0;
    }, 20_000);
  });

  it("refuses to revoke the controller's certificate in use, and an unknown serial is not found", async () => {
    const own = inspectCertificate(readFileSync(join(harness.home, "controller.crt"), "utf8")).serialHex;
    const refused = await harness.cli(["cert", "revoke", own, "--yes"]);
    expect(refused.code).toBe(4);
    expect(refused.err).toMatch(/the controller presents to agents/);
    const unknown = await harness.cli(["cert", "revoke", "7f00ff", "--yes"]);
    expect(unknown.code).toBe(3);
    const noYes = await harness.cli(["cert", "revoke", own]);
    expect(noYes.code).toBe(2);
  });
});
