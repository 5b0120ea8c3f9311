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
