// The agent's own guard on an unmanaged vnode: every apply is refused with the reason and the
// way out, whatever the controller sends; status is only asked (agent/server/unmanaged-port.ts).
import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { DesiredStateSchema } from "../../common/gen/netserva/mail/v1/state_pb.ts";
import { NetservaError } from "../../common/errors.ts";
import { createUnmanagedPort } from "../../agent/server/unmanaged-port.ts";
import type { ServiceControl } from "../../agent/sc/service-control.ts";

function recordingSc(): { sc: ServiceControl; calls: string[] } {
  const calls: string[] = [];
  const act = (what: string) => async (name: string) => void calls.push(`${what} ${name}`);
  const sc = {
    kind: "direct",
    registry: undefined as never,
    start: act("start"),
    reload: act("reload"),
    restart: act("restart"),
    stop: act("stop"),
    enable: act("enable"),
    status: async (name: string) => {
      calls.push(`status ${name}`);
      return name === "postfix" ? { name, running: true, pid: 42 } : { name, running: false };
    },
  } satisfies ServiceControl;
  return { sc, calls };
}

describe("unmanaged mail port", () => {
  it("refuses whole states and changes with failed_precondition naming the reason and the way out", async () => {
    const { sc, calls } = recordingSc();
    const port = createUnmanagedPort(sc, () => "/etc/postfix/main.cf was not written by netserva-mail");
    const state = create(DesiredStateSchema, { generation: 5n });
    for (const attempt of [port.applyState(state, { dryRun: false }), port.applyChanges([], { dryRun: true })]) {
      const error = await attempt.then(
        () => undefined,
        (e: unknown) => NetservaError.from(e),
      );
      expect(error?.code).toBe("failed_precondition");
      expect(error?.message).toContain("unmanaged (/etc/postfix/main.cf was not written by netserva-mail)");
      expect(error?.message).toContain("vnode manage");
    }
    expect(calls).toEqual([]);
  });

  it("reports the daemons by asking only, and no digest or drift", async () => {
    const { sc, calls } = recordingSc();
    const port = createUnmanagedPort(sc, () => "x");
    const services = await port.services();
    expect(services.map((s) => [s.name, s.state])).toEqual([
      ["postfix", "active"],
      ["dovecot", "stopped"],
    ]);
    expect(services[0]?.detail).toContain("unmanaged");
    expect(await port.digest()).toBe("");
    expect(await port.drift()).toEqual([]);
    expect(calls.every((c) => c.startsWith("status "))).toBe(true);
  });
});
