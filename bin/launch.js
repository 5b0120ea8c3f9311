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

/**
 * Options for a long-running agent (`serve`), set before V8 and malloc start, so an idle agent
 * holds less memory (README, bench-footprint: ~100 MB → ~80 MB). Ordinary, documented knobs:
 * - `--max-semi-space-size=1` (MiB): V8's young generation grows to 2×16 MiB semi-spaces by
 *   default, sized for allocation-heavy servers; the agent allocates little between applies, and
 *   a 1 MiB semi-space costs it only more frequent (cheap) scavenges.
 * - `--no-opt --no-maglev`: JavaScript runs in V8's interpreter and baseline compiler only. The
 *   optimizing compilers' code (pages of the node binary) and their output are never loaded:
 *   ~8 MB less. The cost: CPU-bound JavaScript runs about half as fast (checking a 100,000-mailbox
 *   whole state: ~2 s → ~4 s); the agent's work is mostly SQLite, files and the daemons' checkers.
 * - `MALLOC_ARENA_MAX=2`: glibc gives every thread that mallocs (V8's GC workers, libuv's pool)
 *   its own arena and keeps what those arenas once held; two are plenty for one JavaScript thread.
 * NETSERVA_AGENT_TUNING=off starts the agent without them (the benchmark's "before" row);
 * NETSERVA_AGENT_NODE_OPTIONS="…" replaces the Node options (e.g. "--max-semi-space-size=1"
 * alone keeps the optimizing compilers, for ~10 MB more).
 */
export const AGENT_NODE_OPTIONS = ["--max-semi-space-size=1", "--no-opt", "--no-maglev"];
export const AGENT_ENV = { MALLOC_ARENA_MAX: "2" };
const TUNED_MARK = "NETSERVA_AGENT_TUNED";

/**
 * Replaces this process (same PID, so service managers and tests keep tracking it) with the same
 * command under the agent's options, once; a no-op when already tuned or turned off.
 */
export function tuneAgentProcess(binUrl) {
  if (process.env[TUNED_MARK] === "1" || process.env["NETSERVA_AGENT_TUNING"] === "off") return;
  if (typeof process.execve !== "function") return;
  const options = process.env["NETSERVA_AGENT_NODE_OPTIONS"]?.split(/\s+/).filter(Boolean) ?? AGENT_NODE_OPTIONS;
  const argv = [process.execPath, ...options, ...process.execArgv, fileURLToPath(binUrl)];
  try {
    process.execve(process.execPath, [...argv, ...process.argv.slice(2)], {
      ...AGENT_ENV, // the operator's own setting wins
      ...process.env,
      [TUNED_MARK]: "1",
    });
  } catch (error) {
    // Not fatal: the agent serves the same, only with Node's default memory settings.
    process.stderr.write(`netserva-mail-agent: starting without memory tuning: ${String(error)}\n`);
  }
}
