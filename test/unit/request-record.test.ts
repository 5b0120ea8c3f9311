// The agent's request record is bounded in bytes as well as in entries.
import { describe, expect, it } from "vitest";
import { createRequestRecord, estimateBytes } from "../../agent/server/request-record.ts";

const response = (chars: number): { usage: Array<{ address: string; bytes: bigint }> } => ({
  usage: Array.from({ length: chars / 100 }, (_, i) => ({ address: `${"a".repeat(90)}${i}`.slice(0, 100), bytes: 1n })),
});

describe("request record", () => {
  it("keeps the bytes it holds under its limit, dropping the oldest first", () => {
    const record = createRequestRecord({ maxBytes: 1_000_000, maxEntryBytes: 300_000 });
    for (let i = 0; i < 50; i += 1) record.set(`r${i}`, { method: "ListMailboxUsage", response: response(100_000) });
    expect(record.bytes).toBeLessThanOrEqual(1_000_000);
    expect(record.size).toBeGreaterThan(1);
    expect(record.get("r49")).toBeDefined();
    expect(record.get("r0")).toBeUndefined();
  });

  it("does not keep one response larger than an entry may be", () => {
    const record = createRequestRecord({ maxEntryBytes: 100_000 });
    record.set("small", { method: "Ping", response: { ok: true } });
    record.set("big", { method: "ListMailboxUsage", response: response(1_000_000) });
    expect(record.get("big")).toBeUndefined();
    expect(record.get("small")).toBeDefined();
    expect(record.bytes).toBeLessThan(1_000);
  });

  it("still bounds the number of entries", () => {
    const record = createRequestRecord({ capacity: 3 });
    for (const id of ["a", "b", "c", "d"]) record.set(id, { method: "Ping", response: {} });
    expect(record.size).toBe(3);
    expect(record.get("a")).toBeUndefined();
  });

  it("stops walking once past the limit: a huge response is only known to be over it", () => {
    const huge = response(10_000_000);
    expect(estimateBytes(huge, 1000)).toBeGreaterThan(1000);
    expect(estimateBytes(huge, 1000)).toBeLessThan(estimateBytes(huge, Number.MAX_SAFE_INTEGER));
  });
});
