// The agent's key and certificate are one unit: each crash state a renewal can leave on disk is
// built by hand, a real agent is started on it, and the controller's link must come up with a
// certificate whose key the agent holds. The old layout's crash state (a new agent.key beside the
// old agent.crt) is refused with a message that says what to do, not a TLS failure.
import { connect } from "node:tls";
import { existsSync, lstatSync, mkdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { issueCertificate } from "../../common/pki/ca.ts";
import { createKeyAndCsr } from "../../common/pki/keys.ts";
import { normalizeSerialHex } from "../../common/pki/serial.ts";
import { silentLogger } from "../../common/log.ts";
import { startAgentDaemon } from "../../agent/agent-daemon.ts";
import type { AgentDaemon } from "../../agent/agent-daemon.ts";
import { writeIdentityPair } from "../../agent/home/identity-pair.ts";
import { startHarness, type Harness } from "../helpers/controller-harness.ts";

let harness: Harness;
let agentHome = "";
let address = "";
let agent: AgentDaemon | undefined;

async function until(predicate: () => Promise<boolean>, ms: number): Promise<void> {
  const started = Date.now();
  while (Date.now() - started < ms) {
    if (await predicate()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`condition not met within ${ms} ms`);
}

async function connected(): Promise<boolean> {
  const result = await harness.cli(["status", "--json"]);
  const rows = JSON.parse(result.out) as Array<Record<string, unknown>>;
  return rows.find((r) => r["vnode"] === "vn-crash")?.["connected"] === true;
}

/** The serial the agent presents in its TLS handshake. */
async function presentedSerial(): Promise<string> {
  const [host, port] = address.split(":");
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port: Number(port), rejectUnauthorized: false, ALPNProtocols: ["h2"] });
    socket.once("secureConnect", () => {
      const serial = socket.getPeerCertificate().serialNumber;
      socket.destroy();
      resolve(normalizeSerialHex(serial));
    });
    socket.once("error", reject);
  });
}

/** A fresh pair for the vnode, signed by the controller's CA as a renewal would be. */
async function newPair(): Promise<{ keyPem: string; certPem: string; serial: string }> {
  const { keyPem, csrPem } = await createKeyAndCsr({ commonName: "vn-crash" });
  const issued = issueCertificate({
    caKeyPem: readFileSync(join(harness.home, "ca", "ca.key"), "utf8"),
    caCertPem: readFileSync(join(harness.home, "ca", "ca.crt"), "utf8"),
    csrPem,
    role: "agent",
    identity: "vn-crash",
    ipAddresses: ["127.0.0.1"],
    dnsNames: ["vn-crash"],
    validSeconds: 3600,
  });
  return { keyPem, certPem: issued.certPem, serial: issued.serialHex };
}

async function stopAgent(): Promise<void> {
  await agent?.close();
  agent = undefined;
}

async function startAgent(): Promise<AgentDaemon> {
  agent = await startAgentDaemon({ home: agentHome, listen: address, log: silentLogger });
  return agent;
}

beforeAll(async () => {
  harness = await startHarness();
  const added = await harness.addAgent("vn-crash");
  agentHome = added.home;
  address = added.address;
  agent = added.agent;
  await until(connected, 10_000);
  await stopAgent();
});

afterAll(async () => {
  await stopAgent();
  await harness?.close();
});

describe("agent key and certificate as one unit", () => {
  it("enrollment writes a generation and links agent.key and agent.crt through current", () => {
    expect(readlinkSync(join(agentHome, "current"))).toBe(join("identity", "1"));
    expect(readlinkSync(join(agentHome, "agent.key"))).toBe(join("current", "agent.key"));
    expect(readlinkSync(join(agentHome, "agent.crt"))).toBe(join("current", "agent.crt"));
    expect(lstatSync(join(agentHome, "identity", "1", "agent.key")).mode & 0o777).toBe(0o600);
  });

  it("a crash while the next generation was being written starts on the live pair", async () => {
    const live = await newPair();
    await writeIdentityPair(agentHome, live);
    // The half-written next generation: its key is there, its certificate is not.
    const torn = join(agentHome, "identity", ".tmp-999999-abcdef");
    mkdirSync(torn);
    writeFileSync(join(torn, "agent.key"), (await newPair()).keyPem, { mode: 0o600 });
    await startAgent();
    expect(await presentedSerial()).toBe(normalizeSerialHex(live.serial));
    await until(connected, 15_000);
    await stopAgent();
  });

  it("a crash after the generation was renamed into place but before current moved starts on the old pair", async () => {
    const live = await newPair();
    const generation = await writeIdentityPair(agentHome, live);
    const next = await newPair();
    const nextDir = join(agentHome, "identity", String(generation + 1));
    mkdirSync(nextDir);
    writeFileSync(join(nextDir, "agent.key"), next.keyPem, { mode: 0o600 });
    // Torn: the certificate half written.
    writeFileSync(join(nextDir, "agent.crt"), next.certPem.slice(0, 200));
    await startAgent();
    expect(await presentedSerial()).toBe(normalizeSerialHex(live.serial));
    expect(readlinkSync(join(agentHome, "current"))).toBe(join("identity", String(generation)));
    await until(connected, 15_000);
    await stopAgent();
  });

  it("a live generation whose key does not match its certificate falls back to the last pair that matches", async () => {
    const good = await newPair();
    const goodGeneration = await writeIdentityPair(agentHome, good);
    const other = await newPair();
    const badGeneration = await writeIdentityPair(agentHome, other);
    // Replace the live key by another one: the pair in `current` no longer matches.
    writeFileSync(join(agentHome, "identity", String(badGeneration), "agent.key"), (await newPair()).keyPem);
    await startAgent();
    expect(await presentedSerial()).toBe(normalizeSerialHex(good.serial));
    expect(readlinkSync(join(agentHome, "current"))).toBe(join("identity", String(goodGeneration)));
    await until(connected, 15_000);
    await stopAgent();
  });

  it("an agent home of the flat layout is moved into a generation", async () => {
    const flat = await newPair();
    for (const name of ["agent.key", "agent.crt", "current", "identity"]) {
      rmSync(join(agentHome, name), { recursive: true, force: true });
    }
    writeFileSync(join(agentHome, "agent.key"), flat.keyPem, { mode: 0o600 });
    writeFileSync(join(agentHome, "agent.crt"), flat.certPem);
    await startAgent();
    expect(await presentedSerial()).toBe(normalizeSerialHex(flat.serial));
    expect(readlinkSync(join(agentHome, "current"))).toBe(join("identity", "1"));
    expect(lstatSync(join(agentHome, "agent.key")).isSymbolicLink()).toBe(true);
    await until(connected, 15_000);
    await stopAgent();
  });

  it("the flat layout's crash state (new agent.key, old agent.crt) is refused naming the way out", async () => {
    const old = await newPair();
    for (const name of ["agent.key", "agent.crt", "current", "identity"]) {
      rmSync(join(agentHome, name), { recursive: true, force: true });
    }
    writeFileSync(join(agentHome, "agent.key"), (await newPair()).keyPem, { mode: 0o600 });
    writeFileSync(join(agentHome, "agent.crt"), old.certPem);
    await expect(startAgent()).rejects.toThrow(/no key that matches its certificate.*enroll again/);
    expect(existsSync(join(agentHome, "current"))).toBe(false);
    // A pair written as one unit (what enrollment and renewal now do) makes the home usable again.
    const good = await newPair();
    await writeIdentityPair(agentHome, good);
    await startAgent();
    expect(await presentedSerial()).toBe(normalizeSerialHex(good.serial));
    await stopAgent();
  });
});
