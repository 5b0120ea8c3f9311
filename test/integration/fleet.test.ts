// The fleet over time: a vanished agent is marked down within 15 s and comes back by itself;
// a short-lived certificate renews without dropping the controller's link; revoke cuts it off.
import { X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startHarness, type Harness } from "../helpers/controller-harness.ts";

let harness: Harness;

async function statusOf(name: string): Promise<Record<string, unknown> | undefined> {
  const result = await harness.cli(["status", "--json"]);
  return (JSON.parse(result.out) as Array<Record<string, unknown>>).find((r) => r["vnode"] === name);
}

async function until(predicate: () => Promise<boolean>, ms: number): Promise<number> {
  const started = Date.now();
  while (Date.now() - started < ms) {
    if (await predicate()) return Date.now() - started;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`condition not met within ${ms} ms`);
}

beforeAll(async () => {
  harness = await startHarness({ agentCertificateSeconds: 9 });
});

afterAll(async () => {
  await harness?.close();
});

describe("fleet", () => {
  it("marks a stopped agent down within 15 s and sees it reconnect by itself", async () => {
    const vn = await harness.addAgent("vn-down");
    await until(async () => (await statusOf("vn-down"))?.["connected"] === true, 10_000);
    await vn.agent.close();
    const downAfter = await until(async () => (await statusOf("vn-down"))?.["connected"] === false, 15_000);
    expect(downAfter).toBeLessThan(15_000);
    await vn.restart();
    await until(async () => (await statusOf("vn-down"))?.["connected"] === true, 10_000);
  });

  it("renews a short-lived certificate before expiry without dropping the link", async () => {
    await harness.addAgent("vn-renew");
    const certPath = join(harness.dir, "agent-vn-renew", "agent.crt");
    const first = new X509Certificate(readFileSync(certPath, "utf8"));
    const firstSerial = first.serialNumber;
    await until(async () => (await statusOf("vn-renew"))?.["connected"] === true, 10_000);
    await until(async () => new X509Certificate(readFileSync(certPath, "utf8")).serialNumber !== firstSerial, 12_000);
    // Past the first certificate's expiry (waited for, not slept), the link still carries health
    // reports: one that arrived after that moment.
    const expired = first.validToDate.getTime();
    await until(async () => Date.now() > expired, 15_000);
    await until(async () => Date.parse(String((await statusOf("vn-renew"))?.["lastHealthAt"])) > expired, 10_000);
    const row = await statusOf("vn-renew");
    expect(row?.["connected"]).toBe(true);
    expect(Date.parse(String(row?.["certificateNotAfter"]))).toBeGreaterThan(Date.now());
  });

  it("revoke drops the vnode at once and keeps it down", async () => {
    await harness.addAgent("vn-revoke");
    await until(async () => (await statusOf("vn-revoke"))?.["connected"] === true, 10_000);
    const revoked = await harness.cli(["vnode", "revoke", "vn-revoke"]);
    expect(revoked.code).toBe(0);
    await harness.controller.fleet.refresh();
    await until(async () => (await statusOf("vn-revoke"))?.["connected"] === false, 3000);
    // What would bring a lost link back (a refresh of the fleet) leaves it down.
    await harness.controller.fleet.refresh();
    expect((await statusOf("vn-revoke"))?.["status"]).toBe("revoked");
    expect((await statusOf("vn-revoke"))?.["connected"]).toBe(false);
  });

  it("revoking an unknown vnode says not found", async () => {
    const result = await harness.cli(["vnode", "revoke", "nope"]);
    expect(result.code).toBe(3);
    expect(result.err).toMatch(/not found/);
  });
});
