import pg from "pg";

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
