// The undo/redo journal of one apply: for every file about to be replaced, its previous content
// (or that it did not exist), its new content and the name it is written aside under. It is
// durable (temp + fsync + rename + directory fsync) before the first file is written aside, and
// removed only after the apply's commit point, or after a rollback has put the old files back
// and reloaded the daemons onto them.
//
// The commit point is the lookup store's transaction: it writes the journal's id as its commit
// mark together with the rows. So after a crash, recoverPendingApply() decides by that mark:
// the rows committed → roll the files forward (every new file written again, idempotent); not
// committed → roll them back (every previous file written again). Either way the vnode runs all
// old or all new config and rows, never a mix. The same holds for `--mail`, where /etc/postfix
// cannot be swapped as one directory: files are renamed one by one, and the journal covers them.
// Roll forward is chosen when committed because the rows cannot be taken back once readers saw
// them, and the new config was already checked, running and verified when they committed.
//
// The guarantee is about process crashes (SIGKILL, OOM, a bug): the kernel's page cache survives
// them. Power loss is covered as far as the fsyncs go (files, journal, directories), not tested.
import { randomBytes } from "node:crypto";
import { existsSync, linkSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { commitAside, isCurrent, readCurrent, writeFileAtomic } from "./atomic-write.ts";
import type { FileSpec } from "./file-spec.ts";
import { killPoint } from "./kill-points.ts";

interface FileState {
  readonly content: string;
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
}

interface JournalEntry {
  readonly path: string;
  /** undefined: the file did not exist before and is removed on rollback. */
  readonly previous?: FileState;
  /** What the apply puts there (absent only in journals from before roll-forward existed). */
  readonly next?: FileSpec;
  /** The temp name the new file is written under before its rename; removed by recovery. */
  readonly aside?: string;
  /** A hard link to the previous file, made before the rename: a rollback renames it back,
   *  which needs no free space (writing `previous` again does, and a full disk may have none). */
  readonly kept?: string;
}

interface JournalFile {
  readonly version: 2;
  readonly id: string;
  readonly entries: JournalEntry[];
}

export interface JournalPlan {
  readonly path: string;
  readonly next: FileSpec;
  readonly aside?: string;
  readonly kept?: string;
}

export interface PendingApply {
  /** The commit mark: the caller's commit writes it with the rows (see above). */
  readonly id: string;
  /** Hard-link every previous file to its `kept` name (before the renames; best effort). */
  keep(): void;
  /** Put every file back as it was; the journal stays until discard(). */
  restore(): void;
  /** The apply is over (committed, or rolled back and reloaded): forget the journal. */
  discard(): void;
}

const JOURNAL = "pending-apply.json";

/** Writes the journal durably and returns the pending apply it describes. */
export function openJournal(backupDir: string, plan: readonly JournalPlan[]): PendingApply {
  mkdirSync(backupDir, { recursive: true, mode: 0o700 });
  const id = randomBytes(8).toString("hex");
  const entries: JournalEntry[] = plan.map((p) => {
    const previous = readCurrent(p.path);
    return {
      path: p.path,
      next: p.next,
      ...(previous ? { previous } : {}),
      ...(p.aside ? { aside: p.aside } : {}),
      ...(previous && p.kept ? { kept: p.kept } : {}),
    };
  });
  const journal = join(backupDir, JOURNAL);
  // 0600: the files may include TLS keys.
  writeFileAtomic(journal, { content: JSON.stringify({ version: 2, id, entries } satisfies JournalFile), mode: 0o600 });
  return {
    id,
    keep: () => {
      for (const e of entries)
        if (e.kept)
          try {
            linkSync(e.path, e.kept);
          } catch {
            // No link (a filesystem without hard links): the rollback writes `previous` instead.
          }
    },
    restore: () => rollBack(entries, "restore"),
    discard: () => {
      for (const e of entries) if (e.kept) rmSync(e.kept, { force: true });
      rmSync(journal, { force: true });
    },
  };
}

function rollBack(entries: readonly JournalEntry[], point: string): void {
  for (const e of entries) {
    if (e.aside) rmSync(e.aside, { force: true });
    // The kept link is the previous file itself (files are only ever replaced, never written
    // in place): renaming it back takes no space; without it, its content is written again.
    // (rename(2) between two links of one inode does nothing: the link is removed after it.)
    // A file already as it was (never replaced, or the manifest) is not written again.
    if (e.kept && existsSync(e.kept)) {
      commitAside(e.kept, e.path);
      rmSync(e.kept, { force: true });
    } else if (e.previous) {
      if (!isCurrent(e.path, e.previous)) writeFileAtomic(e.path, e.previous);
    } else rmSync(e.path, { force: true });
    killPoint(point);
  }
}

function rollForward(entries: readonly JournalEntry[]): void {
  for (const e of entries) {
    if (e.aside) rmSync(e.aside, { force: true });
    if (e.kept) rmSync(e.kept, { force: true });
    if (e.next) writeFileAtomic(e.path, e.next);
    killPoint("recover");
  }
}

export interface Recovery {
  readonly direction: "forward" | "back";
  /** Every file the interrupted apply touched, with what it held before and after. */
  readonly files: ReadonlyArray<{ path: string; previous?: string; next?: string }>;
}

/**
 * At start-up: finish an apply that a crash interrupted. `committed(id)` tells whether its rows
 * committed with that mark. Idempotent: a crash during recovery is recovered the same way.
 */
export function recoverPendingApply(backupDir: string, committed: (id: string) => boolean): Recovery | undefined {
  const journal = join(backupDir, JOURNAL);
  if (!existsSync(journal)) return undefined;
  const data = JSON.parse(readFileSync(journal, "utf8")) as JournalFile | JournalEntry[];
  // A journal of the first format (a bare list of previous files) can only be rolled back.
  const entries = Array.isArray(data) ? data : data.entries;
  const forward = !Array.isArray(data) && committed(data.id) && entries.every((e) => e.next !== undefined);
  if (forward) rollForward(entries);
  else rollBack(entries, "recover");
  rmSync(journal, { force: true });
  return {
    direction: forward ? "forward" : "back",
    files: entries.map((e) => ({
      path: e.path,
      ...(e.previous ? { previous: e.previous.content } : {}),
      ...(e.next ? { next: e.next.content } : {}),
    })),
  };
}
