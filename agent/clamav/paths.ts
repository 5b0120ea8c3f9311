// Where the private clamd keeps everything under a vnode root.
import { join, resolve } from "node:path";

export interface ClamavPaths {
  readonly root: string;
  readonly confDir: string;
  readonly clamdConf: string;
  /** Signature databases (*.cvd/*.cld from freshclam in production, eicar.ndb in tests). */
  readonly dbDir: string;
  readonly runDir: string;
  readonly socket: string;
  readonly pidFile: string;
  readonly logDir: string;
  readonly logFile: string;
}

export function createClamavPaths(root: string): ClamavPaths {
  const base = resolve(root);
  const confDir = join(base, "etc/clamav");
  const runDir = join(base, "run/clamav");
  const logDir = join(base, "var/log/clamav");
  return {
    root: base,
    confDir,
    clamdConf: join(confDir, "clamd.conf"),
    dbDir: join(base, "var/lib/clamav"),
    runDir,
    socket: join(runDir, "clamd.ctl"),
    pidFile: join(runDir, "clamd.pid"),
    logDir,
    logFile: join(logDir, "clamd.log"),
  };
}
