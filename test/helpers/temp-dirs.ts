// Directories a test file's helpers make and cannot remove themselves (a restarted serve reuses
// its directory): removed after the file's last test (test/helpers/after-file.ts, a vitest
// setup file). Outside vitest (scripts/bench-*) the caller removes what it made.
import { rmSync } from "node:fs";

const dirs = new Set<string>();

export function trackTempDir(dir: string): string {
  dirs.add(dir);
  return dir;
}

export function removeTrackedDirs(): void {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  dirs.clear();
}
