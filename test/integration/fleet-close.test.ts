// Closing the fleet (serve's SIGTERM) while its periodic re-read of the vnode list is under way
// must leave no link behind: a link made after close() reconnects for ever and keeps serve from
// exiting (fault-controller-kill's teardown once waited 300 s on such a serve). And close() waits
// for that read: serve closes the database next, and a pool destroyed under a running query
// failed it and left a socket that held serve past its shutdown deadline (serve-shutdown, CI).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startHarness, type Harness } from "../helpers/controller-harness.ts";

let harness: Harness;

beforeAll(async () => {
  harness = await startHarness();
});

afterAll(async () => {
  await harness?.close();
});

async function connected(name: string): Promise<void> {
  for (let i = 0; i < 300; i += 1) {
    const r = await harness.cli(["status", "--json"]);
    const row = (JSON.parse(r.out) as Array<Record<string, unknown>>).find((x) => x["vnode"] === name);
    if (row?.["connected"] === true) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${name} never connected`);
}

describe("fleet close", () => {
  it("a refresh still reading the vnode list when the fleet closes makes no link, and close waits for it", async () => {
    await harness.addAgent("vn-close");
    await connected("vn-close");
    const fleet = harness.controller.fleet;
    expect(fleet.link("vn-close")).toBeDefined();
    // The refresh stops at its first database read; close() runs meanwhile.
    let settled = false;
    const refreshing = fleet.refresh().finally(() => (settled = true));
    await fleet.close();
    expect(settled).toBe(true);
    await refreshing;
    expect(fleet.link("vn-close")).toBeUndefined();
  });
});
