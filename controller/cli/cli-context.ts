// What every CLI command gets: where to write, the controller home, the database, the actor.
// Environment variables are read here (the entry point) and nowhere below.
import { userInfo } from "node:os";
import type { Database } from "../db/open-database.ts";
import { homePaths, resolveHome } from "../home/home-paths.ts";
import type { HomePaths } from "../home/home-paths.ts";
import type { DeliverService } from "../fleet/deliver.ts";

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
  /**
   * The daemon's own deliver service: a change is pushed over the live link the fleet keeps to
   * the vnode (no TLS handshake of its own). Used on the embedded database, where the daemon is
   * the one process that pushes; on PostgreSQL the vnode's lease holder pushes (deliver.ts).
   */
  deliver?(): DeliverService;
}

export interface CliContext {
  io: CliIo;
  actor: string;
  paths(homeFlag?: string): HomePaths;
  openDb(paths: HomePaths): Promise<Database>;
  /** Set only for commands the running daemon executes for an admin-socket client. */
  daemon?: DaemonInfo;
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
      // The embedded database: locked to this process and checked after an unclean stop.
      return openDatabase({
        dataDir: paths.dbDir,
        onEmbeddedCheck: (check) =>
          io.err(
            `the embedded database was not closed last time (killed?): checked ${check.tables} tables and ` +
              `${check.indexes} indexes` +
              (check.reindexed.length > 0 ? `, rebuilt damaged index ${check.reindexed.join(", ")}` : ", all sound") +
              "\n",
          ),
      });
    },
  };
}
