// Readiness by polling with a deadline (never a fixed sleep): pid files, live processes, sockets.
import { readFileSync } from "node:fs";
import { connect } from "node:net";
import { setTimeout as delay } from "node:timers/promises";

export async function pollUntil(
  what: string,
  check: () => Promise<boolean> | boolean,
  deadlineMs = 10_000,
  everyMs = 20,
): Promise<void> {
  const end = Date.now() + deadlineMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > end) throw new Error(`timed out after ${deadlineMs} ms waiting for ${what}`);
    await delay(everyMs);
  }
}

/** The pid in a daemon's pid file if that process is alive, else undefined. */
export function livePid(pidFile: string): number | undefined {
  let pid: number;
  try {
    pid = Number.parseInt(readFileSync(pidFile, "utf8").trim(), 10);
  } catch {
    return undefined;
  }
  if (!Number.isInteger(pid) || pid <= 1) return undefined;
  try {
    process.kill(pid, 0);
    return pid;
  } catch {
    return undefined;
  }
}

/** True when a unix socket accepts a connection (and optionally greets with `banner`). */
export function socketAnswers(path: string, banner?: string, timeoutMs = 1_000): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    const done = (ok: boolean): void => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(timeoutMs, () => done(false));
    s.on("error", () => done(false));
    s.on("connect", () => (banner === undefined ? done(true) : undefined));
    s.on("data", (d) => done(d.toString().startsWith(banner ?? "")));
  });
}
