// Event appends as the services make them: alone (a prepared statement on PGlite) or in a transaction.
import type { PGlite } from "@electric-sql/pglite";
import type { PgliteConnection } from "@mikro-orm/pglite";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { InstanceCache } from "../../src/domain/instance-cache.ts";
import { InstanceService } from "../../src/domain/instances.ts";
import type { Database } from "../../src/persistence/database.ts";
import { appendToEpisodes, type NewEvent } from "../../src/persistence/events.ts";
import { openTestDatabase, usingPostgres } from "../support/database.ts";

let db: Database;
let instanceId: string;
beforeEach(async () => {
  db = await openTestDatabase();
  instanceId = (await new InstanceService(db.orm, new InstanceCache(db.orm)).create({ model: "beta-bernoulli-v1", description: "", arguments: {} })).id;
});
afterEach(() => db.close());

const event = (y: number): NewEvent => ({ timestamp: new Date(Date.UTC(2026, 10, 25, 0, 0, y)), data: { y: [y] }, metadata: { y } });
const append = (em = db.orm.em.fork(), y = 1, id = instanceId) => appendToEpisodes(em, [{ instanceId: id, episode: "default", events: [event(y)] }]);
const storedEvents = async () =>
  (await db.orm.em.fork().getConnection().execute("select seq::int, data from event order by seq")) as Array<{ seq: number; data: unknown }>;

describe("event appends", () => {
  it("answer alike alone and in a transaction", async () => {
    const inTransaction = await db.orm.em.fork().transactional((em) => append(em, 1));
    const alone = await append(undefined, 2);
    expect(inTransaction[0]!.firstSeq).toBe(1);
    expect(alone[0]!.firstSeq).toBe(2);
    const [a, b] = [inTransaction[0]!.episode(), alone[0]!.episode()];
    expect({ id: b.id, name: b.name, eventCount: b.eventCount, first: b.firstEventAt }).toEqual({ id: a.id, name: a.name, eventCount: 2, first: a.firstEventAt });
    expect(b.lastEventAt).toEqual(event(2).timestamp);
    expect(await storedEvents()).toEqual([{ seq: 1, data: { y: [1] } }, { seq: 2, data: { y: [2] } }]);
  });

  it("commit alone: an append made while a transaction is open is not undone by its rollback", async () => {
    let appended: Promise<unknown> | undefined;
    const rolledBack = db.orm.em.fork().transactional(async (em) => {
      await append(em, 1);
      appended = append(undefined, 2);
      await new Promise((resolve) => setTimeout(resolve, 100));
      throw new Error("rolled back");
    });
    await expect(rolledBack).rejects.toThrow("rolled back");
    expect(((await appended) as Array<{ firstSeq: number }>)[0]!.firstSeq).toBe(1);
    expect(await storedEvents()).toEqual([{ seq: 1, data: { y: [2] } }]);
  });

  it("refuse what the database refuses, and go on working", async () => {
    await expect(append(undefined, 1, "not-a-uuid")).rejects.toThrow(/uuid/);
    expect((await append(undefined, 2))[0]!.firstSeq).toBe(1);
  });

  it.skipIf(usingPostgres)("prepare the statement again when the embedded session has lost it", async () => {
    expect((await append(undefined, 1))[0]!.firstSeq).toBe(1);
    const pglite: PGlite = await (db.orm.em.getConnection() as unknown as PgliteConnection).getNativeClient();
    expect((await pglite.query("select name from pg_prepared_statements")).rows).toEqual([{ name: "append_events" }]);
    await pglite.exec("deallocate all");
    expect((await append(undefined, 2))[0]!.firstSeq).toBe(2);
    expect(await storedEvents()).toEqual([{ seq: 1, data: { y: [1] } }, { seq: 2, data: { y: [2] } }]);
  });
});
