// The agent's /metrics over HTTPS with client certificates, checked by Prometheus' own promtool.
import { execFile } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { request } from "node:https";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { create } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { AgentService } from "../../common/gen/netserva/mail/v1/agent_pb.ts";
import { CommandMetaSchema } from "../../common/gen/netserva/mail/v1/command_pb.ts";
import { startHarness, type Harness } from "../helpers/controller-harness.ts";

let harness: Harness;
let metricsPort = 0;
let tls = { ca: "", cert: "", key: "" };

function scrape(identity: { cert?: string; key?: string }): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: "127.0.0.1", port: metricsPort, path: "/metrics", ca: tls.ca, ...identity, servername: "vn1" },
      (res) => {
        let body = "";
        res.on("data", (chunk: Buffer) => (body += chunk.toString()));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on("error", reject);
    req.end();
  });
}

beforeAll(async () => {
  harness = await startHarness();
  const { agent, address } = await harness.addAgent("vn1", { metrics: true });
  metricsPort = agent.metricsPort ?? 0;
  tls = {
    ca: readFileSync(join(harness.home, "ca", "ca.crt"), "utf8"),
    cert: readFileSync(join(harness.home, "controller.crt"), "utf8"),
    key: readFileSync(join(harness.home, "controller.key"), "utf8"),
  };
  const client = createClient(
    AgentService,
    createGrpcTransport({ baseUrl: `https://${address}`, nodeOptions: { ...tls, servername: "vn1" } }),
  );
  await client.ping({ meta: create(CommandMetaSchema, { requestId: "m-1" }), payload: new Uint8Array() });
  await client.ping({ meta: create(CommandMetaSchema, { requestId: "m-1" }), payload: new Uint8Array() });
  await client
    .ping({ meta: create(CommandMetaSchema, { requestId: "bad id" }), payload: new Uint8Array() })
    .catch(() => undefined);
});

afterAll(async () => {
  await harness?.close();
});

describe("agent metrics", () => {
  it("exposes the agent's metrics to a controller certificate", async () => {
    const { status, body } = await scrape({ cert: tls.cert, key: tls.key });
    expect(status).toBe(200);
    expect(body).toMatch(/^netserva_agent_up\{vnode="vn1"\} 1$/m);
    expect(body).toMatch(/^netserva_agent_commands_total\{command="Ping",result="ok",vnode="vn1"\} 1$/m);
    expect(body).toMatch(/^netserva_agent_commands_total\{command="Ping",result="replayed",vnode="vn1"\} 1$/m);
    expect(body).toMatch(/^netserva_agent_commands_total\{command="Ping",result="refused",vnode="vn1"\} 1$/m);
    expect(body).toMatch(/^netserva_agent_command_duration_seconds_bucket\{/m);
    expect(body).toMatch(/^netserva_agent_certificate_expiry_timestamp_seconds\{vnode="vn1"\} \d+$/m);
    expect(body).toMatch(/^netserva_agent_build_info\{/m);
    expect(body).toMatch(/^process_cpu_user_seconds_total/m);
  });

  it("passes promtool check metrics", async () => {
    expect(existsSync("/usr/bin/promtool")).toBe(true);
    const { body } = await scrape({ cert: tls.cert, key: tls.key });
    const result = await new Promise<{ code: number; output: string }>((resolve) => {
      const child = execFile("/usr/bin/promtool", ["check", "metrics"], (error, stdout, stderr) =>
        resolve({ code: error ? Number(error.code ?? 1) : 0, output: stdout + stderr }),
      );
      child.stdin?.end(body);
    });
    expect(result.output).toBe("");
    expect(result.code).toBe(0);
  });

  it("refuses a scraper without a client certificate", async () => {
    await expect(scrape({})).rejects.toThrow();
  });

  it("refuses an agent-role certificate", async () => {
    const cert = readFileSync(join(harness.dir, "agent-vn1", "agent.crt"), "utf8");
    const key = readFileSync(join(harness.dir, "agent-vn1", "agent.key"), "utf8");
    expect((await scrape({ cert, key })).status).toBe(403);
  });
});
