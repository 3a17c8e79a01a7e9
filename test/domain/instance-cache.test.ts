// The instance cache after a filter's state write: kept up to date without a read, unless the
// instance changed some other way meanwhile.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { InstanceCache } from "../../src/domain/instance-cache.ts";
import { InstanceService } from "../../src/domain/instances.ts";
import type { Database } from "../../src/persistence/database.ts";
import { openTestDatabase } from "../support/database.ts";

let db: Database;
let cache: InstanceCache;
let id: string;
beforeEach(async () => {
  db = await openTestDatabase();
  cache = new InstanceCache(db.orm);
  id = (await new InstanceService(db.orm, cache).create({ model: "linear-state-space-model-v1", description: "", arguments: {} })).id;
});
afterEach(() => db.close());

describe("the instance cache", () => {
  it("serves an update it was told of without reading the row", async () => {
    const before = await cache.get(id);
    const after = { ...before, state: { marker: 1 }, version: before.version + 1 };
    cache.update(before, after);
    // The row itself was not changed here, so only the cache can answer with the marker.
    expect(await cache.get(id)).toBe(after);
  });

  it("reads the row again when the entry changed between the read and the update", async () => {
    const before = await cache.get(id);
    cache.invalidate(id); // e.g. a learning run committed meanwhile
    cache.update(before, { ...before, state: { marker: 1 }, version: before.version + 1 });
    const read = await cache.get(id);
    expect(read.state).toEqual(before.state);
    expect(read).not.toBe(before);
  });

  it("does not cache a read that began before an update", async () => {
    const before = await cache.get(id);
    cache.invalidate(id);
    const reading = cache.get(id); // reads the row as it is before the update below
    cache.update(before, { ...before, state: { marker: 1 }, version: before.version + 1 });
    expect((await reading).state).toEqual(before.state);
    // The stale read was not kept: the next get reads the row again (a new object).
    const next = await cache.get(id);
    expect(next).not.toBe(await reading);
  });
});
