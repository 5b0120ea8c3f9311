// Each refusal of the agent server in its own test: the call fails and no handler runs
// (the agent's Ping counter does not move). Client: Connect (independent of the grpc-js server).
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { create } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { AgentService } from "../../common/gen/netserva/mail/v1/agent_pb.ts";
import { CommandMetaSchema } from "../../common/gen/netserva/mail/v1/command_pb.ts";
import { createCertificateAuthority, issueCertificate } from "../../common/pki/ca.ts";
import { createKeyAndCsr, createSelfSigned } from "../../common/pki/keys.ts";
import { startHarness, type Harness } from "../helpers/controller-harness.ts";
import { Certificate, JoinToken } from "../../controller/db/entities/index.ts";

let harness: Harness;
let address = "";
let caPem = "";
let caKeyPem = "";
let controller = { cert: "", key: "" };
let pings = 0;

async function ping(identity: { cert?: string; key?: string }, requestId: string): Promise<unknown> {
  const transport = createGrpcTransport({
    baseUrl: `https://${address}`,
    nodeOptions: { ca: caPem, ...identity, servername: "vn1" },
  });
  return createClient(AgentService, transport).ping(
    { meta: create(CommandMetaSchema, { requestId }), payload: new Uint8Array() },
    { timeoutMs: 5000 },
  );
}

async function issued(
  role: "controller" | "agent",
  identity: string,
  validSeconds: number,
  notBefore?: Date,
): Promise<{ cert: string; key: string }> {
  const { keyPem, csrPem } = await createKeyAndCsr({ commonName: identity });
  const result = issueCertificate({
    caKeyPem,
    caCertPem: caPem,
    csrPem,
    role,
    identity,
    validSeconds,
    ...(notBefore ? { notBefore } : {}),
  });
  return { cert: (await result).certPem, key: keyPem };
}

async function pingCount(): Promise<number> {
  const transport = createGrpcTransport({
    baseUrl: `https://${address}`,
    nodeOptions: { ca: caPem, ...controller, servername: "vn1" },
  });
  // Count handled pings through the agent's own metrics-free path: a replayable ping per check.
  const r = await createClient(AgentService, transport).ping({
    meta: create(CommandMetaSchema, { requestId: `count-${++pings}` }),
    payload: new Uint8Array(),
  });
  return Number(r.agentTimeUnixMs);
}

beforeAll(async () => {
  harness = await startHarness();
  ({ address } = await harness.addAgent("vn1"));
  caPem = readFileSync(join(harness.home, "ca", "ca.crt"), "utf8");
  caKeyPem = readFileSync(join(harness.home, "ca", "ca.key"), "utf8");
  controller = {
    cert: readFileSync(join(harness.home, "controller.crt"), "utf8"),
    key: readFileSync(join(harness.home, "controller.key"), "utf8"),
  };
});

afterAll(async () => {
  await harness?.close();
});

describe("the agent refuses", () => {
  it("a controller certificate works (control case)", async () => {
    expect(await pingCount()).toBeGreaterThan(0);
  });

  it("no client certificate", async () => {
    await expect(ping({}, "no-cert")).rejects.toThrow();
  });

  it("a self-signed certificate", async () => {
    const self = await createSelfSigned({ role: "controller", identity: "controller" });
    await expect(ping({ cert: self.certPem, key: self.keyPem }, "self-signed")).rejects.toThrow();
  });

  it("a certificate from another CA", async () => {
    const other = await createCertificateAuthority({ commonName: "other CA", validDays: 1, keyBits: 2048 });
    const { keyPem, csrPem } = await createKeyAndCsr({ commonName: "controller" });
    const cert = await issueCertificate({
      caKeyPem: other.keyPem,
      caCertPem: other.certPem,
      csrPem,
      role: "controller",
      identity: "controller",
      validSeconds: 3600,
    });
    await expect(ping({ cert: cert.certPem, key: keyPem }, "other-ca")).rejects.toThrow();
  });

  it("an expired certificate", async () => {
    const expired = await issued("controller", "controller", 60, new Date(Date.now() - 3600_000));
    await expect(ping(expired, "expired")).rejects.toThrow();
  });

  it("an agent-role certificate presented as a controller", async () => {
    const agentCert = readFileSync(join(harness.dir, "agent-vn1", "agent.crt"), "utf8");
    const agentKey = readFileSync(join(harness.dir, "agent-vn1", "agent.key"), "utf8");
    await expect(ping({ cert: agentCert, key: agentKey }, "agent-as-controller")).rejects.toThrow(
      /may not command an agent/,
    );
  });

  it("a revoked certificate, once the controller pushes its revocation list", async () => {
    const second = await issued("controller", "controller-b", 3600);
    expect(await ping(second, "before-revoke")).toBeTruthy();
    const { recordCertificate } = await import("../../controller/pki/certificate-records.ts");
    const row = await recordCertificate(harness.db.em(), { pem: second.cert, vnodeId: null });
    await harness.db.em().nativeUpdate(Certificate, { id: row.id }, { revokedAt: new Date() });
    await harness.controller.fleet.refresh();
    const deadline = Date.now() + 5000;
    let refused: unknown;
    while (Date.now() < deadline) {
      refused = await ping(second, `after-revoke-${Date.now()}`).then(
        () => undefined,
        (e: unknown) => e,
      );
      if (refused) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(String(refused)).toMatch(/revoked/);
  });
});

describe("enrollment refuses", () => {
  it("an unknown token", async () => {
    const added = await harness.cli(["vnode", "add", "vn-unknown", "--address", "127.0.0.1:9"]);
    const token = added.out.trim().split("\n").pop() ?? "";
    const forged = token.replace(/^(nsm1\.[a-z0-9]{6}\.)[a-z0-9]+/, "$1" + "x".repeat(16));
    const result = await harness.cli([
      "agent",
      "enroll",
      "--controller",
      harness.controllerAddress,
      "--token",
      forged,
      "--home",
      join(harness.dir, "agent-unknown"),
    ]);
    expect(result.code).toBe(5);
    expect(result.err).toMatch(/token/);
  });

  it("a reused token", async () => {
    const added = await harness.cli(["vnode", "add", "vn-reuse", "--address", "127.0.0.1:9"]);
    const token = added.out.trim().split("\n").pop() ?? "";
    const first = await harness.cli([
      "agent",
      "enroll",
      "--controller",
      harness.controllerAddress,
      "--token",
      token,
      "--home",
      join(harness.dir, "agent-reuse-1"),
    ]);
    expect(first.code).toBe(0);
    const second = await harness.cli([
      "agent",
      "enroll",
      "--controller",
      harness.controllerAddress,
      "--token",
      token,
      "--home",
      join(harness.dir, "agent-reuse-2"),
    ]);
    expect(second.code).toBe(5);
    expect(second.err).toMatch(/used or expired/);
  });

  it("an expired token", async () => {
    const added = await harness.cli(["vnode", "add", "vn-expired", "--address", "127.0.0.1:9", "--ttl", "10s"]);
    const token = added.out.trim().split("\n").pop() ?? "";
    await harness.db
      .em()
      .nativeUpdate(
        JoinToken,
        { vnodeId: { $ne: null }, expiresAt: { $gt: new Date(Date.now() + 5000), $lt: new Date(Date.now() + 11_000) } },
        { expiresAt: new Date(Date.now() - 1000) },
      );
    const result = await harness.cli([
      "agent",
      "enroll",
      "--controller",
      harness.controllerAddress,
      "--token",
      token,
      "--home",
      join(harness.dir, "agent-expired"),
    ]);
    expect(result.code).toBe(5);
    expect(result.err).toMatch(/used or expired/);
  });

  it("a token whose CA pin does not match the controller", async () => {
    const added = await harness.cli(["vnode", "add", "vn-pin", "--address", "127.0.0.1:9"]);
    const token = added.out.trim().split("\n").pop() ?? "";
    const wrongPin = token.replace(/[0-9a-f]{64}$/, "0".repeat(64));
    const result = await harness.cli([
      "agent",
      "enroll",
      "--controller",
      harness.controllerAddress,
      "--token",
      wrongPin,
      "--home",
      join(harness.dir, "agent-pin"),
    ]);
    expect(result.code).toBe(5);
    expect(result.err).toMatch(/pinned/);
  });

  it("a malformed token, naming the field", async () => {
    const result = await harness.cli([
      "agent",
      "enroll",
      "--controller",
      harness.controllerAddress,
      "--token",
      "$(id);rm -rf /",
      "--home",
      join(harness.dir, "agent-bad"),
    ]);
    expect(result.code).toBe(1);
    expect(result.err).toMatch(/token/);
  });
});
