import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import pg from "pg";
import { inject } from "vitest";
import { type DatabaseConfig, MEMORY, openDatabase } from "../../src/persistence/database.ts";
import type { JobQueueOptions } from "../../src/persistence/jobs.ts";

export const TEST_DATABASE_PREFIX = "posterior_test_";
export const TEMPLATE_DATABASE = `${TEST_DATABASE_PREFIX}template`;

export const usingPostgres = Boolean(process.env.DATABASE_URL);

export function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

/** A fresh, migrated database for one test file. */
export async function freshDatabaseConfig(): Promise<DatabaseConfig> {
  const url = process.env.DATABASE_URL;
  if (!url) return { dataDir: MEMORY, loadDataDir: new Blob([readFileSync(inject("pgliteDump"))]) };
  return { url: await createDatabase(url, TEMPLATE_DATABASE), dataDir: MEMORY };
}

/** A new PostgreSQL database on the server of `url`, copied from `template` (template0: empty). */
export async function createDatabase(url: string, template = "template0"): Promise<string> {
  const name = `${TEST_DATABASE_PREFIX}${randomUUID().replaceAll("-", "")}`;
  const client = new pg.Client({ connectionString: withDatabase(url, "postgres") });
  await client.connect();
  try {
    await client.query(`create database "${name}" template "${template}"`);
  } finally {
    await client.end();
  }
  return withDatabase(url, name);
}

export async function openTestDatabase(jobs?: JobQueueOptions) {
  return openDatabase({ ...(await freshDatabaseConfig()), jobs });
}
