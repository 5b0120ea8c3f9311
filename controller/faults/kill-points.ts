// Crash points for the fault tests (issue 13): the controller kills itself with SIGKILL at a named
// step of a mutation or a push, so a test can prove that whatever the database holds afterwards is
// whole (rows, generation and command log together or none of them) and that every vnode still
// converges. Armed only by the entry point from NETSERVA_CONTROLLER_KILL_AT=<point>[:<n>][,…] (the
// n-th time the point is reached, default the first; several points: whichever comes first);
// unarmed, every point is a no-op.
import { writeSync } from "node:fs";
import { invalid } from "../../common/errors.ts";

export const KILL_POINTS = [
  /** Inside the mutation's transaction: rows, generation bump and log row written, not committed. */
  "mutation-before-commit",
  /** The mutation committed; nothing sent to the vnode yet. */
  "mutation-after-commit",
  /** A push is on the wire (the agent is receiving or applying it); no answer yet. */
  "push-sent",
  /** The agent answered that it applied the push; the controller has not recorded it. */
  "push-applied",
  /** The reconciler's whole-state push (to a vnode behind its generation) is on the wire; no
   *  answer yet. A mutation's push never reaches it, and the reconciler's never "push-sent". */
  "reconcile-push-sent",
] as const;

export type KillPoint = (typeof KILL_POINTS)[number];

/** How long after a push is sent "push-sent" fires: the request is flushed and the agent is busy
 *  with it (a domain change's apply includes a Postfix reload), but has not answered. */
const PUSH_SENT_DELAY_MS = 25;

let armed: Array<{ point: KillPoint; remaining: number }> = [];

/** Parses `<point>[:<n>][,<point>[:<n>]…]` and arms them; undefined or "" disarms. Unknown names are refused. */
export function armKillPoint(spec: string | undefined): void {
  armed = [];
  if (spec === undefined || spec === "") return;
  const parsed = spec.split(",").map((one) => {
    const [name = "", count = "1"] = one.split(":");
    const point = KILL_POINTS.find((p) => p === name);
    if (!point)
      throw invalid("NETSERVA_CONTROLLER_KILL_AT", `unknown kill point '${name}' (one of ${KILL_POINTS.join(", ")})`);
    const remaining = Number(count);
    if (!Number.isInteger(remaining) || remaining < 1)
      throw invalid("NETSERVA_CONTROLLER_KILL_AT", `'${count}' is not a positive whole number`);
    return { point, remaining };
  });
  armed = parsed;
}

/** SIGKILLs this process if the point is armed and this is its n-th arrival. */
export function killPoint(point: KillPoint): void {
  const entry = armed.find((a) => a.point === point);
  if (!entry) return;
  entry.remaining -= 1;
  if (entry.remaining > 0) return;
  // Written synchronously before dying: the test checks the kill happened here and not elsewhere.
  writeSync(2, `kill point ${point} reached: SIGKILL\n`);
  process.kill(process.pid, "SIGKILL");
}

/** killPoint a moment later (for a step that is in flight, like a push on the wire). */
export function killPointSoon(point: KillPoint): void {
  if (!armed.some((a) => a.point === point)) return;
  setTimeout(() => killPoint(point), PUSH_SENT_DELAY_MS);
}
