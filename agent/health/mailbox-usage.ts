// Per-mailbox storage use, measured on disk: every mailbox of the lookup DB, its Maildir folders'
// cur/ and new/ listed (Dovecot writes the size into the file name as ",S=<bytes>", so a listing
// is enough; stat only when it is missing). Limits come from the same rows Dovecot enforces.
//
// A vnode holds up to 100,000 mailboxes, and the scan must never compete with mail for the CPU:
// - a folder is listed again only when its directory changed (mtime), otherwise three stat
//   calls per idle mailbox are the whole cost; a directory changed within the last seconds is
//   listed again next time too (an mtime taken in the same clock tick as a later change would
//   otherwise hide that change: git's "racy" entries);
// - synchronous calls in short slices (a promise per file system call costs 10–20× the call),
//   and after each slice a pause, so the scan takes at most `dutyCycle` of one core meanwhile;
// - rows are read from the DB a page at a time, never all at once.
// Symbolic links inside the (user-writable) mail tree are not followed.
import { lstatSync, readdirSync } from "node:fs";
import type { BigIntStats } from "node:fs";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";

export interface MailboxUsageRow {
  address: string;
  usedBytes: number;
  limitBytes: number;
  messages: number;
}

export interface UsageScanOptions {
  /** Share of one core the scan may use while it runs (default 0.05). */
  dutyCycle?: number;
  /**
   * The same for the first pass, while no usage is known at all (a new or restarted agent):
   * quota health stays unknown until it ends (default 0.25, never below `dutyCycle`).
   */
  firstDutyCycle?: number;
  /** Work between pauses, ms (default 4). */
  sliceMs?: number;
  /** Rows read from the lookup DB at a time (default 500). */
  pageSize?: number;
  /** A directory modified this recently is listed again on the next scan (default 2 s). */
  racyMs?: number;
  /** For tests: how to pause, after `workedMs` of work. */
  sleep?: (ms: number, workedMs: number) => Promise<void>;
}

export interface ScanProgress {
  done: number;
  /** Work time spent on the scan so far, ms (pauses excluded). */
  workMs: number;
}

export interface UsageScanner {
  scan(): Promise<MailboxUsageRow[]>;
  /** The scan under way, if any. */
  progress(): ScanProgress | undefined;
}

interface DirEntry {
  mtimeNs: bigint;
  bytes: number;
  messages: number;
}

interface MailboxEntry {
  maildirMtimeNs: bigint;
  folders: string[];
}

const SIZE = /,S=(\d+)/;
const sleepMs = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function lstatDir(path: string): BigIntStats | undefined {
  try {
    const st = lstatSync(path, { bigint: true });
    return st.isDirectory() ? st : undefined;
  } catch {
    return undefined;
  }
}

function listDir(path: string): { bytes: number; messages: number } {
  let bytes = 0;
  let messages = 0;
  let names: string[];
  try {
    names = readdirSync(path);
  } catch {
    return { bytes, messages };
  }
  for (const name of names) {
    const m = SIZE.exec(name);
    if (m) bytes += Number(m[1]);
    else {
      try {
        const st = lstatSync(join(path, name));
        if (st.isFile()) bytes += st.size;
      } catch {
        // Gone since the listing (expunged, moved): it is counted where it went on the next scan.
      }
    }
    messages += 1;
  }
  return { bytes, messages };
}

export function createUsageScanner(lookupDb: string, options: UsageScanOptions = {}): UsageScanner {
  const duty = Math.min(1, Math.max(0.001, options.dutyCycle ?? 0.05));
  const firstDuty = Math.min(1, Math.max(duty, options.firstDutyCycle ?? 0.25));
  let passes = 0;
  const sliceMs = options.sliceMs ?? 4;
  const pageSize = options.pageSize ?? 500;
  const racyNs = BigInt(options.racyMs ?? 2000) * 1_000_000n;
  const sleep = options.sleep ?? sleepMs;
  let dirs = new Map<string, DirEntry>();
  let mailboxes = new Map<string, MailboxEntry>();
  let current: ScanProgress | undefined;

  function folderUsage(
    path: string,
    scanStartNs: bigint,
    nextDirs: Map<string, DirEntry>,
  ): { bytes: number; messages: number } {
    const st = lstatDir(path);
    if (!st) return { bytes: 0, messages: 0 };
    const known = dirs.get(path);
    if (known && known.mtimeNs === st.mtimeNs) {
      nextDirs.set(path, known);
      return known;
    }
    const listed = listDir(path);
    // Changed in the last seconds: its mtime may not move for a change in the same clock tick.
    const entry = { mtimeNs: st.mtimeNs > scanStartNs - racyNs ? -1n : st.mtimeNs, ...listed };
    nextDirs.set(path, entry);
    return listed;
  }

  function mailboxUsage(
    home: string,
    scanStartNs: bigint,
    nextDirs: Map<string, DirEntry>,
    nextMailboxes: Map<string, MailboxEntry>,
  ): { bytes: number; messages: number } {
    const maildir = join(home, "Maildir");
    const st = lstatDir(maildir);
    if (!st) return { bytes: 0, messages: 0 };
    let entry = mailboxes.get(maildir);
    if (!entry || entry.maildirMtimeNs !== st.mtimeNs) {
      let subfolders: string[] = [];
      try {
        subfolders = readdirSync(maildir, { withFileTypes: true })
          .filter((e) => e.isDirectory() && e.name.startsWith(".") && e.name !== "." && e.name !== "..")
          .map((e) => join(maildir, e.name));
      } catch {
        // Vanished between the stat and the listing: counted as empty now, listed next time.
      }
      entry = {
        maildirMtimeNs: st.mtimeNs > scanStartNs - racyNs ? -1n : st.mtimeNs,
        folders: [maildir, ...subfolders],
      };
    }
    nextMailboxes.set(maildir, entry);
    let bytes = 0;
    let messages = 0;
    for (const folder of entry.folders) {
      for (const sub of ["cur", "new"]) {
        const u = folderUsage(join(folder, sub), scanStartNs, nextDirs);
        bytes += u.bytes;
        messages += u.messages;
      }
    }
    return { bytes, messages };
  }

  async function run(): Promise<MailboxUsageRow[]> {
    const scanStartNs = BigInt(Date.now()) * 1_000_000n;
    const nextDirs = new Map<string, DirEntry>();
    const nextMailboxes = new Map<string, MailboxEntry>();
    const out: MailboxUsageRow[] = [];
    const progress: ScanProgress = { done: 0, workMs: 0 };
    const share = passes === 0 ? firstDuty : duty;
    current = progress;
    const db = new DatabaseSync(lookupDb, { readOnly: true });
    try {
      const page = db.prepare("SELECT user, home, quota FROM vmails WHERE user > ? ORDER BY user LIMIT ?");
      let after = "";
      let sliceStart = performance.now();
      for (;;) {
        const rows = page.all(after, pageSize) as Array<{ user: string; home: string; quota: number }>;
        if (rows.length === 0) break;
        for (const r of rows) {
          const u = mailboxUsage(r.home, scanStartNs, nextDirs, nextMailboxes);
          out.push({ address: r.user, usedBytes: u.bytes, limitBytes: Number(r.quota), messages: u.messages });
          progress.done += 1;
          const worked = performance.now() - sliceStart;
          if (worked >= sliceMs) {
            progress.workMs += worked;
            await sleep(worked * (1 / share - 1), worked);
            sliceStart = performance.now();
          }
        }
        after = rows[rows.length - 1]?.user ?? after;
      }
      progress.workMs += performance.now() - sliceStart;
    } finally {
      db.close();
      current = undefined;
    }
    // Only what this scan saw is remembered: deleted mailboxes and folders drop out.
    dirs = nextDirs;
    mailboxes = nextMailboxes;
    passes += 1;
    return out;
  }

  let running: Promise<MailboxUsageRow[]> | undefined;
  return {
    scan() {
      running ??= run().finally(() => {
        running = undefined;
      });
      return running;
    },
    progress: () => (current ? { ...current } : undefined),
  };
}

/** One unpaced scan from scratch (tools and tests). */
export function scanMailboxUsage(lookupDb: string): Promise<MailboxUsageRow[]> {
  return createUsageScanner(lookupDb, { dutyCycle: 1 }).scan();
}
