// A private Rspamd: Debian's rspamd.conf with our LOCAL_CONFDIR/DBDIR/RUNDIR/LOGDIR. It
// daemonises itself and writes $RUNDIR/rspamd.pid; ready means the scanner answers /ping.
// Cold start compiles hyperscan databases (~10 s on a fresh DBDIR, <1 s once cached).
import { readFile } from "node:fs/promises";
import { NetservaError } from "../../common/errors.ts";
import { createRspamdClient } from "./client.ts";
import { logTail, runDaemonCommand, stopPid, waitUntil } from "../process.ts";
import { ensureOwnedDirs, lookupSystemUser, pidStatus, type ManagedDaemon } from "../sc/managed-daemon.ts";
import type { RspamdPaths } from "./paths.ts";
import { rspamdVars } from "./paths.ts";
import { validateRspamdConfig } from "./validate.ts";

export interface RspamdDaemonOptions {
  readonly paths: RspamdPaths;
  /** The normal worker's listener, as rendered (default the unix socket under the root). */
  readonly normalListen?: string;
  /** Extra directories the rspamd user must own (e.g. a shared hyperscan cache). */
  readonly extraDirs?: readonly string[];
  readonly user?: string;
  readonly group?: string;
  readonly mainConfig?: string;
  readonly rspamd?: string;
  readonly rspamadm?: string;
  readonly startTimeoutMs?: number;
  readonly stopTimeoutMs?: number;
  /** Command prefix for the launch, e.g. ["ip", "netns", "exec", NS]. */
  readonly wrap?: readonly string[];
}

const PROGRAM = "rspamd";

/** Direct children of a pid (Linux /proc), to see a reload replace every worker. */
async function children(pid: number): Promise<Set<number>> {
  const text = await readFile(`/proc/${pid}/task/${pid}/children`, "utf8").catch(() => "");
  return new Set(
    text
      .split(/\s+/)
      .filter((s) => s !== "")
      .map(Number),
  );
}

/** A child's title and state as /proc shows them ("rspamd: normal process (Z)"), for errors. */
async function describeChild(pid: number): Promise<string> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => "");
  // The state follows the parenthesised name, which may itself hold spaces or parentheses.
  const state = stat.slice(stat.lastIndexOf(")") + 2).split(" ")[0] ?? "?";
  const title = (await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "")).replace(/\0+/g, " ").trim();
  return `${pid} ${title || "?"} (${state || "gone"})`;
}

/** A zombie has exited; only its parent's wait is pending. */
async function exited(pid: number): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => "");
  if (stat === "") return true;
  const state = stat.slice(stat.lastIndexOf(")") + 2).split(" ")[0];
  return state === "Z" || state === "X";
}

export function createRspamdDaemon(o: RspamdDaemonOptions): ManagedDaemon {
  const { paths } = o;
  const user = o.user ?? "_rspamd";
  const group = o.group ?? user;
  const mainConfig = o.mainConfig ?? "/etc/rspamd/rspamd.conf";
  // A cold start compiles hyperscan databases: tens of seconds on a busy 2-core machine.
  const startTimeout = o.startTimeoutMs ?? 180_000;
  const client = createRspamdClient({ listen: o.normalListen ?? paths.normalSocket, timeoutMs: 2_000 });
  const status = () => pidStatus(paths.pidFile, PROGRAM);

  async function failure(what: string, cause?: unknown): Promise<NetservaError> {
    return new NetservaError("unavailable", `rspamd ${what}; last log lines:\n${await logTail(paths.logFile)}`, {
      cause,
    });
  }

  async function waitReady(pid: number): Promise<void> {
    await waitUntil(
      "rspamd scanner /ping",
      startTimeout,
      async () => {
        if (!(await pidStatus(paths.pidFile, PROGRAM)).running)
          throw await failure(`(pid ${pid}) exited while starting`);
        return client.ping();
      },
      25,
    );
  }

  return {
    name: "rspamd",
    status,
    validate: (candidate) =>
      validateRspamdConfig({
        paths,
        confDir: candidate ?? paths.confDir,
        mainConfig,
        ...(o.rspamadm ? { rspamadm: o.rspamadm } : {}),
      }),

    async start() {
      if ((await status()).running) return;
      const owner = await lookupSystemUser(user);
      await ensureOwnedDirs([paths.dbDir, paths.runDir, paths.logDir, ...(o.extraDirs ?? [])], owner);
      // The master stays root to bind sockets and read config; workers drop to the user.
      const args = ["-c", mainConfig, ...rspamdVars(paths), "-u", user, "-g", group];
      const launched = await runDaemonCommand(o.rspamd ?? PROGRAM, args, {
        timeoutMs: startTimeout,
        wrap: o.wrap ?? [],
      });
      if (launched.code !== 0)
        throw await failure(
          `exited ${launched.code} before daemonising (config or permissions): ${launched.stderr.trim()}`,
        );
      let pid: number | undefined;
      await waitUntil("rspamd pid file", 10_000, async () => (pid = (await status()).pid) !== undefined);
      await waitReady(pid ?? 0);
    },

    async reload() {
      const { pid } = await status();
      if (pid === undefined)
        throw new NetservaError("failed_precondition", "rspamd is not running: start it instead of reloading");
      const old = await children(pid);
      process.kill(pid, "SIGHUP");
      // Done when every old worker has gone (new ones are serving the new config) and /ping answers.
      let lingering: number[] = [];
      await waitUntil(
        "rspamd reload (old workers replaced)",
        startTimeout,
        async () => {
          const now = await children(pid);
          lingering = [];
          for (const c of old) if (now.has(c) && !(await exited(c))) lingering.push(c);
          return now.size > 0 && lingering.length === 0;
        },
        50,
      ).catch(async (err: unknown) => {
        const left = await Promise.all(lingering.map(describeChild));
        throw await failure(`did not finish reloading (old workers still running: ${left.join(", ") || "none"})`, err);
      });
      await waitReady(pid);
    },

    async stop() {
      const { pid } = await status();
      if (pid !== undefined) await stopPid(pid, PROGRAM, o.stopTimeoutMs ?? 15_000);
    },
  };
}
