// Opens the controller database: PostgreSQL when a URL is given (production), otherwise the
// embedded PGlite in the controller's home (a newcomer needs no server). Both run the same
// migrations on open, so the schema is always current.
import { MikroORM as PostgresORM } from "@mikro-orm/postgresql";
import { MikroORM as PgliteORM } from "@mikro-orm/pglite";
import { Migrator } from "@mikro-orm/migrations";
import type { SqlEntityManager } from "@mikro-orm/sql";
import { NetservaError } from "../../common/errors.ts";
import { allEntities } from "./entities/index.ts";
import { allMigrations } from "./migrations/index.ts";

export interface DatabaseOptions {
  /** postgresql://… — when absent, the embedded PGlite at `dataDir` is used. */
  url?: string | undefined;
  /** Directory of the embedded database ("memory://" for a throwaway one). */
  dataDir?: string | undefined;
  /** Connection pool size for PostgreSQL. */
  poolSize?: number;
  /** Sees every statement before it runs (tests count statements and explain them); returns it unchanged. */
  onQuery?: (sql: string, params: readonly unknown[]) => void;
}

export interface Database {
  readonly kind: "postgresql" | "pglite";
  /** A fresh, request-scoped entity manager. */
  em(): SqlEntityManager;
  close(): Promise<void>;
}

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
      });
      await orm.migrator.up();
      return {
        kind: "postgresql",
        em: () => orm.em.fork() as unknown as SqlEntityManager,
        close: () => orm.close(true),
      };
    }
    const dataDir = options.dataDir ?? "memory://";
    const orm = await PgliteORM.init({ ...common(options), dbName: dataDir });
    await orm.migrator.up();
    return { kind: "pglite", em: () => orm.em.fork() as unknown as SqlEntityManager, close: () => orm.close(true) };
  } catch (error) {
    throw new NetservaError("unavailable", `database: cannot open (${(error as Error).message})`, { cause: error });
  }
}
