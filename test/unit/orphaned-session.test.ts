// killOrphanedSession on real processes: the workers left in a session whose leader died are
// ended, and nothing is done while the leader lives.
import { execFile } from "node:child_process";
import { afterEach, describe, expect, it } from "vitest";
import { isRunning, killOrphanedSession, waitUntil } from "../../agent/process.ts";

/** A session leader (sh, via setsid) with two sleeping workers; the leader exits unless `stay`. */
async function session(stay: boolean): Promise<{ sid: number; workers: number[] }> {
  const script = `sleep 60 & a=$!; sleep 60 & b=$!; echo $$ $a $b; ${stay ? "wait" : "exit 0"}`;
  return new Promise((resolve, reject) => {
    const child = execFile("setsid", ["sh", "-c", script], () => undefined);
    child.stdout?.once("data", (d: Buffer) => {
      const [sid, ...workers] = d.toString().trim().split(" ").map(Number);
      if (sid === undefined) reject(new Error("no pids"));
      else resolve({ sid, workers });
    });
  });
}

const started: number[] = [];
afterEach(() => {
  for (const pid of started.splice(0))
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // gone
    }
});

describe("killOrphanedSession", () => {
  it("ends the workers of a session whose leader died", async () => {
    const s = await session(false);
    started.push(...s.workers);
    await waitUntil("the leader to exit", 10_000, async () => !(await isRunning(s.sid)));
    expect(await Promise.all(s.workers.map((p) => isRunning(p)))).toEqual([true, true]);
    expect(await killOrphanedSession(s.sid)).toBe(2);
    await waitUntil("the workers to go", 10_000, async () =>
      (await Promise.all(s.workers.map((p) => isRunning(p)))).every((r) => !r),
    );
  });

  it("does nothing while the leader lives", async () => {
    const s = await session(true);
    started.push(s.sid, ...s.workers);
    expect(await killOrphanedSession(s.sid)).toBe(0);
    expect(await Promise.all([s.sid, ...s.workers].map((p) => isRunning(p)))).toEqual([true, true, true]);
  });
});
