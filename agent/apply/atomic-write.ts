// Crash-safe file replacement: write a temp file in the target's directory, fsync it, set mode
// and owner, rename over the target and fsync the directory. A crash leaves old or new, never half.
import { randomBytes } from "node:crypto";
import {
  closeSync,
  fchmodSync,
  fchownSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeSync,
} from "node:fs";
import { basename, dirname, join } from "node:path";
import type { FileSpec } from "./file-spec.ts";

/** A fresh temp name next to `path` (same filesystem, so the rename is atomic). */
export function asidePath(path: string): string {
  return join(dirname(path), `.${basename(path)}.ns-${randomBytes(4).toString("hex")}`);
}

/** Write `spec` next to `path` (under `tmp`, default a fresh asidePath) and return the temp path. */
export function writeAside(path: string, spec: FileSpec, tmp = asidePath(path)): string {
  mkdirSync(dirname(path), { recursive: true });
  const fd = openSync(tmp, "wx", 0o600);
  try {
    writeSync(fd, spec.content);
    fchmodSync(fd, spec.mode);
    if (spec.uid !== undefined || spec.gid !== undefined) fchownSync(fd, spec.uid ?? 0, spec.gid ?? 0);
    fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw err;
  } finally {
    try {
      closeSync(fd);
    } catch {
      // already closed on the error path
    }
  }
  return tmp;
}

export function fsyncDir(dir: string): void {
  const fd = openSync(dir, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Rename a file written by writeAside into place and make the rename durable. */
export function commitAside(tmp: string, path: string): void {
  renameSync(tmp, path);
  fsyncDir(dirname(path));
}

export function writeFileAtomic(path: string, spec: FileSpec): void {
  commitAside(writeAside(path, spec), path);
}

/** Current content of a live file, or undefined when it does not exist. */
export function readCurrent(path: string): { content: string; mode: number; uid: number; gid: number } | undefined {
  try {
    const st = statSync(path);
    return { content: readFileSync(path, "utf8"), mode: st.mode & 0o7777, uid: st.uid, gid: st.gid };
  } catch {
    return undefined;
  }
}

/** True when the live file already has this content, mode and owner. */
export function isCurrent(path: string, spec: FileSpec): boolean {
  const cur = readCurrent(path);
  if (!cur) return false;
  return (
    cur.content === spec.content && cur.mode === spec.mode && cur.uid === (spec.uid ?? 0) && cur.gid === (spec.gid ?? 0)
  );
}
