// A throwaway vnode root for the Rspamd/ClamAV tests: rendered config written the way apply
// will write it (temp + rename, modes and owners), daemons started from it, all removed after.
import { chmod, chown, mkdir, mkdtemp, rename, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import type { OwnedFile } from "../../agent/rspamd/dkim-keys.ts";
import { lookupSystemUser } from "../../agent/sc/managed-daemon.ts";

/** Shared across runs: a fresh DBDIR costs ~10 s of hyperscan compilation, a warm one <1 s. */
export const SHARED_HS_CACHE = "/tmp/nsm-filter-hs-cache";

export async function createFilterRoot(): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), "nsm-filter-"));
  // The daemons' users (_rspamd, clamav) must traverse the root to reach their sockets and keys.
  await chmod(root, 0o755);
  return root;
}

export async function removeFilterRoot(root: string): Promise<void> {
  if (!root.startsWith(join(tmpdir(), "nsm-filter-"))) throw new Error(`refusing to remove ${root}`);
  await rm(root, { recursive: true, force: true });
}

async function writeAtomic(path: string, content: string, mode: number): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o755 });
  const tmp = `${path}.tmp-${process.pid}`;
  await writeFile(tmp, content, { mode, flush: true });
  await chmod(tmp, mode);
  await rename(tmp, path);
}

/** Write a rendered file map into dir (config: 0644, root-owned). */
export async function writeFileMap(dir: string, files: ReadonlyMap<string, string>): Promise<void> {
  for (const [name, content] of files) await writeAtomic(join(dir, name), content, 0o644);
}

/** Write owned files (DKIM keys); their directory belongs to the same user, 0700. */
export async function writeOwnedFiles(files: readonly OwnedFile[]): Promise<void> {
  for (const f of files) {
    const owner = await lookupSystemUser(f.owner);
    await mkdir(dirname(f.path), { recursive: true, mode: 0o700 });
    await chown(dirname(f.path), owner.uid, owner.gid);
    await writeAtomic(f.path, f.content, f.mode);
    await chown(f.path, owner.uid, owner.gid);
  }
}

/** A loopback port that was free a moment ago (daemons cannot report a port-0 bind back to us). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr !== null ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}
