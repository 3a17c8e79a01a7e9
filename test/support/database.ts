import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import pg from "pg";
import { inject } from "vitest";
import { type DatabaseConfig, MEMORY, openDatabase } from "../../src/persistence/database.ts";

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
  const name = `${TEST_DATABASE_PREFIX}${randomUUID().replaceAll("-", "")}`;
  const client = new pg.Client({ connectionString: withDatabase(url, "postgres") });
  await client.connect();
  try {
    await client.query(`create database "${name}" template "${TEMPLATE_DATABASE}"`);
  } finally {
    await client.end();
  }
  return { url: withDatabase(url, name), dataDir: MEMORY };
}

export async function openTestDatabase() {
  return openDatabase(await freshDatabaseConfig());
}
