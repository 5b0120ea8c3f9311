// Age of ClamAV's signatures: the newest database file's mtime (freshclam replaces them whole).
import { readdir, stat } from "node:fs/promises";
import { join } from "node:path";

const DATABASE = /\.(cvd|cld|cud|ndb|hdb|hsb|ldb|mdb|msb|ign2?|fp|sfp)$/;

/** Unix ms of the newest signature database, or 0 when there is none. */
export async function newestSignatures(dbDir: string): Promise<number> {
  const names = await readdir(dbDir).catch(() => [] as string[]);
  const times = await Promise.all(
    names
      .filter((n) => DATABASE.test(n))
      .map((n) =>
        stat(join(dbDir, n)).then(
          (s) => s.mtimeMs,
          () => 0,
        ),
      ),
  );
  return Math.floor(Math.max(0, ...times));
}
