// The embedded database: its directory lock and its PGlite instance, which the ORM is given (so
// that in-memory, preloaded and on-disk databases open the same way) and which is closed after it.
import { closeSync, mkdirSync, openSync, readFileSync, unlinkSync, writeSync } from "node:fs";
import { join, resolve } from "node:path";
import { PGlite } from "@electric-sql/pglite";
import { createPostgreSqlTypeParsers } from "@mikro-orm/sql";
import array from "postgres-array";

export const MEMORY = "memory://";

export interface EmbeddedDatabase {
  readonly pglite: Promise<PGlite>;
  /** Closes the database and releases the directory. */
  close(): Promise<void>;
}

/**
 * Locks the directory (throws if another process holds it) and opens the database in it; `dataDir`
 * MEMORY opens a throwaway one, from `loadDataDir` when given.
 */
export function openEmbedded(dataDir: string, loadDataDir?: Blob): EmbeddedDatabase {
  let releaseLock = () => {};
  let pglite: Promise<PGlite>;
  if (dataDir === MEMORY) {
    pglite = PGlite.create({ loadDataDir, parsers });
  } else {
    const dir = resolve(dataDir);
    mkdirSync(dir, { recursive: true });
    releaseLock = acquireDirectoryLock(dir);
    pglite = PGlite.create({ dataDir: join(dir, "pglite"), parsers });
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
