import { mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { Migrator } from "@mikro-orm/migrations";
import { PgliteDriver } from "@mikro-orm/pglite";
import { PostgreSqlDriver } from "@mikro-orm/postgresql";
import { PGlite } from "@electric-sql/pglite";
import { createPostgreSqlTypeParsers, defineConfig, MikroORM, type Options } from "@mikro-orm/sql";
import array from "postgres-array";
import type { Logger } from "pino";
import { entities } from "./entities.ts";
import { DEFAULT_JOB_OPTIONS, JobQueue, type JobQueueOptions } from "./jobs.ts";
import { acquireDirectoryLock, withAdvisoryLock } from "./lock.ts";
import { migrations } from "./migrations/index.ts";

export interface DatabaseConfig {
  /** PostgreSQL connection string; when absent the embedded PGlite database is used. */
  readonly url?: string;
  /** Embedded database directory, or "memory://" for a throwaway in-memory database. */
  readonly dataDir: string;
  /** A `dumpDataDir()` tarball to start the in-memory database from (tests). */
  readonly loadDataDir?: Blob;
  readonly jobs?: JobQueueOptions;
}

export const MEMORY = "memory://";

export function ormOptions(config: DatabaseConfig, logger?: Logger, preloaded?: Promise<PGlite>): Options {
  const common = {
    entities,
    extensions: [Migrator],
    migrations: { migrationsList: migrations, snapshot: false, path: "src/persistence/migrations", emit: "ts" as const },
    schemaGenerator: { ignoreSchema: ["pgboss"] },
    debug: logger?.isLevelEnabled("trace") ?? false,
    logger: (message: string) => logger?.trace(message),
  };
  if (config.url) {
    return defineConfig({ ...common, driver: PostgreSqlDriver, clientUrl: config.url, pool: { min: 0, max: 10 } });
  }
  const dbName = config.dataDir === MEMORY ? MEMORY : join(resolve(config.dataDir), "pglite");
  return defineConfig({ ...common, driver: PgliteDriver, dbName, driverOptions: preloaded ? { pglite: () => preloaded } : {} });
}

export type AppOrm = MikroORM;

export interface Database {
  readonly orm: AppOrm;
  readonly kind: "postgresql" | "pglite";
  /** The PostgreSQL connection string; undefined for PGlite. */
  readonly url?: string;
  readonly jobs: JobQueue;
  close(): Promise<void>;
}

/** Opens the database, applies pending migrations and, for an embedded directory, holds its lock. */
export async function openDatabase(config: DatabaseConfig, logger?: Logger): Promise<Database> {
  let releaseLock = () => {};
  if (!config.url && config.dataDir !== MEMORY) {
    const dir = resolve(config.dataDir);
    mkdirSync(dir, { recursive: true });
    releaseLock = acquireDirectoryLock(dir);
  }
  try {
    // MikroORM copies its options, which breaks a Blob inside them, so a preloaded database is
    // created here (with the type parsers MikroORM installs on instances it creates itself).
    const preloaded =
      config.loadDataDir && !config.url
        ? PGlite.create({ loadDataDir: config.loadDataDir, parsers: createPostgreSqlTypeParsers((s) => array.parse(s)) })
        : undefined;
    const orm = await MikroORM.init(ormOptions(config, logger, preloaded));
    const prepare = async () => {
      await orm.migrator.up();
      return JobQueue.open(orm, config.url, config.jobs ?? DEFAULT_JOB_OPTIONS, logger);
    };
    // Replicas starting together on one PostgreSQL take turns; PGlite has a single process.
    const jobs = config.url ? await withAdvisoryLock(config.url, "posterior-schema", prepare) : await prepare();
    return {
      orm,
      kind: config.url ? "postgresql" : "pglite",
      url: config.url,
      jobs,
      async close() {
        await jobs.stop();
        await orm.close(true);
        await (await preloaded)?.close(); // ours, not the ORM's
        releaseLock();
      },
    };
  } catch (error) {
    releaseLock();
    throw error;
  }
}
