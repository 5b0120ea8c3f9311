// Crash-safe file replacement: write a temp file in the target's directory, fsync it, set mode
// and owner, rename over the target and fsync the directory. A crash leaves old or new, never half.
// A full filesystem is a clean failure: write(2) may write part of a buffer and report how much
// (tmpfs and ext4 do when space runs out mid-write), so every byte is written or the temp file
// removed, and the error names the file it could not write.
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
import { fileWriteError } from "./write-error.ts";

/** A fresh temp name next to `path` (same filesystem, so the rename is atomic). */
export function asidePath(path: string): string {
  return join(dirname(path), `.${basename(path)}.ns-${randomBytes(4).toString("hex")}`);
}

/** Write `spec` next to `path` (under `tmp`, default a fresh asidePath) and return the temp path. */
export function writeAside(path: string, spec: FileSpec, tmp = asidePath(path)): string {
  const dir = dirname(path);
  let fd: number;
  try {
    mkdirSync(dir, { recursive: true });
    fd = openSync(tmp, "wx", 0o600);
  } catch (err) {
    throw fileWriteError(err, path);
  }
  let written = false;
  try {
    writeAll(fd, Buffer.from(spec.content));
    fchmodSync(fd, spec.mode);
    if (spec.uid !== undefined || spec.gid !== undefined) fchownSync(fd, spec.uid ?? 0, spec.gid ?? 0);
    fsyncSync(fd);
    written = true;
  } catch (err) {
    throw fileWriteError(err, path);
  } finally {
    // Closed once, here: closing a number twice could close a descriptor reused meanwhile.
    closeSync(fd);
    if (!written) rmSync(tmp, { force: true });
  }
  return tmp;
}

/** write(2) until every byte is down: a short write is not an error, and not the end either. */
function writeAll(fd: number, data: Buffer): void {
  let offset = 0;
  while (offset < data.length) {
    const n = writeSync(fd, data, offset, data.length - offset);
    // A regular file never takes 0 bytes without an error; guard the loop all the same.
    if (n <= 0) throw Object.assign(new Error("write took no bytes"), { code: "EIO" });
    offset += n;
  }
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
  try {
    renameSync(tmp, path);
    fsyncDir(dirname(path));
  } catch (err) {
    throw fileWriteError(err, path);
  }
}

export function writeFileAtomic(path: string, spec: FileSpec): void {
  const tmp = writeAside(path, spec);
  try {
    commitAside(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
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
