// The deliver service against a real agent (in process, without a mail host, so every state it
// is sent is refused): a refusal is recorded with the agent's words and shown by `status` and
// `mail:status`; a newer generation starts the count again; and a whole-state push (vnode set)
// checks the agent's certificate against the revocation list like every other path.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Certificate, Vnode } from "../../controller/db/entities/index.ts";
import { startHarness, type Harness } from "../helpers/controller-harness.ts";

let harness: Harness;

async function statusOf(name: string): Promise<Record<string, unknown> | undefined> {
  const result = await harness.cli(["status", "--json"]);
  return (JSON.parse(result.out) as Array<Record<string, unknown>>).find((r) => r["vnode"] === name);
}

async function until(predicate: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await predicate()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

beforeAll(async () => {
  harness = await startHarness();
});

afterAll(async () => {
  await harness?.close();
});

describe("deliver", () => {
  it("a refused state is recorded with the agent's words and shown by status and mail:status", async () => {
    await harness.addAgent("vn-refuse");
    await until(async () => (await statusOf("vn-refuse"))?.["connected"] === true, 10_000, "vn-refuse up");
    const set = await harness.cli(["vnode", "set", "vn-refuse", "--rspamd", "0"]);
    expect(set.code).toBe(0); // stored; the push is an outcome, not the command's failure
    expect(set.err).toMatch(/not pushed: vnode vn-refuse refused generation \d+: .*without a mail host/);
    const row = await statusOf("vn-refuse");
    expect(row?.["refused"]).toMatch(/without a mail host/);
    expect(row?.["refusedGeneration"]).toBe(row?.["generation"]);
    expect(row?.["refusedCount"]).toBeGreaterThanOrEqual(1);
    expect(Date.parse(String(row?.["retryAt"]))).toBeGreaterThan(Date.now() - 60_000);
    const table = await harness.cli(["status"]);
    expect(table.out).toMatch(/generation \d+: .*without a mail host/);
    const mail = JSON.parse((await harness.cli(["mail:status", "vn-refuse", "--json"])).out) as {
      refused: { generation: number; reason: string } | null;
      problems: string[];
    };
    expect(mail.refused?.reason).toMatch(/without a mail host/);
    expect(mail.problems.join("; ")).toMatch(/refused: generation \d+/);
    expect((await harness.cli(["mail:status", "vn-refuse"])).out).toMatch(/REFUSED/);
    // A newer generation is a new attempt: its count starts at one.
    const again = await harness.cli(["vnode", "set", "vn-refuse", "--clamav", "0"]);
    expect(again.err).toMatch(/refused generation/);
    const after = await statusOf("vn-refuse");
    expect(after?.["refusedGeneration"]).toBe(after?.["generation"]);
    expect(after?.["refusedGeneration"]).not.toBe(row?.["refusedGeneration"]);
  });

  it("a whole-state push refuses an agent whose certificate was revoked (the vnode still enrolled)", async () => {
    await harness.addAgent("vn-revoked-cert");
    await until(async () => (await statusOf("vn-revoked-cert"))?.["connected"] === true, 10_000, "vn up");
    const em = harness.db.em().fork();
    const vnode = await em.findOneOrFail(Vnode, { name: "vn-revoked-cert" });
    await em.nativeUpdate(Certificate, { vnodeId: vnode.id, revokedAt: null }, { revokedAt: new Date() });
    const set = await harness.cli(["vnode", "set", "vn-revoked-cert", "--rspamd", "0"]);
    expect(set.err).toMatch(/not pushed: .*revoked/);
    expect((await statusOf("vn-revoked-cert"))?.["refused"]).toBeNull();
  });
});
