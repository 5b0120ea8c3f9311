// The controller's key and certificate are one unit: each crash state a renewal can leave in the
// home is built by hand and the controller daemon started on it. It serves the last pair whose key
// matches its certificate (repointing `current`), issuing nothing; with no matching pair left it
// issues a new certificate instead of failing to start. An agent connects either way.
import { mkdirSync, readdirSync, readFileSync, readlinkSync, symlinkSync, renameSync, writeFileSync } from "node:fs";
import { connect } from "node:tls";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { issueCertificate } from "../../common/pki/ca.ts";
import { writeIdentityPair } from "../../common/pki/identity-pair.ts";
import { inspectCertificate } from "../../common/pki/inspect.ts";
import { createKeyAndCsr } from "../../common/pki/keys.ts";
import { normalizeSerialHex } from "../../common/pki/serial.ts";
import { Certificate } from "../../controller/db/entities/index.ts";
import { homePaths } from "../../controller/home/home-paths.ts";
import { controllerPairNames } from "../../controller/pki/controller-certificate.ts";
import { startHarness, type Harness } from "../helpers/controller-harness.ts";

let harness: Harness;

async function until(what: string, predicate: () => Promise<boolean>, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await predicate()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what}: not within ${ms} ms`);
}

function servedSerial(): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({
      host: "127.0.0.1",
      port: harness.controller.port,
      rejectUnauthorized: false,
      ALPNProtocols: ["h2"],
    });
    socket.once("secureConnect", () => {
      const serial = normalizeSerialHex(socket.getPeerCertificate().serialNumber);
      socket.destroy();
      resolve(serial);
    });
    socket.once("error", reject);
  });
}

async function connected(name: string): Promise<boolean> {
  const rows = JSON.parse((await harness.cli(["status", "--json"])).out) as Array<Record<string, unknown>>;
  return rows.find((r) => r["vnode"] === name)?.["connected"] === true;
}

async function controllerRows(): Promise<number> {
  return harness.db.em().fork().count(Certificate, { role: "controller" });
}

/** A controller pair signed by the CA, as a renewal makes it. */
async function newPair(): Promise<{ keyPem: string; certPem: string; serial: string }> {
  const paths = homePaths(harness.home);
  const { keyPem, csrPem } = await createKeyAndCsr({ commonName: "controller" });
  const issued = issueCertificate({
    caKeyPem: readFileSync(paths.caKey, "utf8"),
    caCertPem: readFileSync(paths.caCert, "utf8"),
    csrPem,
    role: "controller",
    identity: "controller",
    dnsNames: ["localhost"],
    ipAddresses: ["127.0.0.1"],
    validSeconds: 3600,
  });
  return { keyPem, certPem: issued.certPem, serial: issued.serialHex };
}

function liveGeneration(): number {
  return Number(readlinkSync(join(harness.home, "current")).replace("identity/", ""));
}

/** Restarts the controller on whatever the test left in its home. */
async function restartOn(crash: () => Promise<void> | void): Promise<void> {
  await harness.stopController();
  await crash();
  await harness.startController();
}

describe("controller key and certificate after a crash", () => {
  beforeAll(async () => {
    harness = await startHarness({ healthIntervalMs: 300 });
    await harness.addAgent("vn-ctlcrash");
    await until("vn-ctlcrash connected", () => connected("vn-ctlcrash"));
  }, 120_000);

  afterAll(async () => {
    await harness?.close();
  });

  it("a live generation whose key is not its certificate's: the previous pair is served, nothing issued", async () => {
    const good = await newPair();
    await writeIdentityPair(harness.home, controllerPairNames(homePaths(harness.home)), good);
    const rows = await controllerRows();
    await restartOn(async () => {
      // The torn state: `current` points at a generation whose key belongs to another certificate.
      const torn = await newPair();
      const dir = join(harness.home, "identity", String(liveGeneration() + 1));
      mkdirSync(dir, { mode: 0o700 });
      writeFileSync(join(dir, "controller.key"), torn.keyPem, { mode: 0o600 });
      writeFileSync(join(dir, "controller.crt"), good.certPem);
      symlinkSync(`identity/${liveGeneration() + 1}`, join(harness.home, "current.tmp"));
      renameSync(join(harness.home, "current.tmp"), join(harness.home, "current"));
    });
    expect(await servedSerial()).toBe(good.serial);
    expect(inspectCertificate(readFileSync(join(harness.home, "controller.crt"), "utf8")).serialHex).toBe(good.serial);
    expect(await controllerRows()).toBe(rows);
    await until("vn-ctlcrash connected after the restart", () => connected("vn-ctlcrash"));
  }, 60_000);

  it("a new generation written but `current` not yet moved: the old pair is served", async () => {
    const live = await newPair();
    await writeIdentityPair(harness.home, controllerPairNames(homePaths(harness.home)), live);
    const rows = await controllerRows();
    await restartOn(async () => {
      const next = await newPair();
      const dir = join(harness.home, "identity", String(liveGeneration() + 1));
      mkdirSync(dir, { mode: 0o700 });
      writeFileSync(join(dir, "controller.key"), next.keyPem, { mode: 0o600 });
      writeFileSync(join(dir, "controller.crt"), next.certPem);
    });
    expect(await servedSerial()).toBe(live.serial);
    expect(await controllerRows()).toBe(rows);
    await until("vn-ctlcrash connected after the restart", () => connected("vn-ctlcrash"));
  }, 60_000);

  it("no pair in the home matches: start-up issues a new certificate instead of failing", async () => {
    const rows = await controllerRows();
    const before = await servedSerial();
    const other = await newPair();
    await restartOn(() => {
      // Every generation's key replaced by one that matches none of the certificates.
      for (const generation of readdirSync(join(harness.home, "identity")))
        writeFileSync(join(harness.home, "identity", generation, "controller.key"), other.keyPem);
    });
    const served = await servedSerial();
    expect(served).not.toBe(before);
    expect(await controllerRows()).toBe(rows + 1);
    expect(inspectCertificate(readFileSync(join(harness.home, "controller.crt"), "utf8")).serialHex).toBe(served);
    await until("vn-ctlcrash connected after the restart", () => connected("vn-ctlcrash"));
  }, 60_000);
});
