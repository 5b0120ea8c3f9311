// The mail filesystem's size and use (statfs on the mail root), as df counts it.
import { statfs } from "node:fs/promises";

export interface FsUsage {
  path: string;
  sizeBytes: number;
  usedBytes: number;
  availableBytes: number;
}

export async function filesystemUsage(path: string): Promise<FsUsage> {
  const s = await statfs(path);
  const size = s.blocks * s.bsize;
  return { path, sizeBytes: size, usedBytes: (s.blocks - s.bfree) * s.bsize, availableBytes: s.bavail * s.bsize };
}
