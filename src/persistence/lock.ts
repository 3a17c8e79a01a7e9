import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from "node:fs";
import pg from "pg";
import { join } from "node:path";

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

/** Runs `task` while holding a PostgreSQL session advisory lock, on a connection of its own. */
export async function withAdvisoryLock<T>(url: string, name: string, task: () => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url, application_name: "posterior-lock" });
  await client.connect();
  try {
    await client.query("select pg_advisory_lock(hashtext($1))", [name]);
    return await task();
  } finally {
    await client.end(); // ending the session releases the lock
  }
}
