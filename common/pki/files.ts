// Writing keys and certificates so that a crash leaves the old file or the new one, never a
// torn one, and a private key is never readable by others, not even for an instant: the temp
// file is created 0600 in the target's directory, fsynced, renamed over the target, and the
// directory fsynced so the rename itself survives a power cut.
import { randomBytes } from "node:crypto";
import { open, rename, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";

export type FileData = string | Uint8Array;

async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

async function writeAtomic(path: string, data: FileData, mode: number): Promise<void> {
  const dir = dirname(path);
  const temp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`);
  // "wx": never follow or reuse an existing file at the temp name.
  const handle = await open(temp, "wx", 0o600);
  let renamed = false;
  try {
    try {
      await handle.writeFile(data);
      // Set after creation: the umask cannot widen 0600, but it can narrow 0644.
      await handle.chmod(mode);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, path);
    renamed = true;
    await syncDirectory(dir);
  } finally {
    if (!renamed) await rm(temp, { force: true });
  }
}

/** Private keys and secrets: mode 0600, replaced atomically. */
export async function writePrivateFile(path: string, data: FileData): Promise<void> {
  await writeAtomic(path, data, 0o600);
}

/** Certificates and other public material: mode 0644, replaced atomically. */
export async function writePublicFile(path: string, data: FileData): Promise<void> {
  await writeAtomic(path, data, 0o644);
}
