// The agent's one mail-host port: applies one at a time, daemons started after the first apply and
// again after a restart, and nothing started on a vnode that never had a config.
import { describe, expect, it } from "vitest";
import { create } from "@bufbuild/protobuf";
import { DesiredStateSchema } from "../../common/gen/netserva/mail/v1/state_pb.ts";
import { openMailPort } from "../../agent/server/mail-port.ts";
import type { ApplyOutcome, MailHost } from "../../agent/mail/mail-host.ts";
import { createVnodePaths } from "../../agent/paths.ts";
import type { ServiceControl } from "../../agent/sc/service-control.ts";
import { createServiceRegistry } from "../../agent/sc/service-definition.ts";

function fakeSc(running: Set<string>, started: string[]): ServiceControl {
  return {
    kind: "direct",
    registry: createServiceRegistry(),
    start: async (name) => {
      started.push(name);
      running.add(name);
    },
    reload: async () => undefined,
    restart: async (name) => {
      started.push(name);
      running.add(name);
    },
    stop: async (name) => void running.delete(name),
    enable: async () => undefined,
    status: async (name) => ({ name, running: running.has(name) }),
  };
}

function fakeHost(generation: string, apply: () => Promise<ApplyOutcome>, running: Set<string>): MailHost {
  return {
    paths: createVnodePaths("/nonexistent"),
    applyState: apply,
    applyChanges: apply,
    start: async () => undefined,
    ensureFilters: async () => undefined,
    stop: async () => undefined,
    drift: () => [],
    status: async () => ({
      services: ["postfix", "dovecot"].map((name) => ({ name, running: running.has(name) })),
      digest: "d",
      generation,
    }),
    healDone: async () => undefined,
    close: () => undefined,
  };
}

const state = create(DesiredStateSchema, {});
const unchanged = async (): Promise<ApplyOutcome> => ({ changed: false, diff: [], digest: "d" });

describe("the mail-host port", () => {
  it("never runs two applies at once, and a failure does not block the next", async () => {
    let running = 0;
    let maxRunning = 0;
    let calls = 0;
    const slow = async (): Promise<ApplyOutcome> => {
      running += 1;
      maxRunning = Math.max(maxRunning, running);
      await new Promise((r) => setTimeout(r, 10));
      running -= 1;
      calls += 1;
      if (calls === 2) throw new Error("boom");
      return { changed: true, diff: [], digest: "d" };
    };
    const daemons = new Set<string>();
    const port = await openMailPort(fakeHost("0", slow, daemons), fakeSc(daemons, []));
    const results = await Promise.allSettled([
      port.applyState(state, { dryRun: false }),
      port.applyChanges([], { dryRun: false }),
      port.applyState(state, { dryRun: false }),
      port.applyChanges([], { dryRun: false }),
    ]);
    expect(maxRunning).toBe(1);
    expect(calls).toBe(4);
    expect(results.map((r) => r.status)).toEqual(["fulfilled", "rejected", "fulfilled", "fulfilled"]);
    port.close?.();
  });

  it("a fresh vnode starts nothing until its first whole state, then runs Dovecot and Postfix", async () => {
    const daemons = new Set<string>();
    const started: string[] = [];
    const port = await openMailPort(fakeHost("0", unchanged, daemons), fakeSc(daemons, started));
    expect(started).toEqual([]);
    expect((await port.services()).map((s) => s.state)).toEqual(["stopped", "stopped"]);
    await port.applyState(state, { dryRun: true });
    expect(started).toEqual([]);
    await port.applyState(state, { dryRun: false });
    expect(started).toEqual(["dovecot", "postfix"]);
    port.close?.();
  });

  it("after a restart the daemons of the applied config run again, and a stopped one reads failed", async () => {
    const daemons = new Set<string>(["dovecot"]);
    const started: string[] = [];
    const port = await openMailPort(fakeHost("7", unchanged, daemons), fakeSc(daemons, started));
    expect(started).toEqual(["postfix"]);
    daemons.delete("postfix"); // it dies before the first health report asks
    expect((await port.services()).find((s) => s.name === "postfix")?.state).toBe("failed");
    port.close?.();
  });
});
