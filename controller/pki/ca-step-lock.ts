// One CA step at a time, whichever controller or CLI runs it: `ca rotate`, `ca retire-old` and
// `ca rekey` each run inside one transaction that holds a PostgreSQL advisory lock. Two operators
// (or two controllers) starting a step at once: the first takes the lock and runs, the second is
// refused at once, told which step runs, where, by whom and since when, and changes nothing.
//
// An advisory lock rather than a "step under way" row: the lock dies with the session, so a CLI
// killed mid-step leaves nothing to clean up (its transaction rolls back with it). What holds the
// lock is read back from pg_stat_activity: the step names itself in application_name (set for the
// transaction only) and xact_start is when it began.
//
// PGlite is one process on one connection, where an advisory lock is re-entrant: there a flag in
// this process does the same job.
import type { SqlEntityManager } from "@mikro-orm/sql";
import { NetservaError } from "../../common/errors.ts";
import type { Database } from "../db/open-database.ts";

/** Any constant, distinct from init's publishing lock (init-home.ts) and the migrations' lock. */
const CA_STEP_LOCK = 7_445_017;
/** PostgreSQL keeps NAMEDATALEN - 1 bytes of application_name. */
const LABEL_BYTES = 63;

export type CaStep = "ca rotate" | "ca retire-old" | "ca rekey";

export interface CaStepRun {
  step: CaStep;
  /** The controller whose home the step runs on (controller.json `name`). */
  controller: string;
  actor: string;
}

interface Holder {
  label: string;
  since: Date | null;
  pid: number;
}

let inThisProcess: { label: string; since: Date } | undefined;

function labelOf(run: CaStepRun): string {
  let label = `${run.step} on ${run.controller} by ${run.actor}`;
  while (Buffer.byteLength(label) > LABEL_BYTES) label = label.slice(0, -1);
  return label;
}

function busy(label: string, since: Date | null, where: string): NetservaError {
  return new NetservaError(
    "failed_precondition",
    `another CA step is under way: ${label}${since ? `, since ${since.toISOString()}` : ""}${where}. ` +
      "One CA step runs at a time across every controller: run this one again once it has finished " +
      "(`netserva-mail ca status` shows where the CA stands)",
  );
}

async function holderOf(em: SqlEntityManager): Promise<Holder | undefined> {
  const rows = (await em.getConnection().execute(
    `select a.application_name as label, a.xact_start as since, a.pid as pid
       from pg_locks l join pg_stat_activity a on a.pid = l.pid
      where l.locktype = 'advisory' and l.granted and l.classid = 0 and l.objid = ? and l.objsubid = 1`,
    [CA_STEP_LOCK],
  )) as Array<{ label: string | null; since: Date | string | null; pid: number }>;
  const row = rows[0];
  if (!row) return undefined;
  return { label: row.label || "a CA step", since: row.since ? new Date(row.since) : null, pid: row.pid };
}

/**
 * Runs one CA step in one transaction under the fleet-wide CA step lock; `work` gets the
 * transaction's entity manager. Refused (failed_precondition) while another step holds it.
 */
export async function runCaStep<T>(
  db: Database,
  run: CaStepRun,
  work: (em: SqlEntityManager) => Promise<T>,
): Promise<T> {
  const label = labelOf(run);
  if (db.kind !== "postgresql") {
    if (inThisProcess) throw busy(inThisProcess.label, inThisProcess.since, " (in this process)");
    inThisProcess = { label, since: new Date() };
    try {
      return await work(db.em().fork());
    } finally {
      inThisProcess = undefined;
    }
  }
  return db
    .em()
    .fork()
    .transactional(async (tx) => {
      // Named first: whoever finds the lock taken reads this label back.
      await tx.execute(`select set_config('application_name', ?, true)`, [label]);
      const [got] = (await tx.execute(`select pg_try_advisory_xact_lock(?) as got`, [CA_STEP_LOCK])) as Array<{
        got: boolean;
      }>;
      if (!got?.got) {
        // Read on another connection: this transaction is about to roll back.
        const holder = await holderOf(db.em().fork());
        throw holder
          ? busy(holder.label, holder.since, ` (PostgreSQL backend ${holder.pid})`)
          : busy("a CA step that has just ended", null, "");
      }
      return work(tx);
    });
}
