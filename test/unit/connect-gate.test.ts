// The fleet's connect gate: never more than `limit` links connecting at once, the rest served in
// order as slots free up, and a slot released twice counts once.
import { describe, expect, it } from "vitest";
import { createConnectGate } from "../../controller/fleet/connect-gate.ts";

describe("connect gate", () => {
  it("holds at most `limit` in flight and serves the waiting in order", async () => {
    const gate = createConnectGate(3);
    const order: number[] = [];
    const releases: Array<() => void> = [];
    const asks = Array.from({ length: 10 }, (_, i) =>
      gate.acquire().then((release) => {
        order.push(i);
        releases.push(release);
      }),
    );
    await Promise.resolve();
    await Promise.resolve();
    expect(gate.inFlight).toBe(3);
    expect(order).toEqual([0, 1, 2]);
    while (order.length < 10) {
      const release = releases.shift();
      release?.();
      release?.(); // twice: must not free a second slot
      await new Promise((r) => setImmediate(r));
      expect(gate.inFlight).toBeLessThanOrEqual(3);
    }
    await Promise.all(asks);
    expect(order).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(gate.peak).toBe(3);
    for (const release of releases) release();
    expect(gate.inFlight).toBe(0);
  });

  it("refuses a limit below one", () => {
    expect(() => createConnectGate(0)).toThrow(/at least 1/);
  });
});
