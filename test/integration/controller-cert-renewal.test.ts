// The controller's own certificate outlives a year: a real `serve` process whose certificate is
// about to expire renews it by itself, swaps it into the enrollment endpoint and the agent links
// without a restart, and the agent it was talking to keeps taking commands over the renewed
// channel (a revocation push of the old certificate itself); a new agent enrolls against the
// renewed endpoint; `status` and `metrics` show the new expiry. `cert renew-controller` does
// the same on demand.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { connect } from "node:tls";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { silentLogger } from "../../common/log.ts";
import { issueCertificate } from "../../common/pki/ca.ts";
import { writeIdentityPair } from "../../common/pki/identity-pair.ts";
import { inspectCertificate } from "../../common/pki/inspect.ts";
import { createKeyAndCsr } from "../../common/pki/keys.ts";
import { normalizeSerialHex } from "../../common/pki/serial.ts";
import { runAgentCli } from "../../agent/cli/main.ts";
import { startAgentDaemon } from "../../agent/agent-daemon.ts";
import type { AgentDaemon } from "../../agent/agent-daemon.ts";
import { controllerPairNames } from "../../controller/pki/controller-certificate.ts";
import { homePaths } from "../../controller/home/home-paths.ts";
import { freePort } from "../helpers/controller-harness.ts";
import { startServeProcess } from "../helpers/serve-process.ts";
import type { ServeProcess } from "../helpers/serve-process.ts";

const LIFETIME = 3600;
const EXPIRY = 'netserva_controller_certificate_expiry_timestamp_seconds{certificate="controller"}';
const ENROLLMENT_EXPIRY = 'netserva_controller_certificate_expiry_timestamp_seconds{certificate="enrollment"}';
const RENEWED = 'netserva_controller_certificate_renewals_total{certificate="controller",result="ok"}';

let serve: ServeProcess;
let dir: string;
const agents: AgentDaemon[] = [];

async function until(what: string, predicate: () => Promise<boolean>, ms = 60_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await predicate()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what}: not within ${ms} ms`);
}

/** The serial the enrollment endpoint shows a new TLS connection. */
function servedSerial(): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: "127.0.0.1", port: serve.port, rejectUnauthorized: false, ALPNProtocols: ["h2"] });
    socket.once("secureConnect", () => {
      const serial = normalizeSerialHex(socket.getPeerCertificate().serialNumber);
      socket.destroy();
      resolve(serial);
    });
    socket.once("error", reject);
  });
}

function homeSerial(): string {
  return inspectCertificate(readFileSync(join(serve.home, "controller.crt"), "utf8")).serialHex;
}

async function vnodeRow(name: string): Promise<Record<string, unknown> | undefined> {
  const rows = JSON.parse((await serve.cli(["status", "--json"])).out) as Array<Record<string, unknown>>;
  return rows.find((r) => r["vnode"] === name);
}

/** `vnode add` + `agent enroll` against the serve process + a channel-only agent in this process. */
async function addAgent(name: string): Promise<{ home: string }> {
  const address = `127.0.0.1:${await freePort()}`;
  const added = await serve.cli(["vnode", "add", name, "--address", address]);
  expect(added.code, added.err).toBe(0);
  const token = added.out.trim().split("\n").pop() ?? "";
  const home = join(dir, `agent-${name}`);
  let err = "";
  const io = { out: () => undefined, err: (t: string) => void (err += t) };
  const code = await runAgentCli(
    ["enroll", "--controller", `127.0.0.1:${serve.port}`, "--token", token, "--home", home],
    io as never,
  );
  expect(code, err).toBe(0);
  agents.push(await startAgentDaemon({ home, listen: address, log: silentLogger }));
  await until(`${name} connected`, async () => (await vnodeRow(name))?.["connected"] === true);
  return { home };
}

/** A year gone by in a moment: the home's live pair replaced by one with 90 s left of two hours. */
async function ageControllerCertificate(): Promise<string> {
  const paths = homePaths(serve.home);
  const current = inspectCertificate(readFileSync(paths.cert, "utf8"));
  const { keyPem, csrPem } = await createKeyAndCsr({ commonName: "controller" });
  const issued = issueCertificate({
    caKeyPem: readFileSync(paths.caKey, "utf8"),
    caCertPem: readFileSync(paths.caCert, "utf8"),
    csrPem,
    role: "controller",
    identity: current.identity ?? "controller",
    dnsNames: current.dnsNames,
    ipAddresses: current.ipAddresses,
    notBefore: new Date(Date.now() - 7200_000),
    validSeconds: 7200 + 90,
  });
  await writeIdentityPair(serve.home, controllerPairNames(paths), { keyPem, certPem: issued.certPem });
  return issued.serialHex;
}

async function metric(sample: string): Promise<number> {
  return (await serve.metric(sample)) ?? Number.NaN;
}

describe("the controller's own certificate renews itself", () => {
  let first: { home: string };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "nsm-ctlcert-"));
    serve = await startServeProcess({
      args: ["--certificate-check-interval", "200", "--health-interval", "500"],
      config: { controllerCertificateSeconds: LIFETIME },
    });
    first = await addAgent("vn-first");
  }, 180_000);

  afterAll(async () => {
    await Promise.all(agents.map((a) => a.close().catch(() => undefined)));
    await serve?.stop();
    if (serve) rmSync(serve.dir, { recursive: true, force: true });
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("renews a certificate about to expire while serving: agents stay connected, take commands, enroll", async () => {
    const renewedBefore = await metric(RENEWED);
    const original = await servedSerial();
    const aged = await ageControllerCertificate();
    const started = Date.now();

    // serve takes up the aged pair from the home, finds it due and renews it: exactly once.
    await until("renewed certificate presented", async () => {
      // Neither the one before nor the aged one: a new one of LIFETIME seconds from now.
      if ([original, aged].includes(await servedSerial())) return false;
      const expiry = (await metric(EXPIRY)) * 1000;
      return expiry > started + (LIFETIME - 600) * 1000 && expiry < Date.now() + (LIFETIME + 600) * 1000;
    });
    const renewed = homeSerial();
    expect([original, aged]).not.toContain(renewed);
    expect(await metric(RENEWED)).toBe(renewedBefore + 1);
    expect(await servedSerial()).toBe(renewed);
    const notAfter = inspectCertificate(readFileSync(join(serve.home, "controller.crt"), "utf8")).notAfter;
    expect(await metric(EXPIRY)).toBe(notAfter.getTime() / 1000);
    expect(await metric(ENROLLMENT_EXPIRY)).toBe(notAfter.getTime() / 1000);
    const status = await serve.cli(["status"]);
    expect(status.out).toContain(`controller certificate ${renewed}: valid until ${notAfter.toISOString()}`);
    const listed = JSON.parse((await serve.cli(["cert", "list", "--role", "controller", "--json"])).out) as Array<{
      serial: string;
    }>;
    expect(listed.map((r) => r.serial)).toContain(renewed);

    // The agent that was connected stays so, and takes a command over the renewed channel: the
    // revocation of the certificates the controller no longer presents (its own old ones).
    expect((await vnodeRow("vn-first"))?.["connected"]).toBe(true);
    const revoked = await serve.cli(["cert", "revoke", original, "--yes"]);
    expect(revoked.code, revoked.err).toBe(0);
    await until("revocation pushed to vn-first", async () => {
      try {
        return readFileSync(join(first.home, "revoked.json"), "utf8").includes(original);
      } catch {
        return false;
      }
    });
    await until(
      "vn-first connected after the revocation",
      async () => (await vnodeRow("vn-first"))?.["connected"] === true,
    );

    // The certificate in use cannot be revoked; a new agent enrolls against the renewed endpoint.
    expect((await serve.cli(["cert", "revoke", renewed, "--yes"])).code).toBe(4);
    await addAgent(`vn-new-${Date.now() % 100_000}`);
  }, 180_000);

  it("cert renew-controller renews at once and the running serve presents the new certificate", async () => {
    const before = await servedSerial();
    const renewedBefore = await metric(RENEWED);
    const result = await serve.cli(["cert", "renew-controller"]);
    expect(result.code, result.err).toBe(0);
    const serial = homeSerial();
    expect(serial).not.toBe(before);
    expect(result.out).toContain(`controller certificate ${serial} valid until`);
    expect(result.out).toContain("the running serve presents it to new connections now");
    // No waiting: the swap happened before the command answered.
    expect(await servedSerial()).toBe(serial);
    expect(await metric(RENEWED)).toBe(renewedBefore + 1);
    const notAfter = inspectCertificate(readFileSync(join(serve.home, "controller.crt"), "utf8")).notAfter;
    expect(await metric(EXPIRY)).toBe(notAfter.getTime() / 1000);
    await until(
      "vn-first connected on the new certificate",
      async () => (await vnodeRow("vn-first"))?.["connected"] === true,
    );
  }, 120_000);
});
