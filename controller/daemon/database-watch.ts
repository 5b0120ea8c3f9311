// Whether the daemon can reach its database, asked every few seconds. The daemon keeps serving
// while the database is away (links stay up, commands fail with exit 5); this says so once in the
// log when it goes and once when it is back, and keeps a gauge for the metrics.
import type { Logger } from "../../common/log.ts";
import type { Database } from "../db/open-database.ts";

export interface DatabaseWatch {
  /** false from the first failed probe until the next one that succeeds. */
  reachable(): boolean;
  /** One probe now (what the timer runs). */
  check(): Promise<boolean>;
  /** No more probes; resolves once the one under way (if any) has ended, so the database can be
   *  closed under no query. */
  stop(): Promise<void>;
}

export function watchDatabase(options: {
  db: Database;
  log: Logger;
  intervalMs?: number;
  onChange?: (reachable: boolean) => void;
}): DatabaseWatch {
  let reachable = true;
  let stopped = false;
  let running: Promise<boolean> | undefined;
  const probe = async (): Promise<boolean> => {
    try {
      await options.db.em().getConnection().execute("select 1");
      if (!reachable) options.log.info("database reachable again");
      reachable = true;
    } catch (error) {
      if (reachable) options.log.warn("database unreachable", { error: (error as Error).message ?? String(error) });
      reachable = false;
    }
    options.onChange?.(reachable);
    return reachable;
  };
  // One probe at a time: a probe that waits on a dead connection must not pile up others.
  const check = (): Promise<boolean> => {
    running ??= probe().finally(() => (running = undefined));
    return running;
  };
  const timer = setInterval(() => {
    if (!stopped) void check();
  }, options.intervalMs ?? 2000);
  timer.unref();
  return {
    reachable: () => reachable,
    check,
    async stop() {
      stopped = true;
      clearInterval(timer);
      await running;
    },
  };
}
