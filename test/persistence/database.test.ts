// The database as the services see it: the embedded instance's settings and the job queue's start.
import { randomUUID } from "node:crypto";
import { afterEach, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.ts";
import { type Database, MEMORY, openDatabase } from "../../src/persistence/database.ts";
import { LEARN_QUEUE } from "../../src/persistence/jobs.ts";
import { openTestDatabase, usingPostgres } from "../support/database.ts";

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
