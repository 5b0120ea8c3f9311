import { describe, expect, it } from "vitest";
import { create } from "@bufbuild/protobuf";
import { DesiredStateSchema } from "../../common/gen/netserva/mail/v1/state_pb.ts";
import { serializeApplies } from "../../agent/server/serialized-mail-host.ts";
import type { MailHostPort } from "../../agent/server/mail-port.ts";

describe("serializeApplies", () => {
  it("never runs two applies at once, and a failure does not block the next", async () => {
    let running = 0;
    let maxRunning = 0;
    let calls = 0;
    const slow = async () => {
      running += 1;
      maxRunning = Math.max(maxRunning, running);
      await new Promise((r) => setTimeout(r, 10));
      running -= 1;
      calls += 1;
      if (calls === 2) throw new Error("boom");
      return { changed: true, diff: [], digest: "d" };
    };
    const port: MailHostPort = {
      applyState: slow,
      applyChanges: slow,
      digest: async () => "d",
      drift: async () => [],
      services: async () => [],
    };
    const serial = serializeApplies(port);
    const state = create(DesiredStateSchema, {});
    const results = await Promise.allSettled([
      serial.applyState(state, { dryRun: false }),
      serial.applyChanges([], { dryRun: false }),
      serial.applyState(state, { dryRun: false }),
      serial.applyChanges([], { dryRun: false }),
    ]);
    expect(maxRunning).toBe(1);
    expect(results.map((r) => r.status)).toEqual(["fulfilled", "rejected", "fulfilled", "fulfilled"]);
  });
});
