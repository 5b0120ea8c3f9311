// What a self-daemonising filter daemon (rspamd, clamd) offers sc() and the apply pipeline, and
// what launching one needs: its system user and the directories it writes. Shaped for the
// service-control registry: { name, start, reload, stop, status, validate }.
import { chown, mkdir, readFile } from "node:fs/promises";
import { NetservaError } from "../../common/errors.ts";
import { livePid } from "../process.ts";

export interface DaemonStatus {
  readonly running: boolean;
  readonly pid?: number;
}

export interface ValidationResult {
  readonly ok: boolean;
  /** The checker's own words (stderr + stdout), for the apply report. */
  readonly output: string;
}

export interface ManagedDaemon {
  readonly name: string;
  start(): Promise<void>;
  reload(): Promise<void>;
  stop(): Promise<void>;
  status(): Promise<DaemonStatus>;
  /** Check a candidate config (default: the live one) with the daemon's own checker. */
  validate(candidate?: string): Promise<ValidationResult>;
}

/** Running when the pid file names a live `program`. */
export async function pidStatus(pidFile: string, program: string): Promise<DaemonStatus> {
  const pid = await livePid(pidFile, program);
  return pid === undefined ? { running: false } : { running: true, pid };
}

export interface SystemUser {
  readonly uid: number;
  readonly gid: number;
}

/** Look a system user up in /etc/passwd (no getent: no process, no NSS surprises). */
export async function lookupSystemUser(name: string): Promise<SystemUser> {
  const passwd = await readFile("/etc/passwd", "utf8");
  for (const line of passwd.split("\n")) {
    const [user, , uid, gid] = line.split(":");
    if (user === name && uid !== undefined && gid !== undefined) return { uid: Number(uid), gid: Number(gid) };
  }
  throw new NetservaError(
    "failed_precondition",
    `system user ${name} does not exist: install the package that creates it`,
  );
}

/** mkdir -p, then hand the leaf to the daemon's user (it writes pid, sockets, caches there). */
export async function ensureOwnedDirs(dirs: readonly string[], owner: SystemUser, mode = 0o755): Promise<void> {
  for (const dir of dirs) {
    await mkdir(dir, { recursive: true, mode });
    await chown(dir, owner.uid, owner.gid);
  }
}
