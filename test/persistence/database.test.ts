// The database as the services see it: migrations at start, the embedded instance's settings and the job queue's start.
import { randomUUID } from "node:crypto";
import type { PgliteConnection } from "@mikro-orm/pglite";
import { afterEach, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.ts";
import { type Database, MEMORY, openDatabase } from "../../src/persistence/database.ts";
import { LEARN_QUEUE } from "../../src/persistence/jobs.ts";
import { freshDatabaseConfig, openTestDatabase, usingPostgres } from "../support/database.ts";

let db: Database | undefined;
afterEach(async () => {
  await db?.close();
  db = undefined;
});

const sharedBuffers = async (d: Database) =>
  ((await d.orm.em.getConnection().execute("show shared_buffers")) as Array<{ shared_buffers: string }>)[0]!.shared_buffers;

describe.skipIf(usingPostgres)("the embedded database", () => {
  it("starts with 16 MB of shared buffers unless configured otherwise", async () => {
    db = await openDatabase({ dataDir: MEMORY });
    expect(await sharedBuffers(db)).toBe("16MB");
    await db.close();
    db = await openDatabase({ dataDir: MEMORY, sharedBuffersMb: 48 });
    expect(await sharedBuffers(db)).toBe("48MB");
  });

  it("reads the setting from POSTERIOR_EMBEDDED_SHARED_BUFFERS_MB and refuses nonsense", () => {
    expect(loadConfig({}).embeddedSharedBuffersMb).toBeUndefined();
    expect(loadConfig({ POSTERIOR_EMBEDDED_SHARED_BUFFERS_MB: "64" }).embeddedSharedBuffersMb).toBe(64);
    expect(() => loadConfig({ POSTERIOR_EMBEDDED_SHARED_BUFFERS_MB: "0" })).toThrow(/POSTERIOR_EMBEDDED_SHARED_BUFFERS_MB must be an integer from 1/);
  });
});

describe("migrations at start", () => {
  const LAST = "Migration20261124232000_append_function";
  const sql = async (d: Database, query: string) => (await d.orm.em.getConnection().execute(query)) as Array<Record<string, unknown>>;

  it("applies the migrations a database lacks, and only those", async () => {
    const config = await freshDatabaseConfig();
    db = await openDatabase(config);
    // The database as it was before the last migration.
    await sql(db, `delete from mikro_orm_migrations where name = '${LAST}'`);
    await sql(db, "drop function append_events");
    const reopen = usingPostgres
      ? config
      : { dataDir: MEMORY, loadDataDir: await (await (db.orm.em.getConnection() as unknown as PgliteConnection).getNativeClient()).dumpDataDir("none") };
    await db.close();
    db = await openDatabase(reopen);
    expect((await sql(db, "select name from mikro_orm_migrations order by id")).map((r) => r.name)).toEqual([
      "Migration20261123183856_initial",
      "Migration20261123212803_runs",
      "Migration20261124142408_event_without_foreign_key",
      LAST,
    ]);
    expect(await sql(db, "select proname from pg_proc where proname = 'append_events'")).toEqual([{ proname: "append_events" }]);
  });
});

describe("the job queue", () => {
  it("refuses a job before it has started, rather than wait inside the transaction, and takes it after", async () => {
    db = await openTestDatabase();
    const jobs = db.jobs;
    const first = randomUUID();
    await expect(db.orm.em.fork().transactional((em) => jobs.send(em, LEARN_QUEUE, first, { id: first }))).rejects.toThrow(/not started/);
    await jobs.start();
    await Promise.all([jobs.start(), jobs.start()]); // later calls share the first start
    const second = randomUUID();
    await db.orm.em.fork().transactional((em) => jobs.send(em, LEARN_QUEUE, second, { id: second }));
    expect(await jobs.state(LEARN_QUEUE, second)).toMatchObject({ state: "created" });
    expect(await jobs.state(LEARN_QUEUE, first)).toBeUndefined();
  });

  it("stops cleanly when it never started", async () => {
    db = await openTestDatabase();
    await db.jobs.stop();
  });
});
