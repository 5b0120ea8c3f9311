// apply: the one path by which config reaches a daemon. Unchanged content does nothing; otherwise
// the complete set is staged in a mirror directory and checked with the daemon's own checker, an
// undo/redo journal is made durable (backup.ts), the changed files are written aside, renamed into
// place, the daemons reloaded and verified, and the caller's commit runs (the lookup rows, marked
// with the journal's id: the one commit point of config and rows together). Any failure before
// the commit restores the previous files, reloads again and reports the checker's words; a crash
// anywhere is finished at start-up by recoverPendingApply. Kill points: kill-points.ts.
import { rmSync } from "node:fs";
import { join } from "node:path";
import { NetservaError } from "../../common/errors.ts";
import type { FileSet } from "./file-spec.ts";
import { asidePath, commitAside, isCurrent, writeAside, writeFileAtomic } from "./atomic-write.ts";
import { openJournal, type PendingApply } from "./backup.ts";
import { inKillScope, killPoint } from "./kill-points.ts";

/** Checks a staged copy; `staged(livePath)` is where the staged copy of a live file lives. Throws on failure. */
export interface Validator {
  readonly name: string;
  check(staged: (livePath: string) => string): Promise<void>;
}

export interface ApplyConfigOptions {
  readonly files: FileSet;
  readonly stagingDir: string;
  readonly backupDir: string;
  readonly validate: readonly Validator[];
  /** Reload whatever reads the changed files. */
  readonly reload: (changed: readonly string[]) => Promise<void>;
  /** Confirm the daemons are up and answering after the reload. */
  readonly verify: (changed: readonly string[]) => Promise<void>;
  readonly dryRun?: boolean;
  /**
   * The caller's commit point, after verify: `mark` is the journal's id, to be written in the
   * same transaction as the caller's data (undefined: no file changed, nothing to undo). A throw
   * rolls the files back like a failed reload.
   */
  readonly commit?: (mark: string | undefined) => void | Promise<void>;
  /** Files written after the commit (the manifest): journaled with the rest, neither checked nor reloaded. */
  readonly bookkeeping?: FileSet;
}

export interface ApplyConfigResult {
  readonly changed: string[];
  readonly diff: string[];
}

export async function applyConfigFiles(o: ApplyConfigOptions): Promise<ApplyConfigResult> {
  const changed = [...o.files].filter(([path, spec]) => !isCurrent(path, spec)).map(([path]) => path);
  const diff = changed.map((p) => `~ file ${p}`);
  if (changed.length === 0) {
    if (!o.dryRun) {
      killPoint("commit");
      await o.commit?.(undefined);
      for (const [path, spec] of o.bookkeeping ?? []) writeFileAtomic(path, spec);
    }
    return { changed, diff };
  }

  const staged = (live: string): string => join(o.stagingDir, live);
  rmSync(o.stagingDir, { recursive: true, force: true });
  try {
    // A full filesystem fails here, before anything live is touched; nothing staged is left.
    try {
      for (const [path, spec] of o.files) {
        writeFileAtomic(staged(path), spec);
        killPoint("stage");
      }
    } catch (err) {
      throw refused("staging", err);
    }
    try {
      for (const v of o.validate) await inKillScope("check", () => v.check(staged));
    } catch (err) {
      throw refused("validation", err);
    }
  } finally {
    rmSync(o.stagingDir, { recursive: true, force: true });
  }
  if (o.dryRun) return { changed, diff };

  // The journal and every new file are written before the first rename; if any of them cannot
  // be (a full filesystem), the ones already written are removed and nothing live changed.
  const aside = changed.map((path) => ({
    path,
    next: o.files.get(path) ?? fail(path),
    aside: asidePath(path),
    kept: asidePath(path),
  }));
  let pending: PendingApply;
  try {
    pending = openJournal(o.backupDir, [
      ...aside,
      ...[...(o.bookkeeping ?? [])].map(([path, next]) => ({ path, next })),
    ]);
  } catch (err) {
    throw refused("writing", err);
  }
  killPoint("journal");
  try {
    for (const a of aside) {
      writeAside(a.path, a.next, a.aside);
      killPoint("aside");
    }
    pending.keep();
  } catch (err) {
    for (const a of aside) rmSync(a.aside, { force: true });
    pending.discard();
    throw refused("writing", err);
  }
  try {
    for (const a of aside) {
      commitAside(a.aside, a.path);
      killPoint("rename");
    }
    killPoint("reload");
    await inKillScope("reload", () => o.reload(changed));
    killPoint("verify");
    await o.verify(changed);
    killPoint("commit");
    await o.commit?.(pending.id);
  } catch (err) {
    pending.restore();
    // Bring the daemons back onto the restored files; a failure there is told after the first.
    // The journal stays until then: a crash here is rolled back (and reloaded) at start-up.
    const back = await inKillScope("rollback", () => o.reload(changed)).then(
      () => undefined,
      (e: unknown) => e,
    );
    pending.discard();
    throw refused("reload", err, back);
  }
  for (const [path, spec] of o.bookkeeping ?? []) writeFileAtomic(path, spec);
  killPoint("bookkeeping");
  pending.discard();
  return { changed, diff };
}

function fail(path: string): never {
  throw new NetservaError("internal", `no spec for ${path}`);
}

function refused(stage: string, err: unknown, rollbackErr?: unknown): NetservaError {
  const text = (e: unknown): string => (e instanceof Error ? e.message : String(e));
  const after = rollbackErr === undefined ? "" : `; reloading the previous config failed too: ${text(rollbackErr)}`;
  return new NetservaError(
    "failed_precondition",
    `config refused at ${stage}; previous config kept: ${text(err)}${after}`,
    { cause: err },
  );
}
