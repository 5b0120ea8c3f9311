// How a committed change reaches the controller that holds its vnode's lease. The mutation writes
// its lookup changes to vnode_changes and calls pg_notify in its own transaction, so the
// notification goes out on commit and only then, from whichever process committed it (a serve,
// a CLI on PostgreSQL). The holder LISTENs on a connection of its own, reads the rows past the
// generation the vnode applied and pushes them (change-pusher.ts). A notification lost while the
// listening connection was down is made up for on reconnect (every held vnode is looked at) and,
// failing that, by the reconciler when the vnode's health report shows it behind.
import type { SqlEntityManager } from "@mikro-orm/sql";
import { Client } from "pg";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { ApplyChangesRequestSchema } from "../../common/gen/netserva/mail/v1/agent_pb.ts";
import type { StateChange } from "../../common/gen/netserva/mail/v1/state_pb.ts";
import type { Logger } from "../../common/log.ts";
import type { Database } from "../db/open-database.ts";

export const CHANGES_CHANNEL = "netserva_vnode_changes";
/** Above this many changes the holder sends the whole state anyway: no row is kept. */
export const MAX_FEED_CHANGES = 5000;

/** In the mutation's transaction: the change for the holder to push, and the wake-up call. */
export async function recordChange(
  em: SqlEntityManager,
  change: { vnodeId: number; vnode: string; generation: number; actor: string; changes: StateChange[] },
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
  await connection.execute("select pg_notify(?, ?)", [CHANGES_CHANNEL, change.vnode], "all", tx);
}

/** Wakes the vnode's holder for a change committed without recordChange (a whole-state change). */
export async function notifyHolder(db: Database, vnode: string): Promise<void> {
  await db.em().getConnection().execute("select pg_notify(?, ?)", [CHANGES_CHANNEL, vnode]);
}

export function decodeChanges(bytes: Uint8Array): StateChange[] {
  return fromBinary(ApplyChangesRequestSchema, bytes).changes;
}

export interface ChangeListener {
  close(): Promise<void>;
}

export interface ChangeListenerOptions {
  url: string;
  log: Logger;
  /** A vnode's change was committed. */
  onChange(vnode: string): void;
  /** Listening (again): whatever was notified while we were not is to be looked at now. */
  onListening(): void;
  /** Wait before connecting again after the connection broke (default 1 s). */
  retryMs?: number;
}

/** LISTENs on a dedicated connection (pooled ones are shared and short-lived), reconnecting. */
export function listenForChanges(options: ChangeListenerOptions): ChangeListener {
  let closed = false;
  let client: Client | undefined;
  let retry: NodeJS.Timeout | undefined;
  let down = false;
  const again = (reason: string): void => {
    if (closed || retry) return;
    if (!down) options.log.warn("change listener lost its connection", { error: reason });
    down = true;
    client?.removeAllListeners();
    client?.on("error", () => undefined);
    void client?.end().catch(() => undefined);
    client = undefined;
    retry = setTimeout(() => {
      retry = undefined;
      void start();
    }, options.retryMs ?? 1000);
  };
  const start = async (): Promise<void> => {
    const next = new Client({
      connectionString: options.url,
      connectionTimeoutMillis: 10_000,
      keepAlive: true,
      keepAliveInitialDelayMillis: 5000,
    });
    client = next;
    next.on("error", (error: Error) => again(error.message));
    next.on("end", () => again("connection ended"));
    next.on("notification", (message) => {
      if (message.channel === CHANGES_CHANNEL && message.payload) options.onChange(message.payload);
    });
    try {
      await next.connect();
      await next.query(`listen ${CHANGES_CHANNEL}`);
      if (closed) return void (await next.end().catch(() => undefined));
      if (down) options.log.info("change listener listening again");
      down = false;
      options.onListening();
    } catch (error) {
      if (client === next) again((error as Error).message);
    }
  };
  void start();
  return {
    async close() {
      closed = true;
      if (retry) clearTimeout(retry);
      const last = client;
      client = undefined;
      last?.removeAllListeners();
      last?.on("error", () => undefined);
      await last?.end().catch(() => undefined);
    },
  };
}
