// mail:test-smtp against real vnodes (agent processes in network namespaces): a full pass with
// IMAP arrival, wrong AUTH (535), a certificate that does not name the host, nothing listening
// (connection refused), and the test run from another vnode's agent (RunSmtpTest, no ssh).
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startMailFleet, type FleetVnode, type MailFleet } from "../helpers/mail-fleet.ts";
import { createTestTls } from "../helpers/mail-tls.ts";

const exec = promisify(execFile);
const isRoot = process.getuid?.() === 0;
const PASS = "Alice-secret-pass-1";
let fleet: MailFleet;
let sv1: FleetVnode;
let sv2: FleetVnode;
let alice = "";

interface Result {
  ok: boolean;
  steps: Array<{ name: string; ok: boolean; ms: number; detail: string; facts: Record<string, string> }>;
  token: string;
}

async function hostVeth(address: string): Promise<string> {
  const { stdout } = await exec("ip", ["-o", "-4", "addr", "show"]);
  const line = stdout.split("\n").find((l) => l.includes(` ${address}/`));
  const name = line?.split(/\s+/)[1]?.split("@")[0];
  if (!name) throw new Error(`no interface with ${address}`);
  return name;
}

/** Lets two test namespaces reach each other through the host: forwarding on their two host-side
 * veths only (not the host's other interfaces) and a route in each namespace. */
async function linkNamespaces(a: FleetVnode, b: FleetVnode): Promise<void> {
  for (const v of [a, b])
    await exec("sysctl", ["-q", "-w", `net.ipv4.conf.${await hostVeth(v.ns.hostAddress)}.forwarding=1`]);
  await exec("ip", ["netns", "exec", a.ns.name, "ip", "route", "add", `${b.ns.nsAddress}/32`, "via", a.ns.hostAddress]);
  await exec("ip", ["netns", "exec", b.ns.name, "ip", "route", "add", `${a.ns.nsAddress}/32`, "via", b.ns.hostAddress]);
}

const testSmtp = async (args: string[], stdin = ""): Promise<{ code: number; result: Result; err: string }> => {
  const r = await fleet.harness.cli(["mail:test-smtp", ...args, "--json"], stdin);
  return { code: r.code, result: JSON.parse(r.out || "{}") as Result, err: r.err };
};

describe.skipIf(!isRoot)("mail:test-smtp against real vnodes", () => {
  beforeAll(async () => {
    fleet = await startMailFleet(["sv1", "sv2"], "smtp");
    [sv1, sv2] = fleet.vnodes as [FleetVnode, FleetVnode];
    alice = `alice@${sv1.domain}`;
    const added = await fleet.harness.cli(["addvmail", "sv1", alice, "--password-stdin"], `${PASS}\n`);
    expect(added.code, added.err).toBe(0);
    await linkNamespaces(sv1, sv2);
  }, 240_000);

  afterAll(async () => {
    await fleet?.close();
  });

  it("passes every step on 587 with AUTH, and the message arrives over IMAP", async () => {
    const { code, result, err } = await testSmtp(
      ["sv1", "--port", "587", "--auth", alice, "--password-stdin"],
      `${PASS}\n`,
    );
    expect(code, err + JSON.stringify(result.steps)).toBe(0);
    expect(result.steps.map((s) => s.name)).toEqual([
      "connect",
      "banner",
      "ehlo",
      "tls",
      "auth",
      "mail",
      "rcpt",
      "data",
      "arrival",
    ]);
    expect(result.steps.every((s) => s.ok && s.ms >= 0)).toBe(true);
    const tls = result.steps.find((s) => s.name === "tls");
    expect(tls?.facts).toMatchObject({
      protocol: expect.stringMatching(/^TLSv1\.[23]$/),
      nameMatches: "true",
      trusted: "true",
    });
    expect(tls?.facts["subjectAltName"]).toContain(sv1.mailHostname);
    expect(result.steps.find((s) => s.name === "arrival")?.detail).toMatch(/in INBOX of alice@sv1\.test after \d+ ms/);
  });

  it("passes on 465 (implicit TLS) and on 25 with the mailbox read over IMAP; people get a step table", async () => {
    const implicit = await testSmtp(["sv1", "--port", "465", "--auth", alice, "--password-stdin"], `${PASS}\n`);
    expect(implicit.code, JSON.stringify(implicit.result.steps)).toBe(0);
    expect(implicit.result.steps.map((s) => s.name).slice(0, 3)).toEqual(["connect", "tls", "banner"]);
    const plain = await fleet.harness.cli(
      ["mail:test-smtp", "sv1", "--to", alice, "--imap-password-stdin"],
      `${PASS}\n`,
    );
    expect(plain.code, plain.out + plain.err).toBe(0);
    expect(plain.out).toMatch(/^ {2}ok {4}arrival/m);
    expect(plain.out).toMatch(/^result: ok/m);
  });

  it("fails at auth with the server's 535 for a wrong password", async () => {
    const { code, result, err } = await testSmtp(
      ["sv1", "--port", "587", "--auth", alice, "--password-stdin"],
      "wrong-password\n",
    );
    expect(code).toBe(5);
    const failed = result.steps.find((s) => !s.ok);
    expect(failed?.name).toBe("auth");
    expect(failed?.detail).toMatch(/535/);
    expect(err).toMatch(/failed at auth/);
    expect(result.steps.at(-1)?.name).toBe("auth");
  });

  it("runs from another vnode's agent (vnode-to-vnode) with arrival", async () => {
    const { code, result, err } = await testSmtp(
      ["sv1", "--from-vnode", "sv2", "--to", alice, "--imap-password-stdin"],
      `${PASS}\n`,
    );
    expect(code, err + JSON.stringify(result.steps)).toBe(0);
    expect(result.steps.map((s) => s.name)).toEqual([
      "connect",
      "banner",
      "ehlo",
      "tls",
      "mail",
      "rcpt",
      "data",
      "arrival",
    ]);
    const log = (await fleet.harness.cli(["mail:test-smtp", "sv1", "--from-vnode", "nosuch"])).code;
    expect(log).toBe(3);
  });

  it("fails at tls on a certificate name mismatch, and on an untrusted certificate", async () => {
    const mismatch = await testSmtp(["sv1", "--port", "587", "--server-name", "mx.elsewhere.test"]);
    expect(mismatch.code).toBe(5);
    expect(mismatch.result.steps.find((s) => !s.ok)).toMatchObject({
      name: "tls",
      detail: expect.stringMatching(/^certificate name mismatch: mx\.elsewhere\.test is not in DNS:mail\.sv1\.test/),
    });
    const dir = mkdtempSync(join(tmpdir(), "nsm-badcert-"));
    try {
      // The right name, but from a CA neither the controller nor the system trusts.
      const foreign = await createTestTls(sv1.mailHostname, sv1.ns.nsAddress);
      writeFileSync(join(dir, "cert.pem"), foreign.certChainPem);
      writeFileSync(join(dir, "key.pem"), foreign.keyPem);
      const set = await fleet.harness.cli([
        "mail:tls",
        "set",
        "sv1",
        "--cert",
        join(dir, "cert.pem"),
        "--key",
        join(dir, "key.pem"),
      ]);
      expect(set.code, set.err).toBe(0);
      const { code, result } = await testSmtp(["sv1", "--port", "587"]);
      expect(code).toBe(5);
      expect(result.steps.find((s) => !s.ok)).toMatchObject({
        name: "tls",
        detail: expect.stringMatching(/self-signed certificate in the chain|not trusted/),
      });
      expect((await fleet.harness.cli(["mail:tls", "clear", "sv1"])).code).toBe(0);
      expect((await testSmtp(["sv1", "--port", "587"])).code).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("fails at connect with 'connection refused' where nothing listens", async () => {
    // Not by stopping Postfix: in the direct mode the agent starts a dead Postfix again by itself
    // (daemon-killed.test.ts). The host's end of the vnode's link has no SMTP listener.
    const { code, result, err } = await testSmtp([
      "sv1",
      "--port",
      "25",
      "--timeout",
      "2000",
      "--host",
      sv1.ns.hostAddress,
    ]);
    expect(code).toBe(5);
    expect(result.steps).toHaveLength(1);
    expect(result.steps[0]).toMatchObject({ name: "connect", ok: false });
    expect(result.steps[0]?.detail).toMatch(/connection refused/);
    expect(err).toMatch(/failed at connect/);
  });
});
