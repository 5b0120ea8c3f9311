// The storage rule end to end through the CLI: once the vnode's agent has reported the size of
// its mail filesystem (vnodes.fs_capacity_bytes, written from health reports), the quotas on the
// vnode must fit in it unless the domain allows overcommit.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Vnode } from "../../controller/db/entities/index.ts";
import { startHarness, type Harness } from "../helpers/controller-harness.ts";

let harness: Harness;

beforeAll(async () => {
  harness = await startHarness();
  expect((await harness.cli(["vnode", "add", "cap1", "--address", "127.0.0.1:9"])).code).toBe(0);
  await harness.db.em().nativeUpdate(Vnode, { name: "cap1" }, { fsCapacityBytes: 3 * 1024 ** 3 });
  expect((await harness.cli(["addvmaildomain", "cap1", "cap.test", "--skip-dns-check", "--quota", "1G"])).code).toBe(0);
  expect(
    (await harness.cli(["addvmaildomain", "cap1", "over.test", "--skip-dns-check", "--quota", "1G", "--overcommit"]))
      .code,
  ).toBe(0);
});

afterAll(async () => {
  await harness?.close();
});

describe("vnode storage rule through the CLI", () => {
  it("accepts quotas that fit the reported filesystem and refuses the one that does not; overcommit goes past; raising a quota past what is left is refused", async () => {
    for (const user of ["a", "b", "c"]) {
      const run = await harness.cli(
        ["addvmail", "cap1", `${user}@cap.test`, "--password-stdin"],
        "Sufficiently-long-1",
      );
      expect(run.code, run.err).toBe(0);
    }
    const refused = await harness.cli(["addvmail", "cap1", "d@cap.test", "--password-stdin"], "Sufficiently-long-1");
    expect(refused.code).toBe(4);
    expect(refused.err).toMatch(/does not fit/);
    expect((await harness.cli(["shvmail", "cap1", "d@cap.test"])).code).toBe(3);
    // One story about what is left of the same 3G, so one test (the steps depend on each other).
    // A domain with overcommit goes past it:
    const over = await harness.cli(["addvmail", "cap1", "e@over.test", "--password-stdin"], "Sufficiently-long-1");
    expect(over.code, over.err).toBe(0);
    // Raising a quota past what is left is refused:
    const raised = await harness.cli(["chvmail", "cap1", "a@cap.test", "--quota", "2G"]);
    expect(raised.code).toBe(4);
    expect(raised.err).toMatch(/does not fit/);
  });
});
