// A vnode's desired-state generation moves only here, in SQL: `generation = generation + 1 …
// returning`, never read into the process and written back (two writers would both write N+1 and
// one change would be lost from the agent's point of view). Call inside the change's transaction.
import type { SqlEntityManager } from "@mikro-orm/sql";
import { notFound } from "../../common/errors.ts";

/** Bumps the vnode's generation by one in the caller's transaction; returns the new value. */
export async function bumpGeneration(em: SqlEntityManager, vnodeId: number): Promise<number> {
  const rows = await em
    .getConnection()
    .execute<Array<{ generation: string | number }>>(
      "update vnodes set generation = generation + 1, updated_at = now() where id = ? returning generation",
      [vnodeId],
      "all",
      em.getTransactionContext(),
    );
  const row = rows[0];
  if (!row) throw notFound(`vnode ${vnodeId} not found`);
  return Number(row.generation);
}

/** Holds the vnode's row until the caller's transaction ends (changes to one vnode in turn). */
export async function lockVnode(em: SqlEntityManager, vnodeId: number): Promise<void> {
  await em
    .getConnection()
    .execute("select id from vnodes where id = ? for update", [vnodeId], "all", em.getTransactionContext());
}

/**
 * Records the generation an agent reported as applied; never moves it backwards (a late answer
 * to an older push must not hide a newer one). Returns whether the row moved.
 */
export async function recordAppliedGeneration(
  em: SqlEntityManager,
  vnodeId: number,
  applied: number,
): Promise<boolean> {
  const rows = await em
    .getConnection()
    .execute<Array<{ id: number }>>(
      "update vnodes set applied_generation = ? where id = ? and applied_generation < ? returning id",
      [applied, vnodeId, applied],
      "all",
      em.getTransactionContext(),
    );
  return rows.length > 0;
}

/**
 * A push the agent applied up to `applied`, recorded in one statement: the applied generation
 * moved forward (never back), a refusal of a generation up to it cleared, and the change feed's
 * rows up to it dropped. One round trip instead of three on the path of every addvmail.
 */
export async function recordDelivery(em: SqlEntityManager, vnodeId: number, applied: number): Promise<void> {
  await em.getConnection().execute(
    `with forgotten as (delete from vnode_changes where vnode_id = ? and generation <= ?)
     update vnodes set
       applied_generation = greatest(applied_generation, ?),
       refused_generation = case when refused_generation <= ? then null else refused_generation end,
       refused_reason = case when refused_generation <= ? then null else refused_reason end,
       refused_at = case when refused_generation <= ? then null else refused_at end,
       refused_count = case when refused_generation <= ? then 0 else refused_count end,
       retry_at = case when refused_generation <= ? then null else retry_at end
     where id = ? and (applied_generation < ? or refused_generation <= ?)`,
    [vnodeId, applied, applied, applied, applied, applied, applied, applied, vnodeId, applied, applied],
    "run",
    em.getTransactionContext(),
  );
}
