// The undo record of one apply: previous contents of every file about to be replaced, written
// (and fsynced) before the first rename. If the agent dies mid-apply, recoverPendingApply()
// puts the old files back on the next start, so the vnode never runs on a mix.
import { existsSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { readCurrent, writeFileAtomic } from "./atomic-write.ts";

interface BackupEntry {
  readonly path: string;
  /** undefined: the file did not exist before and is removed on restore. */
  readonly previous?: { content: string; mode: number; uid: number; gid: number };
}

export interface Backup {
  restore(): void;
  discard(): void;
}

const JOURNAL = "pending-apply.json";

export function takeBackup(backupDir: string, paths: readonly string[]): Backup {
  mkdirSync(backupDir, { recursive: true, mode: 0o700 });
  const entries: BackupEntry[] = paths.map((path) => {
    const previous = readCurrent(path);
    return previous ? { path, previous } : { path };
  });
  const journal = join(backupDir, JOURNAL);
  // 0600: the previous files may include TLS keys.
  writeFileAtomic(journal, { content: JSON.stringify(entries), mode: 0o600 });
  return {
    restore: () => {
      restoreEntries(entries);
      rmSync(journal, { force: true });
    },
    discard: () => rmSync(journal, { force: true }),
  };
}

function restoreEntries(entries: readonly BackupEntry[]): void {
  for (const e of entries) {
    if (e.previous) writeFileAtomic(e.path, e.previous);
    else rmSync(e.path, { force: true });
  }
}

/** Undo an apply that was interrupted by a crash; returns the paths restored. */
export function recoverPendingApply(backupDir: string): string[] {
  const journal = join(backupDir, JOURNAL);
  if (!existsSync(journal)) return [];
  const entries = JSON.parse(readFileSync(journal, "utf8")) as BackupEntry[];
  restoreEntries(entries);
  rmSync(journal, { force: true });
  return entries.map((e) => e.path);
}
