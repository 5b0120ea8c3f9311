// The proof with tools this project did not write: a vnode driven only through the CLI (agent in
// its own process and network namespace, Rspamd on) signs a message submitted on port 587 with
// the RSA and Ed25519 keys mail:configure-dkim made and published in a real PowerDNS; mailauth
// (an independent DKIM/SPF/DMARC implementation) verifies the delivered copy against the records
// it reads from that PowerDNS over DNS: DKIM pass for both signatures, SPF pass for the vnode's
// address, DMARC pass. One header byte changed: both DKIM signatures fail.
import { Resolver } from "node:dns/promises";
import { chmodSync, existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { authenticate } from "mailauth";
import type { DNSResolver } from "mailauth";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startAgentProcess } from "../helpers/agent-process.ts";
import type { AgentProcess } from "../helpers/agent-process.ts";
import { startHarness } from "../helpers/controller-harness.ts";
import type { Harness } from "../helpers/controller-harness.ts";
import { SHARED_HS_CACHE } from "../helpers/filter-root.ts";
import { hamMessage } from "../helpers/filter-messages.ts";
import { headerValues, readCrlf, waitDelivered } from "../helpers/mail-maildir.ts";
import { sendMail } from "../helpers/mail-smtp.ts";
import { createTestNetns } from "../helpers/netns.ts";
import type { TestNetns } from "../helpers/netns.ts";
import { pdnsAvailable, startPdns } from "../helpers/pdns.ts";
import type { Pdns } from "../helpers/pdns.ts";

const canRun =
  process.getuid?.() === 0 &&
  pdnsAvailable &&
  ["/usr/sbin/postfix", "/usr/sbin/dovecot", "/usr/bin/rspamd"].every((f) => existsSync(f));
const D = "signed.test";
const HOST = `mail.${D}`;
const PASS = "alice-Secret-pass-1";
const timings: Record<string, number> = {};

let h: Harness;
let pdns: Pdns;
let ns: TestNetns;
let agent: AgentProcess | undefined;
let root = "";
let caPem = "";
let configured: { code: number; out: string; err: string } | undefined;
let signedOnce: Promise<string> | undefined;
const logDir = mkdtempSync(join(tmpdir(), "nsm-dkim-logs-"));

async function until<T>(probe: () => Promise<T | undefined>, ms: number, what: string): Promise<T> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const value = await probe();
    if (value !== undefined) return value;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}`);
}

async function appliedEverywhere(): Promise<void> {
  await until(
    async () => {
      const status = JSON.parse((await h.cli(["status", "--json"])).out) as Array<Record<string, unknown>>;
      const row = status.find((r) => r["vnode"] === "vn1");
      return row && row["connected"] === true && row["appliedGeneration"] === row["generation"] ? row : undefined;
    },
    90_000,
    "vn1 to apply its generation",
  );
}

/** mailauth asks DNS through this: the real PowerDNS, over DNS (no API, no stubs). */
const pdnsResolver: DNSResolver = async (name, rrtype) => {
  const r = new Resolver({ timeout: 2000, tries: 2 });
  r.setServers([pdns.resolver]);
  return (await r.resolve(name, rrtype)) as string[] | string[][];
};

const verify = (message: string, ip: string) =>
  authenticate(message, {
    ip,
    helo: HOST,
    sender: `alice@${D}`,
    mta: "mx.receiver.test",
    resolver: pdnsResolver,
    disableArc: true,
    disableBimi: true,
  });

/** One message alice submits on 587, as delivered to bob: sent once, by whichever test asks first. */
function signedMessage(): Promise<string> {
  signedOnce ??= (async () => {
    const data = hamMessage({ from: `alice@${D}`, to: `bob@${D}`, subject: "Signed lunch" });
    const t0 = performance.now();
    const sent = await sendMail({
      host: ns.nsAddress,
      port: 587,
      ca: caPem,
      servername: HOST,
      startTls: true,
      from: `alice@${D}`,
      to: [`bob@${D}`],
      data,
      auth: { user: `alice@${D}`, pass: PASS },
    });
    expect(sent.stage, sent.reply.text).toBe("done");
    const id = /^Message-ID: (<[^>]+>)/m.exec(data)?.[1] ?? "";
    const delivered = readCrlf(await waitDelivered(join(root, "srv", D, "msg", "bob", "Maildir"), id));
    timings.submitToMaildirMs = performance.now() - t0;
    return delivered;
  })();
  return signedOnce;
}

describe.skipIf(!canRun)("DKIM-signed mail from a CLI-driven vnode verified by mailauth against PowerDNS", () => {
  beforeAll(async () => {
    const t0 = performance.now();
    [h, pdns, ns] = await Promise.all([startHarness({ healthIntervalMs: 500 }), startPdns(), createTestNetns("dkim")]);
    caPem = (await import("node:fs")).readFileSync(join(h.home, "ca", "ca.crt"), "utf8");
    await pdns.createZone(D);
    await pdns.createZone("251.10.in-addr.arpa");
    Object.assign(h.env, {
      NETSERVA_PDNS_URL: pdns.url,
      NETSERVA_PDNS_API_KEY: pdns.apiKey,
      NETSERVA_DNS_RESOLVER: pdns.resolver,
    });
    root = mkdtempSync(join(tmpdir(), "nsm-dkim-root-"));
    chmodSync(root, 0o755);
    const added = await h.cli(["vnode", "add", "vn1", "--address", `${ns.nsAddress}:7444`]);
    expect(added.code, added.err).toBe(0);
    const agentHome = join(h.dir, "agent-vn1");
    expect(
      (
        await h.cli([
          "agent",
          "enroll",
          "--controller",
          h.controllerAddress,
          "--token",
          added.out.trim().split("\n").pop() ?? "",
          "--home",
          agentHome,
        ])
      ).code,
    ).toBe(0);
    expect(
      (await h.cli(["vnode", "set", "vn1", "--mail-hostname", HOST, "--mail-listen", ns.nsAddress, "--rspamd", "1"]))
        .code,
    ).toBe(0);
    agent = await startAgentProcess({
      ns,
      home: agentHome,
      root,
      port: 7444,
      logDir,
      extraArgs: ["--filter-offline", "--filter-cache", SHARED_HS_CACHE],
    });
    await appliedEverywhere(); // the reconciler applies the first state (Rspamd cold start)
    timings.vnodeUpMs = performance.now() - t0;
    // The domain's zone is in PowerDNS, so the mail-data rule lets it in without --skip-dns-check.
    expect((await h.cli(["addvmaildomain", "vn1", D])).code).toBe(0);
    expect((await h.cli(["addvmail", "vn1", `alice@${D}`, "--password-stdin"], `${PASS}\n`)).code).toBe(0);
    expect((await h.cli(["addvmail", "vn1", `bob@${D}`, "--password-stdin"], `${PASS}\n`)).code).toBe(0);
    // Keys and records every test needs; the first test looks at what these commands said.
    const t1 = performance.now();
    configured = await h.cli([
      "mail:configure-dkim",
      "vn1",
      D,
      "--algorithm",
      "both",
      "--selector",
      "s1",
      "--publish",
      "--wait",
      "10",
    ]);
    timings.configureDkimMs = performance.now() - t1;
    expect(configured.code, configured.err).toBe(0);
    // The CLI pushes the whole state at once; the reconciler would catch up if that push failed.
    await appliedEverywhere();
    timings.configureDkimToAppliedMs = performance.now() - t1;
    const dns = await h.cli(["mail:dns", "vn1", D, "--publish", "--rua", `mailto:dmarc@${D}`]);
    expect(dns.code, dns.err).toBe(0);
  }, 240_000);

  afterAll(async () => {
    await agent?.stop();
    await ns?.destroy();
    await h?.close();
    await pdns?.stop();
    if (root) rmSync(root, { recursive: true, force: true });
    rmSync(logDir, { recursive: true, force: true });
    console.log(
      "dkim-signed-mail timings (ms)",
      Object.fromEntries(Object.entries(timings).map(([k, v]) => [k, Math.round(v)])),
    );
  });

  it("configure-dkim --algorithm both --publish, mail:dns --publish, and mail:dns-check is all OK", async () => {
    if (configured?.err) console.log("configure-dkim stderr:", configured.err.trim());
    expect(configured?.out).toMatch(/signing signed\.test with s1-rsa, s1-ed25519 on vn1 \(generation \d+\)\n/);
    const check = await h.cli(["mail:dns-check", "vn1", D]);
    expect(check.code, check.out).toBe(0);
    expect(check.out).toMatch(/fcrdns\s+10\.251\.\d+\.\d+\s+PTR\+A\s+OK/);
  });

  it("a message submitted on 587 carries RSA and Ed25519 signatures that mailauth verifies: DKIM, SPF and DMARC pass", async () => {
    const signed = await signedMessage();
    expect(headerValues(signed, "DKIM-Signature")).toHaveLength(2);
    const t1 = performance.now();
    const result = await verify(signed, ns.nsAddress);
    timings.mailauthMs = performance.now() - t1;
    const dkim = result.dkim.results.map((r) => [r.signingDomain, r.selector, r.algo, r.status.result]).sort();
    expect(dkim).toEqual([
      [D, "s1-ed25519", "ed25519-sha256", "pass"],
      [D, "s1-rsa", "rsa-sha256", "pass"],
    ]);
    expect(result.spf && result.spf.status.result).toBe("pass");
    expect(result.dmarc && result.dmarc.status.result).toBe("pass");
    expect(result.dmarc && result.dmarc.policy).toBe("quarantine");
  });

  it("the same message with one header byte changed fails both DKIM signatures", async () => {
    const signed = await signedMessage();
    const tampered = signed.replace("Subject: Signed lunch", "Subject: Signed lunck");
    expect(tampered.length).toBe(signed.length);
    expect(tampered).not.toBe(signed);
    const result = await verify(tampered, ns.nsAddress);
    expect(result.dkim.results.map((r) => r.status.result)).toEqual(["fail", "fail"]);
    // With SPF failing too (another sending address), DMARC has nothing aligned left: fail.
    const elsewhere = await verify(tampered, "192.0.2.200");
    expect(elsewhere.spf && elsewhere.spf.status.result).toBe("fail");
    expect(elsewhere.dmarc && elsewhere.dmarc.status.result).toBe("fail");
  });
});
