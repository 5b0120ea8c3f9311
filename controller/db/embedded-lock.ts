// The embedded database belongs to one process: two PGlite instances on one data directory each
// keep their own buffers and overwrite each other's pages (tried: an index with zeroed pages and
// heap tuples from the future after a few minutes). PGlite takes no lock of its own (its
// postmaster.pid names no real process), so we hold one: a kernel lock, SQLite's POSIX lock on
// `<dataDir>.lock` taken through node:sqlite with `BEGIN EXCLUSIVE` and kept until close. The
// kernel drops it when the process ends however it ends, so a SIGKILL leaves no stale lock to
// clear and a recycled PID can never pass for the holder. The holder writes its PID beside it
// (`.holder`) only so a refusal can name it.
import { existsSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { DatabaseSync } from "node:sqlite";
import { NetservaError } from "../../common/errors.ts";

export interface EmbeddedLock {
  release(): void;
}

const SQLITE_HEADER = "SQLite format 3";

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** A PID file written by earlier versions (text, not SQLite): honoured while its process lives. */
function clearLegacyLock(path: string): void {
  // Our lock file stays empty (nothing is ever written in it): not opened here at all, since
  // closing any descriptor of it would drop the POSIX lock this process may already hold on it.
  if (!existsSync(path) || statSync(path).size === 0) return;
  const text = readFileSync(path, "latin1");
  if (text.startsWith(SQLITE_HEADER)) return;
  const pid = Number(text.trim());
  if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && pidAlive(pid)) throw inUse(path, String(pid));
  rmSync(path, { force: true });
}

function inUse(path: string, holder: string | undefined): NetservaError {
  return new NetservaError(
    "failed_precondition",
    `the embedded database is in use by ${holder ? `process ${holder}` : "another process"} (a running \`netserva-mail serve\`?; lock ${path}): ` +
      "stop it first, or run the command while it runs (it is forwarded to it), or use PostgreSQL via DATABASE_URL",
  );
}

/**
 * The open lock connections. A DatabaseSync that the garbage collector reclaims is closed, and
 * closing it drops the lock: a caller that keeps only `release` (or nothing, like a process that
 * holds the lock until it dies) must not lose it to a GC pass. Seen in a loaded test run.
 */
const held = new Set<DatabaseSync>();

/** Takes the lock for `dataDir` or refuses at once, naming the holder. */
export function lockEmbeddedDatabase(dataDir: string): EmbeddedLock {
  const path = `${dataDir}.lock`;
  const holderFile = `${path}.holder`;
  clearLegacyLock(path);
  const db = new DatabaseSync(path, { timeout: 0 });
  try {
    db.exec("BEGIN EXCLUSIVE");
  } catch (error) {
    db.close();
    if (/locked|busy/i.test((error as Error).message)) {
      const holder = existsSync(holderFile) ? readFileSync(holderFile, "utf8").trim() : undefined;
      throw inUse(path, holder);
    }
    throw new NetservaError("unavailable", `cannot lock the embedded database (${path}): ${(error as Error).message}`, {
      cause: error,
    });
  }
  writeFileSync(holderFile, `${process.pid}\n`, { mode: 0o600 });
  held.add(db);
  return {
    release() {
      if (!held.delete(db)) return;
      // The lock file stays: removing it while another process waits on it would let a third
      // lock a new file of the same name while the second holds the old one.
      rmSync(holderFile, { force: true });
      try {
        db.exec("ROLLBACK");
      } finally {
        db.close();
      }
    },
  };
}
