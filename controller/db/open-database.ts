// Opens the controller database: PostgreSQL when a URL is given (production), otherwise the
// embedded PGlite in the controller's home (a newcomer needs no server). Both run the same
// migrations on open, so the schema is always current.
import { MikroORM as PostgresORM } from "@mikro-orm/postgresql";
import { MikroORM as PgliteORM } from "@mikro-orm/pglite";
import { Migrator } from "@mikro-orm/migrations";
import { Client } from "pg";
import type { SqlEntityManager } from "@mikro-orm/sql";
import { NetservaError } from "../../common/errors.ts";
import { allEntities } from "./entities/index.ts";
import { allMigrations } from "./migrations/index.ts";
import { checkEmbeddedDatabase, damaged } from "./embedded-check.ts";
import type { EmbeddedCheck } from "./embedded-check.ts";
import { lockEmbeddedDatabase } from "./embedded-lock.ts";
import { asDatabaseError } from "./database-errors.ts";

export interface DatabaseOptions {
  /** postgresql://… — when absent, the embedded PGlite at `dataDir` is used. */
  url?: string | undefined;
  /** Directory of the embedded database ("memory://" for a throwaway one). */
  dataDir?: string | undefined;
  /** Connection pool size for PostgreSQL. */
  poolSize?: number;
  /** PostgreSQL: longest wait for a new connection or a free one from the pool (default 10 s). */
  connectTimeoutMs?: number;
  /** PostgreSQL: longest wait for a statement's answer (default 30 s). */
  queryTimeoutMs?: number;
  /** Told what the start-up check of the embedded database found after an unclean stop. */
  onEmbeddedCheck?: (check: EmbeddedCheck) => void;
  /** Sees every statement before it runs (tests count statements and explain them); returns it unchanged. */
  onQuery?: (sql: string, params: readonly unknown[]) => void;
}

export interface Database {
  readonly kind: "postgresql" | "pglite";
  /** PostgreSQL's URL (a dedicated LISTEN connection needs it); absent for PGlite. */
  readonly url?: string;
  /** A fresh, request-scoped entity manager. */
  em(): SqlEntityManager;
  close(): Promise<void>;
}

/** A connection that is not made, or a pool slot not free, within this is "unreachable". */
export const CONNECT_TIMEOUT_MS = 10_000;
/** Longer than any statement of ours takes (a 100,000-mailbox state is one read of a few seconds). */
export const QUERY_TIMEOUT_MS = 30_000;

const common = (o: DatabaseOptions) => ({
  entities: allEntities,
  extensions: [Migrator],
  migrations: {
    migrationsList: allMigrations,
    tableName: "mikro_orm_migrations",
    transactional: true,
    allOrNothing: true,
    silent: true,
    snapshot: false,
  },
  debug: false,
  allowGlobalContext: false,
  ...(o.onQuery ? { onQuery: (sql: string, params: readonly unknown[]) => (o.onQuery?.(sql, params), sql) } : {}),
});

export async function openDatabase(options: DatabaseOptions): Promise<Database> {
  try {
    if (options.url) {
      const orm = await PostgresORM.init({
        ...common(options),
        clientUrl: options.url,
        pool: { min: 0, max: options.poolSize ?? 10 },
        // A database that drops packets (a cut link, a firewall) answers nothing, not even a
        // reset: without limits pg waits for the kernel's TCP timeouts, minutes, holding the
        // operator's command. With them a command fails with exit 5 in seconds (database-errors.ts).
        driverOptions: {
          connectionTimeoutMillis: options.connectTimeoutMs ?? CONNECT_TIMEOUT_MS,
          query_timeout: options.queryTimeoutMs ?? QUERY_TIMEOUT_MS,
          keepAlive: true,
          keepAliveInitialDelayMillis: 5000,
        },
      });
      await migrateAlone(options, () => orm.migrator.up().then(() => undefined)).catch(async (error: unknown) => {
        await orm.close(true).catch(() => undefined);
        throw error;
      });
      return {
        kind: "postgresql",
        url: options.url,
        em: () => orm.em.fork() as unknown as SqlEntityManager,
        close: () => orm.close(true),
      };
    }
    const dataDir = options.dataDir ?? "memory://";
    if (dataDir.startsWith("memory://")) return await openPglite(options, dataDir);
    // One process at a time, and never on a damaged directory (embedded-lock.ts, embedded-check.ts).
    const lock = lockEmbeddedDatabase(dataDir);
    try {
      const check = await checkEmbeddedDatabase(dataDir);
      if (check.unclean) options.onEmbeddedCheck?.(check);
      const db = await openPglite(options, dataDir, (error) =>
        damaged(dataDir, `it does not start: ${(error as Error).message}`, error),
      );
      return {
        ...db,
        async close() {
          try {
            await db.close();
          } finally {
            lock.release();
          }
        },
      };
    } catch (error) {
      lock.release();
      throw error;
    }
  } catch (error) {
    if (error instanceof NetservaError) throw error;
    // A server that refuses, resets or never answers is "unreachable" like any later failure.
    const unreachable = asDatabaseError(error);
    if (unreachable.code === "unavailable") throw unreachable;
    throw new NetservaError("unavailable", `database: cannot open (${(error as Error).message})`, { cause: error });
  }
}

/** Any constant: the advisory lock every process takes around its migrations. */
const MIGRATION_LOCK = 0x6e736d6d; // "nsmm"

/**
 * Several controllers (and CLIs) may open a fresh or older database at the same moment: two
 * migrators would both create the same tables, and one fails on a duplicate. A session advisory
 * lock on a connection of its own makes them take turns; the second finds nothing left to do.
 */
async function migrateAlone(options: DatabaseOptions, migrate: () => Promise<void>): Promise<void> {
  const client = new Client({
    connectionString: options.url,
    connectionTimeoutMillis: options.connectTimeoutMs ?? CONNECT_TIMEOUT_MS,
  });
  client.on("error", () => undefined);
  await client.connect();
  try {
    await client.query("select pg_advisory_lock($1)", [MIGRATION_LOCK]);
    await migrate();
  } finally {
    // Closing the session drops the lock too.
    await client.end().catch(() => undefined);
  }
}

async function openPglite(
  options: DatabaseOptions,
  dataDir: string,
  onStartFailure: (error: unknown) => Error = (error) => error as Error,
): Promise<Database> {
  const orm = await PgliteORM.init({ ...common(options), dbName: dataDir }).catch((error: unknown) => {
    throw onStartFailure(error);
  });
  await orm.migrator.up();
  return { kind: "pglite", em: () => orm.em.fork() as unknown as SqlEntityManager, close: () => orm.close(true) };
}
