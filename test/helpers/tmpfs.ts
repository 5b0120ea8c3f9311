// Small tmpfs mounts for full-filesystem tests: mount one over a directory, fill it to the last
// byte, free it again. Mounts are recorded so a test's afterAll can lazily unmount all of them
// even when the test failed half-way. Root only.
import { execFile } from "node:child_process";
import { closeSync, mkdirSync, openSync, readdirSync, rmSync, statfsSync, writeSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";

const exec = promisify(execFile);
const mounted: string[] = [];

/** Mount a tmpfs of `bytes` (rounded up to pages by the kernel) and at most `inodes` inodes
 * (default: the kernel's) over `dir`, creating it first. */
export async function mountTmpfs(dir: string, bytes: number, mode = "0755", inodes?: number): Promise<void> {
  mkdirSync(dir, { recursive: true });
  const options = [`size=${bytes}`, `mode=${mode}`, ...(inodes ? [`nr_inodes=${inodes}`] : [])].join(",");
  await exec("mount", ["-t", "tmpfs", "-o", options, "tmpfs", dir], { timeout: 10_000 });
  mounted.push(dir);
}

/** Bind `source` over `target` (both directories), e.g. to put two trees on one tmpfs. */
export async function bindMount(source: string, target: string): Promise<void> {
  mkdirSync(source, { recursive: true });
  mkdirSync(target, { recursive: true });
  await exec("mount", ["--bind", source, target], { timeout: 10_000 });
  mounted.push(target);
}

/** Lazily unmount everything mounted here, newest first (never throws: for afterAll). */
export async function unmountAll(): Promise<void> {
  while (mounted.length > 0) {
    const dir = mounted.pop() as string;
    await exec("umount", ["-l", dir], { timeout: 10_000 }).catch(() => undefined);
  }
}

/** Bytes free on the filesystem holding `dir` (as root sees it: tmpfs keeps no reserve). */
export function freeBytes(dir: string): number {
  const s = statfsSync(dir);
  return s.bfree * s.bsize;
}

/** Write filler files in `dir` until the filesystem takes no more byte; returns them for freeUp. */
export function fillUp(dir: string): string[] {
  const files: string[] = [];
  const chunk = Buffer.alloc(1 << 20, 0x78);
  // Big chunks first, then ever smaller ones, so the last partial page is taken too.
  for (const size of [1 << 20, 1 << 16, 4096, 512, 1]) {
    const file = join(dir, `.filler-${process.pid}-${files.length}`);
    const fd = openSync(file, "w");
    files.push(file);
    try {
      for (;;) if (writeSync(fd, chunk, 0, size) < size) break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENOSPC") throw error;
    } finally {
      closeSync(fd);
    }
  }
  return files;
}

/** Create empty filler files in `dir` until no inode is left; returns them for freeUp. */
export function fillInodes(dir: string): string[] {
  const files: string[] = [];
  for (;;) {
    const file = join(dir, `.filler-${process.pid}-i${files.length}`);
    try {
      closeSync(openSync(file, "wx"));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOSPC") return files;
      throw error;
    }
    files.push(file);
  }
}

/** Remove the filler files fillUp wrote (the space is back at once). */
export function freeUp(files: readonly string[]): void {
  for (const f of files) rmSync(f, { force: true });
}

/** Names in `dir` (recursively) that look like a temp file of atomic-write: ".<name>.ns-<hex>". */
export function tempFilesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile() && /^\..+\.ns-[0-9a-f]{8}$/.test(entry.name)) out.push(join(entry.parentPath, entry.name));
  }
  return out;
}
