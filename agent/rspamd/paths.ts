// Where the private Rspamd instance keeps everything under a vnode root. Debian's main config
// (/etc/rspamd/rspamd.conf) is reused read-only; only the directories it takes as --var move
// under the root, so several vnodes can run their own Rspamd on one machine.
import { join, resolve } from "node:path";

export interface RspamdPaths {
  readonly root: string;
  /** LOCAL_CONFDIR: holds local.d/ (rendered by the agent) and nothing else of ours. */
  readonly confDir: string;
  readonly localDir: string;
  /** DBDIR: statistics, symbol cache, hyperscan cache; owned by the rspamd user. */
  readonly dbDir: string;
  readonly runDir: string;
  readonly logDir: string;
  readonly logFile: string;
  readonly pidFile: string;
  /** DKIM private keys, one file per domain and selector, 0600 owned by the rspamd user. */
  readonly dkimDir: string;
  /** Default listeners: unix sockets, so tests never race for TCP ports. */
  readonly normalSocket: string;
  readonly controllerSocket: string;
  readonly milterSocket: string;
}

export function createRspamdPaths(root: string): RspamdPaths {
  const base = resolve(root);
  const at = (...parts: string[]): string => join(base, ...parts);
  const runDir = at("run/rspamd");
  const logDir = at("var/log/rspamd");
  const dbDir = at("var/lib/rspamd");
  const confDir = at("etc/rspamd");
  return {
    root: base,
    confDir,
    localDir: join(confDir, "local.d"),
    dbDir,
    runDir,
    logDir,
    logFile: join(logDir, "rspamd.log"),
    // rspamd.conf fixes the pid file at $RUNDIR/rspamd.pid.
    pidFile: join(runDir, "rspamd.pid"),
    dkimDir: join(dbDir, "dkim"),
    normalSocket: join(runDir, "normal.sock"),
    controllerSocket: join(runDir, "controller.sock"),
    milterSocket: join(runDir, "milter.sock"),
  };
}

/** The --var arguments that move Debian's rspamd.conf onto these paths (before any subcommand). */
export function rspamdVars(paths: RspamdPaths, confDir: string = paths.confDir): string[] {
  return [
    `--var=LOCAL_CONFDIR=${confDir}`,
    `--var=DBDIR=${paths.dbDir}`,
    `--var=RUNDIR=${paths.runDir}`,
    `--var=LOGDIR=${paths.logDir}`,
  ];
}
