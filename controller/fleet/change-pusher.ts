// The lease holder's side of the change feed: told that a vnode changed, it reads the committed
// changes past the generation the vnode applied and pushes them one generation at a time through
// the deliver service (which stamps our lease epoch). One run per vnode at a time; a call during a
// run makes it look again when it ends, so a burst of commits costs one read per round, not one
// per commit. A generation with no row (a bulk change over the feed's limit, a whole-state change:
// settings, DKIM, TLS) or an agent at another base means the whole state.
import type { Logger } from "../../common/log.ts";
import type { Database } from "../db/open-database.ts";
import { decodeChanges } from "../db/change-feed.ts";
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

type Row = { generation: string | number; actor: string; changes: Uint8Array };

export function createChangePusher(options: ChangePusherOptions): ChangePusher {
  const running = new Map<string, Promise<void>>();
  const again = new Set<string>();
  const sql = <T extends Array<Record<string, unknown>>>(text: string, params: unknown[]): Promise<T> =>
    options.db.em().getConnection().execute<T>(text, params);

  /** One round: everything between the generation the vnode applied and its desired one. */
  const round = async (vnode: string): Promise<void> => {
    const [target] = await sql<Array<{ id: number; generation: string | number; applied: string | number }>>(
      "select id, generation, applied_generation as applied from vnodes where name = ? and status = 'enrolled' and coalesce(management, '') <> 'unmanaged'",
      [vnode],
    );
    if (!target || Number(target.generation) <= Number(target.applied)) return;
    let applied = Number(target.applied);
    const rows = await sql<Row[]>(
      "select generation, actor, changes from vnode_changes where vnode_id = ? and generation > ? order by generation",
      [target.id, applied],
    );
    const next = new Map(rows.map((row) => [Number(row.generation), row]));
    while (applied < Number(target.generation)) {
      const row = next.get(applied + 1);
      const outcome = row
        ? await options.deliver.deliver({
            vnode,
            actor: row.actor,
            changes: { generation: applied + 1, list: decodeChanges(row.changes) },
          })
        : await options.deliver.deliver({ vnode, actor: "controller" });
      if (!outcome.pushed) {
        // Refused, fenced or unreachable: the reconciler (or the next holder) takes it from here.
        options.log.warn("push of committed changes failed", {
          vnode,
          generation: applied + 1,
          reason: outcome.reason,
        });
        return;
      }
      const now = outcome.appliedGeneration ?? applied + 1;
      if (now <= applied) return; // the agent did not move: leave it to the reconciler
      applied = now;
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
