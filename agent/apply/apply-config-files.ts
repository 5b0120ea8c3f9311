// apply: the one path by which config reaches a daemon. Unchanged content does nothing; otherwise
// the complete set is staged in a mirror directory and checked with the daemon's own checker,
// the changed files are written aside, backed up, renamed into place, the daemons reloaded and
// verified; any failure restores the previous files, reloads again and reports the checker's words.
import { mkdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { NetservaError } from "../../common/errors.ts";
import type { FileSet } from "./file-spec.ts";
import { commitAside, isCurrent, writeAside, writeFileAtomic } from "./atomic-write.ts";
import { takeBackup } from "./backup.ts";

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
}

export interface ApplyConfigResult {
  readonly changed: string[];
  readonly diff: string[];
}

export async function applyConfigFiles(o: ApplyConfigOptions): Promise<ApplyConfigResult> {
  const changed = [...o.files].filter(([path, spec]) => !isCurrent(path, spec)).map(([path]) => path);
  const diff = changed.map((p) => `~ file ${p}`);
  if (changed.length === 0) return { changed, diff };

  const staged = (live: string): string => join(o.stagingDir, live);
  rmSync(o.stagingDir, { recursive: true, force: true });
  for (const [path, spec] of o.files) {
    mkdirSync(dirname(staged(path)), { recursive: true });
    writeFileAtomic(staged(path), spec);
  }
  try {
    for (const v of o.validate) await v.check(staged);
  } catch (err) {
    throw refused("validation", err);
  } finally {
    rmSync(o.stagingDir, { recursive: true, force: true });
  }
  if (o.dryRun) return { changed, diff };

  const aside = changed.map((path) => [path, writeAside(path, o.files.get(path) ?? fail(path))] as const);
  const backup = takeBackup(o.backupDir, changed);
  try {
    for (const [path, tmp] of aside) commitAside(tmp, path);
    await o.reload(changed);
    await o.verify(changed);
  } catch (err) {
    for (const [, tmp] of aside) rmSync(tmp, { force: true });
    backup.restore();
    // Bring the daemons back onto the restored files; a failure there is told after the first.
    const back = await o.reload(changed).then(
      () => undefined,
      (e: unknown) => e,
    );
    throw refused("reload", err, back);
  }
  backup.discard();
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
