// The lease holder's side of the change feed: told that a vnode changed, it reads the committed
// changes past the generation the vnode applied and pushes them one generation at a time through
// the deliver service (which stamps our lease epoch). One run per vnode at a time; a call during a
// run makes it look again when it ends, so a burst of commits costs one read per round, not one
// per commit. A missing row (a bulk change over the feed's limit, a change made outside the
// mutation path) or an agent at another base means the whole state.
import type { Logger } from "../../common/log.ts";
import type { Database } from "../db/open-database.ts";
import { decodeChanges } from "./change-feed.ts";
import type { DeliverOutcome, DeliverRequest } from "./deliver.ts";

export interface ChangePusherOptions {
  db: Database;
  deliver: { deliver(request: DeliverRequest): Promise<DeliverOutcome> };
  log: Logger;
}

export interface ChangePusher {
  /** Push what `vnode` has not applied yet (never throws; failures are logged). */
  push(vnode: string): void;
  /** Resolves when no run is under way (tests, shutdown). */
  idle(): Promise<void>;
}

type Row = { generation: string | number; actor: string; changes: Uint8Array; applied: string | number };

export function createChangePusher(options: ChangePusherOptions): ChangePusher {
  const running = new Map<string, Promise<void>>();
  const again = new Set<string>();

  const pending = (vnode: string): Promise<Row[]> =>
    options.db
      .em()
      .getConnection()
      .execute<Row[]>(
        `select c.generation, c.actor, c.changes, v.applied_generation as applied
         from vnode_changes c join vnodes v on v.id = c.vnode_id
         where v.name = ? and v.status = 'enrolled' and c.generation > v.applied_generation
         order by c.generation`,
        [vnode],
      );

  /** One round: returns whether something was pushed (then another round may find more). */
  const round = async (vnode: string): Promise<void> => {
    const rows = await pending(vnode);
    const first = rows[0];
    if (!first) return;
    let applied = Number(first.applied);
    for (const row of rows) {
      const generation = Number(row.generation);
      if (generation <= applied) continue;
      const outcome =
        generation === applied + 1
          ? await options.deliver.deliver({
              vnode,
              actor: row.actor,
              changes: { generation, list: decodeChanges(row.changes) },
            })
          : await options.deliver.deliver({ vnode, actor: "controller" });
      if (!outcome.pushed) {
        // Refused, fenced or unreachable: the reconciler (or the next holder) takes it from here.
        options.log.warn("push of committed changes failed", { vnode, generation, reason: outcome.reason });
        return;
      }
      applied = outcome.appliedGeneration ?? generation;
    }
  };

  const run = (vnode: string): Promise<void> =>
    (async () => {
      do {
        again.delete(vnode);
        await round(vnode).catch((error: unknown) =>
          options.log.warn("push of committed changes failed", { vnode, error: String(error) }),
        );
      } while (again.has(vnode));
    })().finally(() => running.delete(vnode));

  return {
    push(vnode) {
      if (running.has(vnode)) {
        again.add(vnode);
        return;
      }
      running.set(vnode, run(vnode));
    },
    async idle() {
      while (running.size) await Promise.all(running.values());
    },
  };
}
