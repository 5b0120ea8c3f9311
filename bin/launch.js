// What both bins do before loading any of the program: run on the pinned Node 24, cache compiled
// modules, and keep node:sqlite's experimental notice out of operator output.
import { spawnSync } from "node:child_process";
import { enableCompileCache } from "node:module";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** When started by an older Node (the machine's), re-runs the same command with the pinned one. */
export function ensurePinnedNode(binUrl) {
  const major = Number(process.versions.node.split(".")[0]);
  if (major >= 24) return;
  const bin = fileURLToPath(binUrl);
  const pinned = join(dirname(bin), "..", "node_modules", "node", "bin", "node");
  if (!existsSync(pinned)) {
    process.stderr.write("netserva-mail needs Node >= 24: run `npm ci` in the project first\n");
    process.exit(2);
  }
  const result = spawnSync(pinned, [bin, ...process.argv.slice(2)], { stdio: "inherit", argv0: process.argv[1] });
  process.exit(result.status ?? 1);
}

/** node:sqlite (the vnode's lookup store) is stable enough for us; its notice only clutters output. */
export function quietSqliteNotice() {
  const emitWarning = process.emitWarning.bind(process);
  process.emitWarning = (warning, ...rest) => {
    if (String(warning).includes("SQLite is an experimental feature")) return;
    emitWarning(warning, ...rest);
  };
}

/**
 * Node's on-disk compile cache ($NODE_COMPILE_CACHE, else under the temp directory): later starts
 * skip TypeScript stripping and V8 compilation of every module already seen. A CLI command
 * forwarded to `serve` starts in about half the time (README, Benchmarks).
 */
export function cacheCompiledModules() {
  enableCompileCache();
}
