// The agent's own small state files (applied generation, revocations): written whole through
// temp file + fsync + rename + directory fsync under a unique temp name (two writers never share
// one), and read tolerantly: a missing file is the empty state, a torn or foreign one is the
// empty state plus a problem to report, never a reason not to start.
import { readFileSync } from "node:fs";
import { writeFileAtomic } from "../apply/atomic-write.ts";

export interface StateFileRead<T> {
  value: T;
  /** Why the file could not be used (torn, not JSON, wrong shape); undefined when it was fine or absent. */
  problem?: string;
}

export function readStateFile<T>(file: string, empty: T, parse: (data: unknown) => T | undefined): StateFileRead<T> {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return { value: empty };
    return { value: empty, problem: `${file}: cannot be read (${(error as Error).message})` };
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    return { value: empty, problem: `${file}: not valid JSON (${text.length} bytes; a torn write?)` };
  }
  const value = parse(data);
  return value === undefined ? { value: empty, problem: `${file}: unexpected content` } : { value };
}

export function writeStateFile(file: string, data: unknown, mode = 0o600): void {
  writeFileAtomic(file, { content: `${JSON.stringify(data)}\n`, mode });
}
