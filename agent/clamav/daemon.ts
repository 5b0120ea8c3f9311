// A private clamd under the vnode root: daemonises, writes its pid file, ready when it answers
// PING on its unix socket. reload() reloads signatures only; a changed clamd.conf needs
// stop() + start() (clamd has no config reload).
import { readdir } from "node:fs/promises";
import { createConnection } from "node:net";
import { NetservaError } from "../../common/errors.ts";
import { logTail, runDaemonCommand, runProgram, stopPid, waitUntil } from "../process.ts";
import {
  ensureOwnedDirs,
  lookupSystemUser,
  pidStatus,
  type ManagedDaemon,
  type ValidationResult,
} from "../sc/managed-daemon.ts";
import type { ClamavPaths } from "./paths.ts";

export interface ClamdDaemonOptions {
  readonly paths: ClamavPaths;
  readonly user?: string;
  readonly clamd?: string;
  readonly clamconf?: string;
  readonly startTimeoutMs?: number;
  /** Command prefix for the launch, e.g. ["ip", "netns", "exec", NS]. */
  readonly wrap?: readonly string[];
}

const PROGRAM = "clamd";
const DATABASE = /\.(cvd|cld|cud|ndb|hdb|hsb|mdb|msb|ldb|ndu|ldu|yar|yara|cbc|pdb|gdb|wdb|ign2|fp|sfp)$/;

/** Send one null-terminated clamd command ("zPING") and return its answer without the NUL. */
export function clamdCommand(socket: string, command: string, timeoutMs = 2_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const conn = createConnection({ path: socket });
    const chunks: Buffer[] = [];
    conn.setTimeout(timeoutMs, () =>
      conn.destroy(new NetservaError("deadline_exceeded", `clamd ${command} took over ${timeoutMs} ms`)),
    );
    conn.on("connect", () => conn.write(`z${command}\0`));
    conn.on("data", (c: Buffer) => chunks.push(c));
    conn.on("error", (err) => reject(NetservaError.from(err, "unavailable")));
    conn.on("close", () => resolve(Buffer.concat(chunks).toString("utf8").replace(/\0$/, "")));
  });
}

export async function validateClamdConfig(confDir: string, clamconf = "clamconf"): Promise<ValidationResult> {
  // clamconf exits 0 even on "Unknown option": its ERROR lines are the verdict.
  const r = await runProgram(clamconf, ["-n", "-c", confDir], { timeoutMs: 15_000 });
  const output = `${r.stderr}${r.stdout}`.trim();
  return { ok: r.code === 0 && !/^ERROR:/m.test(output) && /Config file: clamd\.conf/.test(r.stdout), output };
}

export function createClamdDaemon(o: ClamdDaemonOptions): ManagedDaemon {
  const { paths } = o;
  const startTimeout = o.startTimeoutMs ?? 120_000; // a full official database loads in ~20-40 s
  const status = () => pidStatus(paths.pidFile, PROGRAM);
  const ping = async (): Promise<boolean> => (await clamdCommand(paths.socket, "PING").catch(() => "")) === "PONG";

  async function failure(what: string): Promise<NetservaError> {
    return new NetservaError("unavailable", `clamd ${what}; last log lines:\n${await logTail(paths.logFile)}`);
  }

  return {
    name: "clamd",
    status,
    validate: (candidate) => validateClamdConfig(candidate ?? paths.confDir, o.clamconf),

    async start() {
      if ((await status()).running) return;
      const files = await readdir(paths.dbDir).catch(() => [] as string[]);
      if (!files.some((f) => DATABASE.test(f))) {
        throw new NetservaError(
          "failed_precondition",
          `no ClamAV signature database in ${paths.dbDir}: run freshclam for it (tests: writeEicarSignatureDb)`,
        );
      }
      await ensureOwnedDirs([paths.runDir, paths.logDir], await lookupSystemUser(o.user ?? "clamav"));
      const launched = await runDaemonCommand(o.clamd ?? PROGRAM, ["-c", paths.clamdConf], {
        timeoutMs: startTimeout,
        wrap: o.wrap ?? [],
      });
      if (launched.code !== 0)
        throw await failure(`exited ${launched.code} before daemonising: ${launched.stderr.trim()}`);
      await waitUntil("clamd pid file", 10_000, async () => (await status()).running);
      await waitUntil("clamd PONG", startTimeout, async () => {
        if (!(await status()).running) throw await failure("exited while starting");
        return ping();
      });
    },

    async reload() {
      if (!(await status()).running)
        throw new NetservaError("failed_precondition", "clamd is not running: start it instead of reloading");
      const answer = await clamdCommand(paths.socket, "RELOAD");
      if (answer !== "RELOADING") throw await failure(`answered ${JSON.stringify(answer)} to RELOAD`);
      await waitUntil("clamd PONG after RELOAD", startTimeout, ping);
    },

    async stop() {
      const { pid } = await status();
      if (pid !== undefined) await stopPid(pid, PROGRAM, 15_000);
    },
  };
}
