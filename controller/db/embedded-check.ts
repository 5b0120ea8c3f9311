// Whether the embedded database may be used after its last holder died without closing it. PGlite
// removes its postmaster.pid on a clean close; one still there at open (we hold the lock, so no
// live process owns it) means the holder was killed. PostgreSQL's own WAL replay then brings the
// files back to the last commit (tried: SIGKILL mid-write, every committed row kept); what replay
// cannot mend is damage done outside it (two processes on one directory, a disk or a copy gone
// wrong). So after an unclean stop every table and btree index is verified with amcheck before
// the controller runs on it: damaged indexes are rebuilt (REINDEX, then verified again), damaged
// tables refuse the start with the exact recovery step. A clean stop costs nothing here. A refusal
// leaves a marker in the directory (the check's own PGlite closes cleanly, which would otherwise
// hide the damage from the next start), so every later start checks again until it passes.
import { existsSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { PGlite } from "@electric-sql/pglite";
import { amcheck } from "@electric-sql/pglite/contrib/amcheck";
import { NetservaError } from "../../common/errors.ts";

export interface EmbeddedCheck {
  /** The last holder did not close it (killed, crashed). */
  unclean: boolean;
  /** Indexes found damaged and rebuilt. */
  reindexed: string[];
  tables: number;
  indexes: number;
}

/** What to do about a database that must not be used, for the operator, step by step. */
export function recoveryStep(dataDir: string): string {
  return (
    `stop every netserva-mail process using this home, move the directory aside ` +
    `(mv ${dataDir} ${dataDir}.damaged), and restore your last backup of ${dataDir} into its place; ` +
    `without a backup, \`netserva-mail init\` makes a new database and \`mail:import\` reloads an earlier \`mail:export\``
  );
}

export function damaged(dataDir: string, what: string, cause?: unknown): NetservaError {
  return new NetservaError(
    "failed_precondition",
    `the embedded database in ${dataDir} is damaged (${what}); the controller will not run on it: ${recoveryStep(dataDir)}`,
    cause === undefined ? undefined : { cause },
  );
}

const message = (error: unknown): string => (error instanceof Error ? error.message : String(error));

async function brokenIndexes(db: PGlite, indexes: Array<{ oid: number; name: string }>): Promise<string[]> {
  const broken: string[] = [];
  for (const index of indexes) {
    try {
      await db.query("select bt_index_check($1::regclass, true)", [index.oid]);
    } catch {
      broken.push(index.name);
    }
  }
  return broken;
}

/** Verifies the embedded database if its last holder died with it open; call with the lock held. */
export async function checkEmbeddedDatabase(dataDir: string): Promise<EmbeddedCheck> {
  const marker = join(dataDir, DAMAGED_MARKER);
  const unclean = existsSync(join(dataDir, "postmaster.pid")) || existsSync(marker);
  if (!unclean) return { unclean, reindexed: [], tables: 0, indexes: 0 };
  try {
    const check = await verify(dataDir);
    rmSync(marker, { force: true });
    return check;
  } catch (error) {
    if (existsSync(dataDir)) writeFileSync(marker, `${message(error)}\n`);
    throw error;
  }
}

/** Written into the data directory when a check refused it (moves with it when set aside). */
export const DAMAGED_MARKER = "netserva-damaged";

async function verify(dataDir: string): Promise<EmbeddedCheck> {
  const unclean = true;
  let db: PGlite;
  try {
    db = await PGlite.create(dataDir, { extensions: { amcheck } });
  } catch (error) {
    throw damaged(dataDir, `it does not start: ${message(error)}`, error);
  }
  try {
    await db.exec("create extension if not exists amcheck");
    const tables = (
      await db.query<{ oid: number; name: string }>(
        "select c.oid, c.relname as name from pg_class c join pg_namespace n on n.oid = c.relnamespace " +
          "where n.nspname = 'public' and c.relkind = 'r' order by c.relname",
      )
    ).rows;
    const indexes = (
      await db.query<{ oid: number; name: string }>(
        "select c.oid, c.relname as name from pg_index i join pg_class c on c.oid = i.indexrelid " +
          "join pg_am a on a.oid = c.relam join pg_namespace n on n.oid = c.relnamespace " +
          "where n.nspname = 'public' and a.amname = 'btree' order by c.relname",
      )
    ).rows;
    for (const table of tables) {
      let problem: string | undefined;
      try {
        const found = await db.query<{ msg: string }>("select msg from verify_heapam($1::regclass) limit 1", [
          table.oid,
        ]);
        problem = found.rows[0]?.msg;
      } catch (error) {
        problem = message(error);
      }
      if (problem !== undefined) throw damaged(dataDir, `table ${table.name}: ${problem}`);
    }
    const broken = await brokenIndexes(db, indexes);
    for (const name of broken) await db.exec(`reindex index "${name.replace(/"/g, '""')}"`);
    const still = await brokenIndexes(db, indexes);
    if (still.length > 0) throw damaged(dataDir, `index ${still.join(", ")} still damaged after REINDEX`);
    await db.exec("drop extension amcheck");
    return { unclean, reindexed: broken, tables: tables.length, indexes: indexes.length };
  } catch (error) {
    if (error instanceof NetservaError) throw error;
    throw damaged(dataDir, message(error), error);
  } finally {
    await db.close().catch(() => undefined);
  }
}
