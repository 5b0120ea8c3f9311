// The fault tests' crash points: armed only by a well-formed NETSERVA_CONTROLLER_KILL_AT, inert
// otherwise (a point that is not armed never kills, so production code paths can call them freely).
import { afterEach, describe, expect, it } from "vitest";
import { armKillPoint, killPoint, KILL_POINTS } from "../../controller/faults/kill-points.ts";

describe("kill points", () => {
  afterEach(() => armKillPoint(undefined));

  it("refuses an unknown point or a bad count, naming the variable", () => {
    expect(() => armKillPoint("mutation-somewhere")).toThrow(/NETSERVA_CONTROLLER_KILL_AT: unknown kill point/);
    expect(() => armKillPoint("push-sent:0")).toThrow(/NETSERVA_CONTROLLER_KILL_AT: '0' is not a positive/);
    expect(() => armKillPoint("push-sent:x")).toThrow(/NETSERVA_CONTROLLER_KILL_AT/);
  });

  it("does nothing when unarmed, or armed for another point or a later arrival", () => {
    for (const point of KILL_POINTS) killPoint(point);
    armKillPoint("push-applied:3");
    killPoint("mutation-before-commit");
    killPoint("push-applied");
    killPoint("push-applied");
    // Still alive: the third arrival is the one that kills (not reached here).
    expect(process.exitCode ?? 0).toBe(0);
  });
});
