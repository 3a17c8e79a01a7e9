// Builds one migrated database per test run; each test file then starts from a copy of it
// (PGlite: a data-dir dump; PostgreSQL: a template database).
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { PgliteConnection } from "@mikro-orm/pglite";
import pg from "pg";
import type { TestProject } from "vitest/node";
import { MEMORY, openDatabase } from "../../src/persistence/database.ts";
import { TEMPLATE_DATABASE, TEST_DATABASE_PREFIX, withDatabase } from "./database.ts";

declare module "vitest" {
  export interface ProvidedContext {
    pgliteDump: string;
  }
}

export default async function setup(project: TestProject) {
  const url = process.env.DATABASE_URL;
  if (url) {
    await dropTestDatabases(url);
    await adminQuery(url, `create database "${TEMPLATE_DATABASE}"`);
    const db = await openDatabase({ url: withDatabase(url, TEMPLATE_DATABASE), dataDir: MEMORY });
    await db.jobs.start(); // the template holds pg-boss's schema too
    await db.close();
    project.provide("pgliteDump", "");
    return () => dropTestDatabases(url);
  }
  const db = await openDatabase({ dataDir: MEMORY });
  await db.jobs.start();
  const pglite = await (db.orm.em.getConnection() as PgliteConnection).getNativeClient();
  const dump = await pglite.dumpDataDir("none");
  await db.close();
  const dir = mkdtempSync(join(tmpdir(), "posterior-test-"));
  const path = join(dir, "template.tar");
  writeFileSync(path, Buffer.from(await dump.arrayBuffer()));
  project.provide("pgliteDump", path);
  return () => rmSync(dir, { recursive: true, force: true });
}

async function adminQuery(url: string, sql: string) {
  const client = new pg.Client({ connectionString: withDatabase(url, "postgres") });
  await client.connect();
  try {
    return await client.query(sql);
  } finally {
    await client.end();
  }
}

async function dropTestDatabases(url: string) {
  const { rows } = await adminQuery(url, `select datname from pg_database where datname like '${TEST_DATABASE_PREFIX}%'`);
  for (const { datname } of rows as Array<{ datname: string }>) {
    await adminQuery(url, `drop database if exists "${datname}" with (force)`);
  }
}
