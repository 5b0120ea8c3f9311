// The foundation end to end: init → vnode add → agent enroll → mutual-TLS gRPC, checked with
// Connect's client (an independent gRPC implementation) against the grpc-js agent server.
import { X509Certificate } from "node:crypto";
import { connect } from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { create } from "@bufbuild/protobuf";
import { createClient, ConnectError, Code } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { AgentService } from "../../common/gen/netserva/mail/v1/agent_pb.ts";
import { CommandMetaSchema } from "../../common/gen/netserva/mail/v1/command_pb.ts";
import { Health, HealthCheckResponse_ServingStatus } from "../../common/gen/grpc/health/v1/health_pb.ts";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { startHarness, type Harness } from "../helpers/controller-harness.ts";

let harness: Harness;
let agentAddress = "";
let caPem = "";
let controllerCert = "";
let controllerKey = "";

function agentClient(
  identity: { cert?: string; key?: string; ca?: string } = { cert: controllerCert, key: controllerKey },
) {
  const transport = createGrpcTransport({
    baseUrl: `https://${agentAddress}`,
    nodeOptions: {
      ca: identity.ca ?? caPem,
      ...(identity.cert ? { cert: identity.cert } : {}),
      ...(identity.key ? { key: identity.key } : {}),
      servername: "vn1",
    },
  });
  return createClient(AgentService, transport);
}

const meta = (requestId: string) => create(CommandMetaSchema, { requestId, actor: "test" });

beforeAll(async () => {
  harness = await startHarness();
  const { address } = await harness.addAgent("vn1");
  agentAddress = address;
  caPem = readFileSync(join(harness.home, "ca", "ca.crt"), "utf8");
  controllerCert = readFileSync(join(harness.home, "controller.crt"), "utf8");
  controllerKey = readFileSync(join(harness.home, "controller.key"), "utf8");
});

afterAll(async () => {
  await harness?.close();
});

describe("mutual-TLS channel", () => {
  it("answers Ping from the controller's certificate through an independent client", async () => {
    const response = await agentClient().ping({ meta: meta("ping-1"), payload: new Uint8Array([1, 2, 3]) });
    expect(response.requestId).toBe("ping-1");
    expect([...response.payload]).toEqual([1, 2, 3]);
    expect(response.replayed).toBe(false);
  });

  it("answers a repeated request id from the record", async () => {
    const first = await agentClient().ping({ meta: meta("ping-replay"), payload: new Uint8Array([7]) });
    const again = await agentClient().ping({ meta: meta("ping-replay"), payload: new Uint8Array([9]) });
    expect(first.replayed).toBe(false);
    expect(again.replayed).toBe(true);
    expect([...again.payload]).toEqual([7]);
    expect(again.agentTimeUnixMs).toBe(first.agentTimeUnixMs);
  });

  it("GetInfo reports host, OS, init system and daemons", async () => {
    const info = await agentClient().getInfo({});
    expect(info.vnode).toBe("vn1");
    expect(["systemd", "openrc", "direct"]).toContain(info.initSystem);
    expect(info.os.length).toBeGreaterThan(0);
    expect(info.daemons.map((d) => d.name)).toEqual(["postfix", "dovecot", "rspamd", "clamav"]);
    expect(Number(info.certificateNotAfterUnixMs)).toBeGreaterThan(Date.now());
  });

  it("serves grpc.health.v1", async () => {
    const transport = createGrpcTransport({
      baseUrl: `https://${agentAddress}`,
      nodeOptions: { ca: caPem, cert: controllerCert, key: controllerKey, servername: "vn1" },
    });
    const health = createClient(Health, transport);
    expect((await health.check({ service: "" })).status).toBe(HealthCheckResponse_ServingStatus.SERVING);
    expect((await health.check({ service: AgentService.typeName })).status).toBe(
      HealthCheckResponse_ServingStatus.SERVING,
    );
  });

  it("refuses a bad request id with the field named", async () => {
    const error = await agentClient()
      .ping({ meta: meta("bad id; rm -rf /"), payload: new Uint8Array() })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConnectError);
    expect((error as ConnectError).code).toBe(Code.InvalidArgument);
    expect((error as ConnectError).rawMessage).toContain("meta.request_id");
  });

  it("refuses a command without envelope", async () => {
    const error = await agentClient()
      .ping({ payload: new Uint8Array() })
      .catch((e: unknown) => e);
    expect((error as ConnectError).code).toBe(Code.InvalidArgument);
    expect((error as ConnectError).rawMessage).toContain("meta");
  });

  it("refuses an oversized ping payload without crashing", async () => {
    const error = await agentClient()
      .ping({ meta: meta("big-1"), payload: new Uint8Array(70_000) })
      .catch((e: unknown) => e);
    expect((error as ConnectError).code).toBe(Code.InvalidArgument);
    const ok = await agentClient().ping({ meta: meta("after-big"), payload: new Uint8Array() });
    expect(ok.requestId).toBe("after-big");
  });

  it("status shows the vnode connected with its generation and certificate expiry", async () => {
    const deadline = Date.now() + 10_000;
    let row: Record<string, unknown> | undefined;
    while (Date.now() < deadline) {
      const result = await harness.cli(["status", "--json"]);
      expect(result.code).toBe(0);
      row = (JSON.parse(result.out) as Array<Record<string, unknown>>).find((r) => r["vnode"] === "vn1");
      if (row?.["connected"]) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(row).toMatchObject({
      vnode: "vn1",
      status: "enrolled",
      connected: true,
      agentVersion: "0.1.0",
      appliedGeneration: 0,
    });
    expect(new X509Certificate(readFileSync(join(harness.dir, "agent-vn1", "agent.crt"), "utf8")).validTo).toBeTruthy();
    expect(Date.parse(String(row?.["certificateNotAfter"]))).toBeGreaterThan(Date.now());
  });

  it("the agent's certificate names the vnode and the agent role", async () => {
    const peer = await new Promise<X509Certificate>((resolve, reject) => {
      const [host, port] = agentAddress.split(":");
      const socket = connect(
        {
          host,
          port: Number(port),
          ca: caPem,
          cert: controllerCert,
          key: controllerKey,
          servername: "vn1",
          ALPNProtocols: ["h2"],
        },
        () => {
          const x = socket.getPeerX509Certificate();
          socket.destroy();
          if (x) resolve(x);
          else reject(new Error("no certificate"));
        },
      );
      socket.once("error", reject);
    });
    expect(peer.subjectAltName).toContain("DNS:vn1");
    expect(peer.subjectAltName).toContain("URI:netserva-mail://agent/vn1");
    expect(peer.checkIssued(new X509Certificate(caPem))).toBe(true);
  });
});
