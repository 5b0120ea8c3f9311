// The agent's writer for the sysadm lookup DB. Every change is a handful of indexed, prepared
// statements inside one transaction, so it costs the same at 100 or 100,000 mailboxes; the
// digest is kept up to date incrementally (XOR of row hashes) for the same reason.
import { chmodSync, chownSync, existsSync, mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { NetservaError, invalid } from "../../common/errors.ts";
import { prepareSchema } from "./schema.ts";
import { EMPTY_DIGEST, hashAlias, hashDomain, hashMailbox, xorHex } from "./rows.ts";
import type { CheckedChange, CheckedRows } from "./rows.ts";
import { createLookupWriter, digestRow, type LookupEntry, type StoredMailbox } from "./lookup-writer.ts";
import { killPoint } from "../apply/kill-points.ts";
import { endsSlice, runAtOnce, runInTurns, type Steps } from "./turns.ts";

/** SQLITE_FULL: SQLite's own answer to ENOSPC on the DB, its -wal or its -shm. */
const SQLITE_FULL = 13;

/** A full disk under the DB is a refusal naming it, not an internal error. */
function lookupWriteError(err: unknown, path: string): NetservaError {
  if ((err as { errcode?: number } | undefined)?.errcode === SQLITE_FULL)
    return new NetservaError("failed_precondition", `no space left on device: cannot write the lookup DB ${path}`, {
      cause: err,
    });
  return NetservaError.from(err);
}

export type { LookupEntry } from "./lookup-writer.ts";

export interface LookupStoreOptions {
  readonly path: string;
  /** Owner of the mail files, written into every row (Dovecot's userdb uid/gid). */
  readonly mailUid?: number;
  readonly mailGid?: number;
  /** Home directory of a mailbox; defaults to /srv/<domain>/msg/<local>. */
  readonly mailHome?: (domain: string, local: string) => string;
  /**
   * Group of the readers that do not run as root (Postfix's lookups run as `postfix`; Dovecot's
   * auth-worker runs as root). With it, the DB's directory (which must be its own) becomes
   * root:<gid> 3770, the DB 0640 and the -shm index 0660: WAL readers write -shm (read marks,
   * locks) and may have to create -wal/-shm when the agent is not running.
   */
  readonly readerGid?: number;
}

export interface LookupResult {
  /** Human-readable diff: "+ mailbox a@x", "~ mailbox a@x: pass", "- alias @x". */
  readonly diff: string[];
  readonly entries: LookupEntry[];
}

export interface CommitOptions {
  readonly dryRun?: boolean;
  /** Written in the same transaction: an apply's journal id, its commit point (apply/backup.ts). */
  readonly mark?: string;
}

export interface LookupStore {
  /** Changes checked by checkChanges (rows.ts): nothing here parses again. */
  applyChanges(changes: readonly CheckedChange[], opts?: CommitOptions): LookupResult;
  /** Makes the rows exactly `rows` (checkState in rows.ts), in one transaction. */
  replaceAll(rows: CheckedRows, opts?: CommitOptions): LookupResult;
  /**
   * replaceAll in turns of the event loop (turns.ts), for a whole state of any size: one pass
   * over the rows. Meanwhile the digest answers from before it and other writes are refused.
   */
  replaceAllInTurns(rows: CheckedRows, opts?: CommitOptions): Promise<LookupResult>;
  /**
   * Refuses, naming the field, a mailbox or alias whose domain is neither in `rows` nor hosted
   * now: the one thing a checked whole state can still fail on in replaceAll, found before
   * anything is written (so a whole state needs no rehearsal pass).
   */
  checkDomains(rows: CheckedRows): void;
  /** The mark of the last transaction that carried one (see CommitOptions.mark). */
  commitMark(): string | undefined;
  /**
   * A committed domain change whose Postfix reload has not been confirmed (reloadDone): set in
   * the change's own transaction, so a crash between the commit and the reload is seen at start.
   */
  reloadPending(): boolean;
  reloadDone(): void;
  digest(): string;
  /** Full O(rows) recomputation; differs from digest() only if someone edited the DB by hand. */
  recomputeDigest(): string;
  /**
   * Whether digest() still matches the rows. Recomputes only when another connection committed
   * since the last check (`PRAGMA data_version`) or when `full` is set; otherwise O(1), since
   * this connection's own commits keep the stored digest exact.
   */
  digestMatches(opts?: { full?: boolean }): boolean;
  /** Whether the domain exists (any active state); used to plan reloads. */
  hasDomain(domain: string): boolean;
  /** Whether the mailbox has a row (any active state). */
  hasMailbox(ascii: string): boolean;
  close(): void;
}

/** Passes over a whole state's rows (replaceAll, dry or not): a test counts how many an apply makes. */
export const wholeStatePasses = { count: 0 };

export function openLookupStore(options: LookupStoreOptions): LookupStore {
  const gid = options.readerGid;
  const dir = dirname(options.path);
  mkdirSync(dir, { recursive: true, mode: 0o750 });
  if (gid !== undefined) {
    // setgid keeps new -wal/-shm in the readers' group; sticky stops a reader from replacing
    // or deleting the DB (or our -wal) by rename, while it may still create its own -wal/-shm.
    chownSync(dir, 0, gid);
    chmodSync(dir, 0o3770);
  }
  const db = new DatabaseSync(options.path);
  if (gid !== undefined) {
    // Before the first statement: SQLite gives -wal and -shm the DB file's mode and owner.
    chownSync(options.path, 0, gid);
    chmodSync(options.path, 0o640);
  }
  prepareSchema(db);
  if (gid !== undefined) {
    // Readers need to write the -shm index; a -wal/-shm a reader created while the agent was
    // down is taken back so only root can touch the log. Readers only read -wal.
    for (const [suffix, mode] of [
      ["-shm", 0o660],
      ["-wal", 0o640],
    ] as const) {
      const f = `${options.path}${suffix}`;
      if (!existsSync(f)) continue;
      chownSync(f, 0, gid);
      chmodSync(f, mode);
    }
  }
  const writer = createLookupWriter(db, {
    uid: options.mailUid ?? 0,
    gid: options.mailGid ?? 0,
    home: options.mailHome ?? ((domain, local) => `/srv/${domain}/msg/${local}`),
  });
  // The digest lives in the DB (meta) and is re-read in each transaction, so a second writer
  // (another agent process, a restart) never leaves this one with a stale value.
  const loadDigest = db.prepare("SELECT value FROM meta WHERE key = 'digest'");
  const saveDigest = db.prepare(
    "INSERT INTO meta(key, value) VALUES('digest', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
  );
  const storedDigest = (): string | undefined => (loadDigest.get() as { value: string } | undefined)?.value;
  const loadMark = db.prepare("SELECT value FROM meta WHERE key = 'apply-commit'");
  const loadReload = db.prepare("SELECT value FROM meta WHERE key = 'postfix-reload'");
  const saveReload = db.prepare("INSERT OR REPLACE INTO meta(key, value) VALUES('postfix-reload', 'pending')");
  const clearReload = db.prepare("DELETE FROM meta WHERE key = 'postfix-reload'");
  const saveMark = db.prepare(
    "INSERT INTO meta(key, value) VALUES('apply-commit', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
  );
  if (storedDigest() === undefined) saveDigest.run(recompute());

  function recompute(): string {
    return runAtOnce(recomputeSteps());
  }

  function* recomputeSteps(): Steps<string> {
    let d = EMPTY_DIGEST;
    let i = 0;
    for (const r of db.prepare("SELECT domain, active FROM vhosts").iterate() as Iterable<{
      domain: string;
      active: number;
    }>) {
      d = xorHex(d, hashDomain(r));
      if (endsSlice(i++)) yield;
    }
    const mailboxes = db.prepare("SELECT user, pass, active, quota, sieve, name, home, uid, gid, own FROM vmails");
    for (const r of mailboxes.iterate() as Iterable<StoredMailbox>) {
      d = xorHex(d, hashMailbox(digestRow(r)));
      if (endsSlice(i++)) yield;
    }
    for (const r of db.prepare("SELECT source, target, active FROM valias").iterate() as Iterable<{
      source: string;
      target: string;
      active: number;
    }>) {
      d = xorHex(d, hashAlias(r));
      if (endsSlice(i++)) yield;
    }
    return d;
  }

  // data_version changes only when ANOTHER connection commits (a hand edit, a second writer):
  // our own commits keep stored digest XOR recomputed digest constant, so a cached verdict
  // stays true until data_version moves.
  const dataVersion = db.prepare("PRAGMA data_version");
  let verified: { version: number; matches: boolean } | undefined;
  function digestMatches(full: boolean): boolean {
    // A whole state being written in turns: its rows are half way; it rebaselines the digest.
    if (inTurns) return verified?.matches ?? true;
    db.exec("BEGIN"); // one snapshot for the version and every row
    try {
      const version = Number((dataVersion.get() as { data_version: number }).data_version);
      if (full || verified?.version !== version) verified = { version, matches: recompute() === storedDigest() };
      return verified.matches;
    } finally {
      db.exec("COMMIT");
    }
  }

  /** A transaction run in turns is open: the writer and the connection are its own until it ends. */
  let inTurns = false;

  /** Run `work` in one write transaction; dry runs roll back. */
  function transaction(opts: CommitOptions, work: () => void): LookupResult {
    // A generator with no yield: the batch of changes is small and runs at once.
    // eslint-disable-next-line require-yield
    const steps = function* (): Steps<void> {
      work();
    };
    return runAtOnce(transactionSteps(opts, steps));
  }

  function* transactionSteps(opts: CommitOptions, work: () => Steps<void>, rebaseline = false): Steps<LookupResult> {
    if (inTurns)
      throw new NetservaError("unavailable", "the lookup DB is being rewritten by a whole state; try again after it");
    const dryRun = opts.dryRun === true;
    writer.entries = [];
    db.exec("BEGIN IMMEDIATE");
    try {
      writer.digest = storedDigest() ?? recompute();
      yield* work();
      if (dryRun) db.exec("ROLLBACK");
      else {
        // A whole state makes the rows exactly what the controller sent, hand edits included:
        // count them afresh so drift reported before clears (replaceAll is O(rows) anyway).
        if (rebaseline) writer.digest = yield* recomputeSteps();
        saveDigest.run(writer.digest);
        if (opts.mark !== undefined) saveMark.run(opts.mark);
        if (writer.entries.some((e) => e.kind === "domain")) saveReload.run();
        // No other connection can commit while this one holds the write lock: the rows and the
        // digest just counted are what the next drift check would count again (O(rows)).
        const version = rebaseline ? Number((dataVersion.get() as { data_version: number }).data_version) : 0;
        killPoint("lookup:before-commit");
        db.exec("COMMIT");
        killPoint("lookup:after-commit");
        if (rebaseline) verified = { version, matches: true };
      }
    } catch (err) {
      // SQLite already rolled back after SQLITE_FULL: a second ROLLBACK would throw "no
      // transaction is active" and hide why the write failed.
      if (db.isTransaction) db.exec("ROLLBACK");
      throw lookupWriteError(err, options.path);
    }
    const entries = writer.entries;
    return { entries, diff: entries.map(formatEntry) };
  }

  /** The rows become exactly `rows`, yielding every slice (turns.ts). */
  function* replaceSteps({ domains, mailboxes, aliases }: CheckedRows): Steps<void> {
    wholeStatePasses.count += 1;
    let i = 0;
    for (const d of domains) {
      writer.upsertDomain(d);
      if (endsSlice(i++)) yield;
    }
    for (const m of mailboxes) {
      writer.upsertMailbox(m);
      if (endsSlice(i++)) yield;
    }
    for (const a of aliases) {
      writer.upsertAlias(a);
      if (endsSlice(i++)) yield;
    }
    const keepMail = new Set(mailboxes.map((m) => m.user));
    const keepAlias = new Set(aliases.map((a) => a.source));
    const keepDomain = new Set(domains.map((d) => d.domain));
    for (const user of writer.allKeys("mailbox")) {
      if (!keepMail.has(user)) writer.deleteMailbox(user);
      if (endsSlice(i++)) yield;
    }
    for (const source of writer.allKeys("alias")) {
      if (!keepAlias.has(source)) writer.deleteAlias(source);
      if (endsSlice(i++)) yield;
    }
    for (const domain of writer.allKeys("domain")) if (!keepDomain.has(domain)) writer.deleteDomain(domain);
  }

  return {
    applyChanges(changes, opts = {}) {
      return transaction(opts, () => {
        for (const c of changes) {
          switch (c.kind) {
            case "upsertDomain":
              writer.upsertDomain(c.row);
              break;
            case "deleteDomain":
              writer.deleteDomain(c.domain);
              break;
            case "upsertMailbox":
              writer.upsertMailbox(c.row);
              break;
            case "deleteMailbox":
              writer.deleteMailbox(c.address.ascii, true);
              break;
            case "upsertAlias":
              writer.upsertAlias(c.row);
              break;
            case "deleteAlias":
              writer.deleteAlias(c.source);
              break;
            case "none":
              break;
          }
        }
      });
    },
    replaceAll(rows, opts = {}) {
      return runAtOnce(transactionSteps(opts, () => replaceSteps(rows), true));
    },
    async replaceAllInTurns(rows, opts = {}) {
      const steps = transactionSteps(opts, () => replaceSteps(rows), true);
      // The first step opens the transaction (or refuses): only then is the connection ours.
      const first = steps.next();
      if (first.done) return first.value;
      inTurns = true;
      try {
        return await runInTurns(steps);
      } finally {
        inTurns = false;
      }
    },
    checkDomains({ domains, mailboxes, aliases }) {
      const inState = new Set(domains.map((d) => d.domain));
      const known = new Map<string, boolean>();
      const hosted = (domain: string): boolean => {
        if (inState.has(domain)) return true;
        let now = known.get(domain);
        if (now === undefined) known.set(domain, (now = writer.hasDomain(domain)));
        return now;
      };
      // The writer's own words (lookup-writer.ts domainId), so a refusal reads the same either way.
      for (const m of mailboxes)
        if (!hosted(m.domain)) throw invalid("mailbox.address", `domain ${m.domain} is not hosted on this vnode`);
      for (const a of aliases)
        if (!hosted(a.domain)) throw invalid("alias.source", `domain ${a.domain} is not hosted on this vnode`);
    },
    commitMark: () => (loadMark.get() as { value: string } | undefined)?.value,
    reloadPending: () => loadReload.get() !== undefined,
    reloadDone: () => void clearReload.run(),
    digest: () => storedDigest() ?? recompute(),
    recomputeDigest: recompute,
    digestMatches: (opts = {}) => digestMatches(opts.full === true),
    hasDomain: (domain) => writer.hasDomain(domain),
    hasMailbox: (ascii) => writer.hasMailbox(ascii),
    close: () => db.close(),
  };
}

export function formatEntry(e: LookupEntry): string {
  const sign = e.op === "add" ? "+" : e.op === "remove" ? "-" : "~";
  const fields = e.fields && e.fields.length > 0 ? `: ${e.fields.join(", ")}` : "";
  return `${sign} ${e.kind} ${e.key}${fields}`;
}
