import { Migrator } from "@mikro-orm/migrations";
import { PgliteDriver } from "@mikro-orm/pglite";
import { PostgreSqlDriver } from "@mikro-orm/postgresql";
import type { PGlite } from "@electric-sql/pglite";
import { defineConfig, MikroORM, type Options } from "@mikro-orm/sql";
import type { Logger } from "pino";
import { entities } from "./entities.ts";
import { DEFAULT_JOB_OPTIONS, JobQueue, type JobQueueOptions } from "./jobs.ts";
import { MEMORY, openEmbedded } from "./embedded.ts";
import { withAdvisoryLock } from "./lock.ts";
import { migrations } from "./migrations/index.ts";

export interface DatabaseConfig {
  /** PostgreSQL connection string; when absent the embedded PGlite database is used. */
  readonly url?: string;
  /** Embedded database directory, or "memory://" for a throwaway in-memory database. */
  readonly dataDir: string;
  /** A `dumpDataDir()` tarball to start the in-memory database from (tests). */
  readonly loadDataDir?: Blob;
  /** The embedded database's shared_buffers in MB. */
  readonly sharedBuffersMb?: number;
  readonly jobs?: JobQueueOptions;
}

export { MEMORY };

/**
 * MikroORM looks for an extension whose class is named `Migrator` and, finding none, imports
 * @mikro-orm/migrations itself. In the bundle (scripts/build.ts) the class is named `_Migrator`
 * (it refers to itself), and that import loaded a second MikroORM from node_modules, some 430
 * modules, at every start of `npm start`. Named here, the bundled migrator is the only one.
 */
const migrator = { name: "Migrator", register: (orm: Parameters<typeof Migrator.register>[0]) => Migrator.register(orm) };

/** Without `pglite`, an embedded database is opened by MikroORM itself (the migration tooling). */
export function ormOptions(config: DatabaseConfig, logger?: Logger, pglite?: Promise<PGlite>): Options {
  const common = {
    entities,
    extensions: [migrator],
    migrations: { migrationsList: migrations, snapshot: false, path: "src/persistence/migrations", emit: "ts" as const },
    schemaGenerator: { ignoreSchema: ["pgboss"] },
    debug: logger?.isLevelEnabled("trace") ?? false,
    logger: (message: string) => logger?.trace(message),
  };
  if (config.url) {
    return defineConfig({ ...common, driver: PostgreSqlDriver, clientUrl: config.url, pool: { min: 0, max: 10 } });
  }
  return defineConfig({ ...common, driver: PgliteDriver, dbName: MEMORY, driverOptions: pglite ? { pglite: () => pglite } : {} });
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

/**
 * Whether the migrations table lists every migration: one query, where starting the migrator to
 * find nothing to do took 0.12–0.16 s of every embedded start. Migrations only ever go forward, so
 * a database that has them all needs no lock either.
 */
async function everyMigrationApplied(orm: AppOrm): Promise<boolean> {
  try {
    const rows = await orm.em.getConnection().execute<Array<{ name: string }>>("select name from mikro_orm_migrations");
    const applied = new Set(rows.map((row) => row.name));
    return migrations.every((m) => applied.has(m.name));
  } catch {
    return false; // a new database: no migrations table yet
  }
}

/**
 * Opens the database and applies pending migrations; an embedded one is locked, and closed with it.
 * The job queue is started separately (`jobs.start()`), so that calls can be served meanwhile.
 */
export async function openDatabase(config: DatabaseConfig, logger?: Logger): Promise<Database> {
  const local = config.url ? undefined : openEmbedded(config.dataDir, config);
  try {
    const orm = await MikroORM.init(ormOptions(config, logger, local?.pglite));
    if (!(await everyMigrationApplied(orm))) {
      // Replicas starting together on one PostgreSQL take turns; PGlite has a single process.
      if (config.url) await withAdvisoryLock(config.url, "posterior-schema", () => orm.migrator.up());
      else await orm.migrator.up();
    }
    const jobs = new JobQueue(orm, config.url, config.jobs ?? DEFAULT_JOB_OPTIONS, logger);
    return {
      orm,
      kind: config.url ? "postgresql" : "pglite",
      url: config.url,
      jobs,
      async close() {
        await jobs.stop();
        await orm.close(true);
        await local?.close(); // the ORM leaves an instance it was given open
      },
    };
  } catch (error) {
    await local?.close();
    throw error;
  }
}
