// The embedded database: its directory lock and its PGlite instance, which the ORM is given (so
// that in-memory, preloaded and on-disk databases open the same way) and which is closed after it.
import { closeSync, mkdirSync, openSync, readFileSync, unlinkSync, writeSync } from "node:fs";
import { join, resolve } from "node:path";
import { PGlite } from "@electric-sql/pglite";
import { createPostgreSqlTypeParsers } from "@mikro-orm/sql";
import array from "postgres-array";

export const MEMORY = "memory://";

/**
 * Every start zeroes the shared memory in WebAssembly (Emscripten's mmap calls memset, which runs
 * unoptimised): PostgreSQL's default of 128 MB cost about 0.4 s more than 32 MB, and 32 MB about
 * 0.12 s more than 16 MB. Ingest and learning measured the same at 16 and 32 MB: large scans use a
 * small ring buffer either way, and pages not in the buffers are read from the OS's file cache.
 */
export const DEFAULT_SHARED_BUFFERS_MB = 16;

export interface EmbeddedDatabase {
  readonly pglite: Promise<PGlite>;
  /** Closes the database and releases the directory. */
  close(): Promise<void>;
}

/**
 * Locks the directory (throws if another process holds it) and opens the database in it; `dataDir`
 * MEMORY opens a throwaway one, from `options.loadDataDir` when given.
 */
export function openEmbedded(
  dataDir: string,
  options: { loadDataDir?: Blob; sharedBuffersMb?: number } = {},
): EmbeddedDatabase {
  let releaseLock = () => {};
  const common = {
    parsers,
    startParams: [...PGlite.defaultStartParams, "-c", `shared_buffers=${options.sharedBuffersMb ?? DEFAULT_SHARED_BUFFERS_MB}MB`],
  };
  let pglite: Promise<PGlite>;
  if (dataDir === MEMORY) {
    pglite = PGlite.create({ ...common, loadDataDir: options.loadDataDir });
  } else {
    const dir = resolve(dataDir);
    mkdirSync(dir, { recursive: true });
    releaseLock = acquireDirectoryLock(dir);
    pglite = PGlite.create({ ...common, dataDir: join(dir, "pglite") });
  }
  // The opener awaits `pglite`; this only keeps an early failure from being reported as unhandled first.
  pglite.catch(() => {});
  return {
    pglite,
    async close() {
      try {
        await (await pglite.catch(() => undefined))?.close();
      } finally {
        releaseLock();
      }
    },
  };
}

// As MikroORM configures the instances it creates itself.
const parsers = createPostgreSqlTypeParsers((value) => array.parse(value));

// PGlite gives no error when two processes open one directory, and silently loses writes,
// so the owning process holds an exclusive lock file naming its pid.
export function acquireDirectoryLock(dir: string): () => void {
  const path = join(dir, "posterior.lock");
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, "wx");
      writeSync(fd, String(process.pid));
      closeSync(fd);
      return () => {
        try {
          if (readFileSync(path, "utf8") === String(process.pid)) unlinkSync(path);
        } catch {
          // Already gone: nothing to release.
        }
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      const owner = Number(readFileSync(path, "utf8"));
      if (isAlive(owner)) {
        throw new Error(`data directory ${dir} is in use by process ${owner}; stop it or choose another POSTERIOR_DATA_DIR`);
      }
      unlinkSync(path); // stale lock of a process that died
    }
  }
  throw new Error(`could not lock data directory ${dir}`);
}

function isAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}
