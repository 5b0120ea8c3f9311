// What every CLI command gets: where to write, the controller home, the database, the actor.
// Environment variables are read here (the entry point) and nowhere below.
import { closeSync, existsSync, openSync, readFileSync, unlinkSync, writeSync } from "node:fs";
import { userInfo } from "node:os";
import { NetservaError } from "../../common/errors.ts";
import type { Database } from "../db/open-database.ts";
import { homePaths, resolveHome } from "../home/home-paths.ts";
import type { HomePaths } from "../home/home-paths.ts";

export interface CliIo {
  out(text: string): void;
  err(text: string): void;
  readStdin(): Promise<string>;
  env: Record<string, string | undefined>;
  isTTY: boolean;
  /** The caller's working directory, for relative paths (a forwarded command runs in the daemon). */
  cwd?: string;
  /** Answers a yes/no question; undefined when there is no terminal to ask. */
  confirm?(question: string): Promise<boolean>;
}

/** What a command run inside `serve` (through the admin socket) can ask of the daemon. */
export interface DaemonInfo {
  /** The controller's own metrics, Prometheus text format. */
  metricsText(): Promise<string>;
  /** The certificates the daemon's servers present now (PEM). */
  presentedCertificates?(): { controller: string; enrollment: string };
  /** Renews the controller's certificate and swaps it into the running servers. */
  renewControllerCertificate?(): Promise<{ certPem: string; notAfter: Date; serialHex: string }>;
}

export interface CliContext {
  io: CliIo;
  actor: string;
  paths(homeFlag?: string): HomePaths;
  openDb(paths: HomePaths): Promise<Database>;
  /** Set only for commands the running daemon executes for an admin-socket client. */
  daemon?: DaemonInfo;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The embedded database is single-process: hold a lock file while it is open. */
function lockEmbedded(lockPath: string): () => void {
  for (let attempt = 0; attempt < 2; attempt += 1) {
    try {
      const fd = openSync(lockPath, "wx", 0o600);
      writeSync(fd, String(process.pid));
      closeSync(fd);
      return () => {
        try {
          unlinkSync(lockPath);
        } catch {
          /* already gone */
        }
      };
    } catch {
      const holder = Number(existsSync(lockPath) ? readFileSync(lockPath, "utf8") : "0");
      if (holder && holder !== process.pid && pidAlive(holder)) {
        throw new NetservaError(
          "failed_precondition",
          `the embedded database is in use by process ${holder} (a running \`netserva-mail serve\`?): stop it, or use PostgreSQL via DATABASE_URL`,
        );
      }
      try {
        unlinkSync(lockPath);
      } catch {
        /* raced */
      }
    }
  }
  throw new NetservaError("failed_precondition", `cannot lock ${lockPath}`);
}

export function createCliContext(io: CliIo): CliContext {
  return {
    io,
    actor: io.env["NETSERVA_MAIL_ACTOR"] ?? io.env["SUDO_USER"] ?? userInfo().username,
    paths: (homeFlag) => homePaths(resolveHome(homeFlag, io.env["NETSERVA_MAIL_HOME"])),
    async openDb(paths) {
      // MikroORM loads here, on first use: a command forwarded to `serve` never opens a database.
      const { openDatabase } = await import("../db/open-database.ts");
      const url = io.env["DATABASE_URL"];
      if (url) return openDatabase({ url });
      const release = lockEmbedded(paths.lock);
      try {
        const db = await openDatabase({ dataDir: paths.dbDir });
        return {
          ...db,
          async close() {
            try {
              await db.close();
            } finally {
              release();
            }
          },
        };
      } catch (error) {
        release();
        throw error;
      }
    },
  };
}
