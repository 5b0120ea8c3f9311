// A change committed by a process that is not the vnode's lease holder (a CLI on PostgreSQL,
// another serve): the holder pushes it when notified (change-feed.ts). The command still tells
// the operator the outcome: it waits, bounded, for the holder to record the vnode's applied
// generation (or a refusal of it), reading the vnode's row.
import type { Database } from "../db/open-database.ts";
import type { DeliverOutcome } from "./deliver.ts";

/** How long a command waits for the holder to report its change live: long enough to see a
 *  killed holder's lease expire (10 s) and be taken over. */
export const HOLDER_WAIT_MS = 20_000;
const POLL_MS = 20;

export interface LeaseHolder {
  /** The holder's controller name (controller.json), for the operator. */
  name: string;
  epoch: bigint;
}

/** The controller holding `vnode`'s lease now (unexpired on the database's clock), if any. */
export async function leaseHolder(db: Database, vnode: string): Promise<LeaseHolder | undefined> {
  if (db.kind !== "postgresql") return undefined;
  const rows = await db
    .em()
    .getConnection()
    .execute<Array<{ name: string | null; epoch: string | number }>>(
      `select c.name, l.epoch from vnode_leases l join vnodes v on v.id = l.vnode_id
       left join controllers c on c.id = l.holder
       where v.name = ? and l.holder is not null and l.expires_at > now()`,
      [vnode],
    );
  const row = rows[0];
  return row ? { name: row.name ?? "unknown", epoch: BigInt(String(row.epoch)) } : undefined;
}

export async function awaitHolderPush(
  db: Database,
  vnode: string,
  generation: number,
  /** The holder when the change was committed; undefined: none yet, a live controller takes it. */
  holder: LeaseHolder | undefined,
  timeoutMs = HOLDER_WAIT_MS,
): Promise<DeliverOutcome> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const rows = await db
      .em()
      .getConnection()
      .execute<Array<{ applied: string | number; refused: string | number | null; reason: string | null }>>(
        "select applied_generation as applied, refused_generation as refused, refused_reason as reason from vnodes where name = ?",
        [vnode],
      );
    const row = rows[0];
    if (!row) return { pushed: false, generation, reason: `vnode ${vnode} not found`, diff: [] };
    const applied = Number(row.applied);
    if (applied >= generation) return { pushed: true, appliedGeneration: applied, generation, diff: [] };
    if (row.refused !== null && Number(row.refused) >= generation)
      return {
        pushed: false,
        generation,
        refused: row.reason ?? "refused",
        reason: `vnode ${vnode} refused generation ${Number(row.refused)}: ${row.reason ?? "no reason given"}`,
        diff: [],
      };
    if (performance.now() >= deadline)
      return {
        pushed: false,
        generation,
        reason: holder
          ? `the holder of vnode ${vnode}'s lease (controller ${holder.name}) did not report generation ${generation} within ${timeoutMs / 1000} s; it is stored, and the holder or the reconciler applies it`
          : `no controller held vnode ${vnode}'s lease and reported generation ${generation} within ${timeoutMs / 1000} s; it is stored, and the controller that takes the lease pushes it`,
        diff: [],
      };
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}
