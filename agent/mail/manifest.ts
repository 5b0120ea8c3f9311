// What the agent last applied: sha256 of every managed file and the generation. drift() compares
// the disk against it, so a hand-edited main.cf is reported and the reconciler can put it back.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import type { FileSet, FileSpec } from "../apply/file-spec.ts";
import { writeFileAtomic } from "../apply/atomic-write.ts";

export interface Manifest {
  readonly generation: string;
  readonly files: Record<string, string>;
}

export const sha256 = (content: string | Buffer): string => createHash("sha256").update(content).digest("hex");

export function readManifest(path: string): Manifest {
  try {
    return JSON.parse(readFileSync(path, "utf8")) as Manifest;
  } catch {
    return { generation: "0", files: {} };
  }
}

/** The manifest file for `files` applied at `generation` (written by apply with its commit). */
export function manifestSpec(generation: bigint, files: FileSet): FileSpec {
  const entries = [...files]
    .map(([p, spec]) => [p, sha256(spec.content)] as const)
    .sort(([a], [b]) => a.localeCompare(b));
  const manifest: Manifest = { generation: generation.toString(), files: Object.fromEntries(entries) };
  return { content: `${JSON.stringify(manifest, null, 2)}\n`, mode: 0o600 };
}

export function writeManifest(path: string, generation: bigint, files: FileSet): void {
  writeFileAtomic(path, manifestSpec(generation, files));
}

/** Managed files whose content differs from what was last applied (or that are gone). */
export function driftedFiles(manifest: Manifest): string[] {
  const out: string[] = [];
  for (const [path, hash] of Object.entries(manifest.files)) {
    let current: string | undefined;
    try {
      current = sha256(readFileSync(path));
    } catch {
      current = undefined;
    }
    if (current !== hash) out.push(path);
  }
  return out;
}
