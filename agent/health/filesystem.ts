// The filesystems a vnode's mail lives on (statfs, as df counts them): the maildirs, the Postfix
// queue, the daemons' config and the agent's own state (staging, undo journal, lookup DB). Each
// filesystem is listed once with every role it holds, so "the root filesystem is full" reads as
// one line naming what that stops: delivery, new mail, config changes.
import { existsSync } from "node:fs";
import { stat, statfs } from "node:fs/promises";
import { dirname } from "node:path";
import type { VnodePaths } from "../paths.ts";

export interface FsUsage {
  path: string;
  sizeBytes: number;
  usedBytes: number;
  availableBytes: number;
  /** Inodes in all and free (0, 0: no fixed number on this filesystem). */
  inodes: number;
  freeInodes: number;
}

export type FsRole = "mail" | "queue" | "config" | "state";

export interface RoleFsUsage extends FsUsage {
  roles: FsRole[];
  rolePaths: string[];
}

export async function filesystemUsage(path: string): Promise<FsUsage> {
  const s = await statfs(path);
  const size = s.blocks * s.bsize;
  return {
    path,
    sizeBytes: size,
    usedBytes: (s.blocks - s.bfree) * s.bsize,
    availableBytes: s.bavail * s.bsize,
    inodes: s.files,
    freeInodes: s.ffree,
  };
}

/** The nearest existing directory at or above `path` (a role's directory may not exist yet). */
function existing(path: string): string {
  let p = path;
  while (!existsSync(p) && dirname(p) !== p) p = dirname(p);
  return p;
}

/** One entry per filesystem holding a role, in role order (mail, queue, config, state). */
export async function vnodeFilesystems(paths: VnodePaths): Promise<RoleFsUsage[]> {
  const roles: Array<[FsRole, string]> = [
    ["mail", paths.mailRoot],
    ["queue", paths.postfixQueueDir],
    ["config", paths.postfixDir],
    ["state", paths.stateDir],
  ];
  const byDevice = new Map<number, RoleFsUsage>();
  for (const [role, dir] of roles) {
    const at = existing(dir);
    const dev = (await stat(at)).dev;
    const seen = byDevice.get(dev);
    if (seen) {
      seen.roles.push(role);
      seen.rolePaths.push(at);
      continue;
    }
    byDevice.set(dev, { ...(await filesystemUsage(at)), roles: [role], rolePaths: [at] });
  }
  return [...byDevice.values()];
}
