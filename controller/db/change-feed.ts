// The change feed's rows and wake-up call: how a committed change reaches the controller that
// holds its vnode's lease (the listener is controller/fleet/change-listener.ts). The mutation writes
// its lookup changes to vnode_changes and calls pg_notify in its own transaction, so the
// notification goes out on commit and only then, from whichever process committed it (a serve,
// a CLI on PostgreSQL). The holder LISTENs on a connection of its own, reads the rows past the
// generation the vnode applied and pushes them (fleet/change-pusher.ts). A notification lost while the
// listening connection was down is made up for on reconnect (every held vnode is looked at) and,
// failing that, by the reconciler when the vnode's health report shows it behind.
import type { SqlEntityManager } from "@mikro-orm/sql";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { ApplyChangesRequestSchema } from "../../common/gen/netserva/mail/v1/agent_pb.ts";
import type { StateChange } from "../../common/gen/netserva/mail/v1/state_pb.ts";
import type { Database } from "./open-database.ts";

export const CHANGES_CHANNEL = "netserva_vnode_changes";
/** Above this many changes the holder sends the whole state anyway: no row is kept. */
export const MAX_FEED_CHANGES = 5000;

/** In the mutation's transaction: the change for the holder to push, and the wake-up call. */
export async function recordChange(
  em: SqlEntityManager,
  change: { vnodeId: number; vnode: string; generation: number; actor: string; changes: StateChange[] },
  /** false on the embedded database: one process, no holder listening to wake. */
  notify = true,
): Promise<void> {
  const connection = em.getConnection();
  const tx = em.getTransactionContext();
  if (change.changes.length <= MAX_FEED_CHANGES) {
    const bytes = toBinary(ApplyChangesRequestSchema, create(ApplyChangesRequestSchema, { changes: change.changes }));
    await connection.execute(
      "insert into vnode_changes (vnode_id, generation, actor, changes) values (?, ?, ?, ?) on conflict do nothing",
      [change.vnodeId, change.generation, change.actor, Buffer.from(bytes)],
      "run",
      tx,
    );
  }
  if (notify) await connection.execute("select pg_notify(?, ?)", [CHANGES_CHANNEL, change.vnode], "all", tx);
}

/** Wakes the vnode's holder for a change committed without recordChange (a whole-state change). */
export async function notifyHolder(db: Database, vnode: string): Promise<void> {
  await db.em().getConnection().execute("select pg_notify(?, ?)", [CHANGES_CHANNEL, vnode]);
}

export function decodeChanges(bytes: Uint8Array): StateChange[] {
  return fromBinary(ApplyChangesRequestSchema, bytes).changes;
}
