// The link's reconnect delays: exponential ceiling, capped, jittered under it, reset on success.
import { describe, expect, it } from "vitest";
import { createReconnectBackoff } from "../../controller/fleet/reconnect-backoff.ts";
import { RECONNECT_INITIAL_MS, RECONNECT_MAX_MS } from "../../controller/fleet/vnode-link.ts";

/** A fixed sequence of "random" numbers, repeated. */
const sequence = (values: number[]): (() => number) => {
  let i = 0;
  return () => values[i++ % values.length] ?? 0;
};

describe("reconnect backoff", () => {
  it("doubles the ceiling up to the cap and keeps the delay in [ceiling/2, ceiling)", () => {
    const low = createReconnectBackoff({ initialMs: 250, maxMs: 5000, random: () => 0 });
    expect(Array.from({ length: 8 }, () => low.next())).toEqual([125, 250, 500, 1000, 2000, 2500, 2500, 2500]);
    const high = createReconnectBackoff({ initialMs: 250, maxMs: 5000, random: () => 0.999 });
    expect(Array.from({ length: 8 }, () => high.next())).toEqual([249, 499, 999, 1999, 3998, 4997, 4997, 4997]);
  });

  it("spreads the delays of links cut at the same moment", () => {
    const delays = (r: number): number[] => {
      const b = createReconnectBackoff({ initialMs: 250, maxMs: 5000, random: sequence([r]) });
      return Array.from({ length: 6 }, () => b.next());
    };
    const a = delays(0.1);
    const b = delays(0.7);
    for (let i = 0; i < a.length; i++) expect(a[i]).not.toBe(b[i]);
  });

  it("draws a new random number for every attempt (not one jitter for the whole sequence)", () => {
    let draws = 0;
    const b = createReconnectBackoff({
      initialMs: 1000,
      maxMs: 1000,
      random: () => [0, 0.5, 0.25][draws++ % 3] ?? 0,
    });
    expect([b.next(), b.next(), b.next()]).toEqual([500, 750, 625]);
    expect(draws).toBe(3);
  });

  it("starts from the first ceiling again after reset (a report came in)", () => {
    const b = createReconnectBackoff({ initialMs: 250, maxMs: 5000, random: () => 0 });
    for (let i = 0; i < 5; i++) b.next();
    b.reset();
    expect(b.next()).toBe(125);
  });

  it("with Math.random, stays within the bounds the link uses", () => {
    const b = createReconnectBackoff({ initialMs: RECONNECT_INITIAL_MS, maxMs: RECONNECT_MAX_MS });
    let ceiling = RECONNECT_INITIAL_MS;
    for (let i = 0; i < 50; i++) {
      const d = b.next();
      expect(d).toBeGreaterThanOrEqual(ceiling / 2);
      expect(d).toBeLessThan(ceiling);
      ceiling = Math.min(ceiling * 2, RECONNECT_MAX_MS);
    }
  });

  it("refuses bounds that make no sense, naming them", () => {
    expect(() => createReconnectBackoff({ initialMs: 0, maxMs: 10 })).toThrow(/initialMs/);
    expect(() => createReconnectBackoff({ initialMs: 100, maxMs: 10 })).toThrow(/maxMs/);
  });
});
