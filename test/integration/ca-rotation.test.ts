// A whole CA rollover against a real controller and two real mail vnodes (agent processes in
// their own network namespaces, Postfix and Dovecot running) with short certificate lifetimes:
// `ca rotate` → the agents get the old+new trust bundle and a new-CA certificate without a
// restart while mailbox changes keep applying; a join token from before the rotation still
// enrolls during the overlap; a vnode whose agent was down the whole time keeps `ca retire-old`
// from going ahead (named) until --force; a restarted controller carries on with the rotation;
// after retirement the agents trust only the new CA, an old-CA certificate is refused by the
// controller and a join token from before the rotation is refused with what to do instead.
//
// In order (opted out of the suite's shuffle): each step is one stage of one rollover.
import { readFileSync, writeFileSync } from "node:fs";
import { X509Certificate } from "node:crypto";
import { connect } from "node:tls";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RenewRequestSchema } from "../../common/gen/netserva/mail/v1/enrollment_pb.ts";
import { caPin } from "../../common/pki/pin.ts";
import { createKeyAndCsr } from "../../common/pki/keys.ts";
import { issuerIn, pemBlocks, readTrustBundle } from "../../common/pki/trust-bundle.ts";
import { silentLogger } from "../../common/log.ts";
import { startAgentDaemon } from "../../agent/agent-daemon.ts";
import type { AgentDaemon } from "../../agent/agent-daemon.ts";
import { createEnrollmentClient } from "../../agent/enroll/enrollment-client.ts";
import { readCaFiles, withChain } from "../../controller/pki/ca-files.ts";
import { homePaths } from "../../controller/home/home-paths.ts";
import { freePort } from "../helpers/controller-harness.ts";
import type { Harness } from "../helpers/controller-harness.ts";
import { startMailFleet, until, AGENT_PORT, type MailFleet } from "../helpers/mail-fleet.ts";

const isRoot = process.getuid?.() === 0;
const PASSWORD = "Rotation-test-pass-1";

let fleet: MailFleet;
let h: Harness;
let oldPin = "";
let newPin = "";
let stale: { home: string; restart(): Promise<AgentDaemon>; agent: AgentDaemon };
let earlyToken = "";
let lateToken = "";
let extraAgent: AgentDaemon | undefined;
const pids = new Map<string, number | undefined>();
let mailboxes = 0;

interface CaStatusJson {
  phase: string;
  activePin: string;
  cas: Array<{ pin: string; state: string }>;
  vnodes: Array<{
    vnode: string;
    certificateCa: string | null;
    trustsActive: boolean | null;
    waitingFor: string | null;
  }>;
  oldCertificates: Array<{ role: string; identity: string }>;
}

async function caStatus(): Promise<CaStatusJson> {
  const result = await h.cli(["ca", "status", "--json"]);
  expect(result.code, result.err).toBe(0);
  return JSON.parse(result.out) as CaStatusJson;
}

function home(name: string): string {
  return join(h.dir, `agent-${name}`);
}

async function tokenFor(name: string): Promise<string> {
  const added = await h.cli(["vnode", "add", name, "--address", `127.0.0.1:${await freePort()}`]);
  expect(added.code, added.err).toBe(0);
  return added.out.trim().split("\n").pop() ?? "";
}

/** One new mailbox on each mail vnode, live there: the vnode reaches the generation it brought. */
async function mailChangeApplies(): Promise<void> {
  mailboxes += 1;
  for (const v of fleet.vnodes) {
    const added = await h.cli(["addvmail", v.name, `user${mailboxes}@${v.domain}`, "--password-stdin"], PASSWORD);
    expect(added.code, added.err).toBe(0);
    expect(added.err).not.toMatch(/not pushed/);
    await until(
      async () => {
        const rows = JSON.parse((await h.cli(["status", "--json"])).out) as Array<Record<string, unknown>>;
        const row = rows.find((r) => r["vnode"] === v.name);
        return row && row["appliedGeneration"] === row["generation"] ? true : undefined;
      },
      30_000,
      `${v.name} to apply mailbox ${mailboxes}`,
    );
  }
}

/** The certificate a port serves right now (the agent's: seen through a real handshake as the
 *  controller; the mail daemons' on 465/993 ignore the client certificate). */
async function servedCertificate(address: string, vnode: string): Promise<Buffer> {
  const [host, port] = address.split(":");
  return new Promise((resolve, reject) => {
    const socket = connect({
      host,
      port: Number(port),
      servername: vnode,
      cert: withChain(readFileSync(join(h.home, "controller.crt"), "utf8"), readCaFiles(homePaths(h.home)).chainPem),
      key: readFileSync(join(h.home, "controller.key"), "utf8"),
      rejectUnauthorized: false,
      ALPNProtocols: ["h2"],
    });
    socket.once("secureConnect", () => {
      const der = socket.getPeerCertificate().raw;
      socket.destroy();
      resolve(der);
    });
    socket.once("error", reject);
  });
}

describe.skipIf(!isRoot)("CA rotation with overlap", { shuffle: false }, () => {
  beforeAll(async () => {
    fleet = await startMailFleet(["cra", "crb"], "carot", { agentCertificateSeconds: 120, reachableController: true });
    h = fleet.harness;
    for (const v of fleet.vnodes) pids.set(v.name, v.agent.child.pid);
    // A vnode whose agent is down for the whole overlap: it never hears of the new CA.
    stale = await h.addAgent("cr-stale");
    await until(async () => (h.controller.fleet.link("cr-stale")?.connected ? true : undefined), 20_000, "cr-stale up");
    await stale.agent.close();
    earlyToken = await tokenFor("cr-early");
    lateToken = await tokenFor("cr-late");
    oldPin = caPin(readFileSync(join(h.home, "ca", "ca.crt"), "utf8"));
  }, 240_000);

  afterAll(async () => {
    await extraAgent?.close();
    await fleet?.close();
  });

  it("before: one CA, every vnode on it", async () => {
    const status = await caStatus();
    expect(status.phase).toBe("single");
    expect(status.cas.map((c) => `${c.state}:${c.pin}`)).toEqual([`active:${oldPin}`]);
    const trusted = readTrustBundle(readFileSync(join(h.home, "ca", "ca.crt"), "utf8"));
    for (const v of fleet.vnodes)
      expect(issuerIn(await servedCertificate(`${v.ns.nsAddress}:993`, v.mailHostname), trusted)?.pin).toBe(oldPin);
    await mailChangeApplies();
  });

  it("ca rotate: agents trust old and new and renew onto the new CA, without a restart", async () => {
    // The reissued controller certificate takes controller.json's lifetime (within the new CA's 30 days), like every renewal.
    const configPath = join(h.home, "controller.json");
    const config = JSON.parse(readFileSync(configPath, "utf8")) as Record<string, unknown>;
    writeFileSync(configPath, JSON.stringify({ ...config, controllerCertificateSeconds: 20 * 86_400 }));
    const rotated = await h.cli(["ca", "rotate", "--days", "30"]);
    expect(rotated.code, rotated.err).toBe(0);
    const reissued = new X509Certificate(readFileSync(join(h.home, "controller.crt"), "utf8"));
    const lifetimeDays = (Date.parse(reissued.validTo) - Date.parse(reissued.validFrom)) / 86_400_000;
    expect(Math.round(lifetimeDays)).toBe(20);
    newPin = caPin(readFileSync(join(h.home, "ca", "ca.crt"), "utf8"));
    expect(newPin).not.toBe(oldPin);
    expect(rotated.out).toContain(newPin);
    // Mail keeps applying while the controller swaps its identity and the agents renew.
    await mailChangeApplies();
    const status = await until(
      async () => {
        const s = await caStatus();
        const mail = s.vnodes.filter((v) => v.vnode === "cra" || v.vnode === "crb");
        return mail.length === 2 && mail.every((v) => v.certificateCa === "active" && v.trustsActive === true)
          ? s
          : undefined;
      },
      60_000,
      "both mail vnodes on the new CA",
    );
    expect(status.phase).toBe("overlap");
    expect(status.cas.map((c) => `${c.state}:${c.pin}`).sort()).toEqual(
      [`active:${newPin}`, `previous:${oldPin}`].sort(),
    );
    expect(status.vnodes.find((v) => v.vnode === "cr-stale")?.waitingFor).toMatch(/old CA/);
    const bundle = readTrustBundle(readFileSync(join(h.home, "ca", "trust.crt"), "utf8"));
    for (const v of fleet.vnodes) {
      // The same process as before: nothing was restarted.
      expect(v.agent.child.pid).toBe(pids.get(v.name));
      expect(v.agent.child.exitCode).toBeNull();
      // Its home trusts both CAs; the certificate it serves now is from the new one.
      const trusted = readTrustBundle(readFileSync(join(home(v.name), "ca.crt"), "utf8"));
      expect(trusted.map((c) => c.pin).sort()).toEqual([newPin, oldPin].sort());
      // The controller records a renewal before the agent has swapped it in: poll briefly.
      await until(
        async () => {
          const served = await servedCertificate(`${v.ns.nsAddress}:${AGENT_PORT}`, v.name);
          return issuerIn(served, bundle)?.pin === newPin ? true : undefined;
        },
        10_000,
        `${v.name} to serve its new-CA certificate`,
      );
    }
    // The mail daemons' certificates from the old CA are reissued by the new one and served.
    for (const v of fleet.vnodes)
      await until(
        async () => {
          const served = await servedCertificate(`${v.ns.nsAddress}:993`, v.mailHostname);
          return issuerIn(served, bundle)?.pin === newPin ? true : undefined;
        },
        30_000,
        `${v.name}'s IMAPS certificate from the new CA`,
      );
    // The controller presents a new-CA certificate too, with the link certificate after it.
    expect(issuerIn(readFileSync(join(h.home, "controller.crt"), "utf8"), bundle)?.pin).toBe(newPin);
    expect(pemBlocks(readFileSync(join(h.home, "ca", "chain.crt"), "utf8"))).toHaveLength(2);
    await mailChangeApplies();
  });

  it("a join token issued before the rotation still enrolls during the overlap, onto the new CA", async () => {
    const agentHome = home("cr-early");
    const enrolled = await h.cli([
      "agent",
      "enroll",
      "--controller",
      h.controllerAddress,
      "--token",
      earlyToken,
      "--home",
      agentHome,
    ]);
    expect(enrolled.code, enrolled.err).toBe(0);
    const trusted = readTrustBundle(readFileSync(join(agentHome, "ca.crt"), "utf8"));
    expect(trusted.map((c) => c.pin).sort()).toEqual([newPin, oldPin].sort());
    expect(issuerIn(readFileSync(join(agentHome, "agent.crt"), "utf8"), trusted)?.pin).toBe(newPin);
    const status = JSON.parse((await h.cli(["status", "--json"])).out) as Array<Record<string, unknown>>;
    const address = String(status.find((r) => r["vnode"] === "cr-early")?.["address"]);
    extraAgent = await startAgentDaemon({ home: agentHome, listen: address, log: silentLogger });
    await until(
      async () => ((await caStatus()).vnodes.find((v) => v.vnode === "cr-early")?.trustsActive ? true : undefined),
      20_000,
      "cr-early to confirm the bundle",
    );
  });

  it("ca retire-old is refused, naming the vnode still on the old CA, and changes nothing", async () => {
    const refused = await h.cli(["ca", "retire-old"]);
    expect(refused.code).toBe(4);
    expect(refused.err).toMatch(/1 vnode still depends on the old CA: cr-stale \(certificate from the old CA/);
    expect(refused.err).not.toMatch(/cra|crb|cr-early/);
    expect(refused.err).toMatch(/--force/);
    expect((await caStatus()).phase).toBe("overlap");
    expect(readTrustBundle(readFileSync(join(h.home, "ca", "trust.crt"), "utf8"))).toHaveLength(2);
    // Nor can a second rotation start before this one is finished; the table says who waits.
    const again = await h.cli(["ca", "rotate"]);
    expect(again.code).toBe(4);
    expect(again.err).toMatch(/already under way/);
    expect(caPin(readFileSync(join(h.home, "ca", "ca.crt"), "utf8"))).toBe(newPin);
    const table = await h.cli(["ca", "status"]);
    expect(table.out).toMatch(/rotation under way: 1 vnode\(s\) still on the old CA: cr-stale/);
  });

  it("a restarted controller carries on with the rotation", async () => {
    await h.stopController();
    await h.startController();
    expect((await caStatus()).phase).toBe("overlap");
    await until(
      async () =>
        h.controller.fleet.link("cra")?.connected && h.controller.fleet.link("crb")?.connected ? true : undefined,
      30_000,
      "links back after the restart",
    );
    await mailChangeApplies();
  });

  it("ca retire-old --force: only the new CA is trusted, everywhere", async () => {
    const retired = await h.cli(["ca", "retire-old", "--force"]);
    expect(retired.code, retired.err).toBe(0);
    expect(retired.err).toMatch(/vnode cr-stale .* is stranded/);
    const status = await caStatus();
    expect(status.phase).toBe("single");
    expect(status.cas.find((c) => c.pin === oldPin)?.state).toBe("retired");
    // The old key is gone from the home.
    expect(() => readFileSync(join(h.home, "ca", "previous.key"))).toThrow();
    await h.controller.checkCa();
    for (const name of ["cra", "crb", "cr-early"])
      await until(
        async () => {
          const pins = readTrustBundle(readFileSync(join(home(name), "ca.crt"), "utf8")).map((c) => c.pin);
          return pins.length === 1 && pins[0] === newPin ? true : undefined;
        },
        30_000,
        `${name} to trust only the new CA`,
      );
    await mailChangeApplies();
  });

  it("after retirement the controller refuses a certificate from the old CA", async () => {
    // The stale agent comes back with its old-CA certificate: asking to renew is refused.
    stale.agent = await stale.restart();
    const client = createEnrollmentClient({
      address: h.controllerAddress,
      caPem: readFileSync(join(stale.home, "ca.crt"), "utf8"),
      certPem: readFileSync(join(stale.home, "agent.crt"), "utf8"),
      keyPem: readFileSync(join(stale.home, "agent.key"), "utf8"),
    });
    try {
      const { csrPem } = await createKeyAndCsr({ commonName: "cr-stale" });
      await expect(client.renew(create(RenewRequestSchema, { csrPem }))).rejects.toThrow(/current certificate/);
    } finally {
      client.close();
    }
    expect((await caStatus()).vnodes.find((v) => v.vnode === "cr-stale")?.certificateCa).toBe("retired");
  });

  it("a join token issued before the rotation is refused after retirement, saying to issue a new one", async () => {
    const refused = await h.cli([
      "agent",
      "enroll",
      "--controller",
      h.controllerAddress,
      "--token",
      lateToken,
      "--home",
      home("cr-late"),
    ]);
    expect(refused.code).not.toBe(0);
    expect(refused.err).toMatch(
      /join token was issued before the CA rotation; issue a new one with `netserva-mail vnode token cr-late`/,
    );
    const fresh = await h.cli(["vnode", "token", "cr-late"]);
    expect(fresh.code, fresh.err).toBe(0);
    const enrolled = await h.cli([
      "agent",
      "enroll",
      "--controller",
      h.controllerAddress,
      "--token",
      fresh.out.trim(),
      "--home",
      home("cr-late"),
    ]);
    expect(enrolled.code, enrolled.err).toBe(0);
    expect(readTrustBundle(readFileSync(join(home("cr-late"), "ca.crt"), "utf8")).map((c) => c.pin)).toEqual([newPin]);
  });
});
