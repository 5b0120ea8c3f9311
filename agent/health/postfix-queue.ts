// Postfix queue sizes, read from the queue directories (cheap, works while Postfix is down), and
// the age of the oldest deferred message from `postqueue -j` (its arrival_time), falling back to
// the queue file's birth time when postqueue cannot answer.
import { readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { runChecked } from "../process.ts";

export const QUEUES = ["active", "deferred", "hold", "incoming", "maildrop"] as const;
export type QueueName = (typeof QUEUES)[number];

export interface QueueSizes {
  counts: Record<QueueName, number>;
  oldestDeferredSeconds: number;
}

async function files(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string): Promise<void> => {
    const entries = await readdir(d, { withFileTypes: true }).catch(() => []);
    for (const e of entries) {
      if (e.isDirectory()) await walk(join(d, e.name));
      else out.push(join(d, e.name));
    }
  };
  await walk(dir);
  return out;
}

async function oldestFromPostqueue(configDir: string, timeoutMs: number, now: number): Promise<number | undefined> {
  const text = await runChecked("/usr/sbin/postqueue", ["-c", configDir, "-j"], {
    timeoutMs,
    maxBuffer: 64 << 20,
  }).then(
    (r) => r.stdout,
    () => undefined,
  );
  if (text === undefined) return undefined;
  let oldest: number | undefined;
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    try {
      const m = JSON.parse(line) as { queue_name?: string; arrival_time?: number };
      if (m.queue_name === "deferred" && typeof m.arrival_time === "number")
        oldest = Math.min(oldest ?? Infinity, m.arrival_time * 1000);
    } catch {
      // a partial line from a queue that changed while postqueue read it
    }
  }
  return oldest === undefined ? undefined : Math.max(0, (now - oldest) / 1000);
}

export async function postfixQueueSizes(o: {
  queueDir: string;
  configDir: string;
  timeoutMs: number;
}): Promise<QueueSizes> {
  const listed = await Promise.all(QUEUES.map(async (q) => [q, await files(join(o.queueDir, q))] as const));
  const counts = Object.fromEntries(listed.map(([q, f]) => [q, f.length])) as Record<QueueName, number>;
  const deferred = listed.find(([q]) => q === "deferred")?.[1] ?? [];
  const now = Date.now();
  let oldestDeferredSeconds = 0;
  if (deferred.length > 0) {
    const fromPostqueue = await oldestFromPostqueue(o.configDir, o.timeoutMs, now);
    if (fromPostqueue !== undefined) oldestDeferredSeconds = fromPostqueue;
    else {
      const born = await Promise.all(
        deferred.slice(0, 10_000).map((f) =>
          stat(f).then(
            (s) => s.birthtimeMs || s.ctimeMs,
            () => now,
          ),
        ),
      );
      oldestDeferredSeconds = Math.max(0, (now - Math.min(...born)) / 1000);
    }
  }
  return { counts, oldestDeferredSeconds };
}
