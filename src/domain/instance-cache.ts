import type { JsonObject } from "../models/types.ts";
import type { AppOrm } from "../persistence/database.ts";
import type { Instance } from "../persistence/entities.ts";
import { findInstance } from "./records.ts";

/** What inference needs of an instance, read once and shared between calls. */
export interface InstanceSnapshot {
  readonly id: string;
  readonly model: string;
  readonly arguments: JsonObject;
  readonly seed: number;
  readonly parameters: JsonObject;
  readonly state: JsonObject;
  readonly parametersVersion: number;
  readonly parametersRunId: string;
  /** The row's optimistic-lock version. */
  readonly version: number;
}

const snapshotOf = (i: Instance): InstanceSnapshot => ({
  id: i.id,
  model: i.model,
  arguments: i.arguments,
  seed: i.seed,
  parameters: i.parameters,
  state: i.state,
  parametersVersion: i.parametersVersion,
  parametersRunId: i.parametersRunId ?? "",
  version: i.version,
});

/**
 * Instances as last committed, so that inference does not read the row on every call. Every
 * transaction that changes an instance calls `invalidate` (or `update`) after it commits (and, on
 * PostgreSQL, announces the change to the other replicas, which invalidate on the notice).
 */
export class InstanceCache {
  readonly #entries = new Map<string, InstanceSnapshot>();
  /** Bumped on every invalidation, so that a read that started before a change is not cached after it. */
  #generation = 0;
  readonly #orm: AppOrm;
  readonly #capacity: number;

  constructor(orm: AppOrm, capacity = 10_000) {
    this.#orm = orm;
    this.#capacity = capacity;
  }

  async get(id: string): Promise<InstanceSnapshot> {
    const hit = this.#entries.get(id);
    if (hit) {
      // Least recently used first out: refresh the entry's place.
      this.#entries.delete(id);
      this.#entries.set(id, hit);
      return hit;
    }
    const generation = this.#generation;
    const snapshot = snapshotOf(await findInstance(this.#orm.em.fork(), id));
    if (this.#generation === generation) {
      this.#entries.set(snapshot.id, snapshot);
      if (this.#entries.size > this.#capacity) this.#entries.delete(this.#entries.keys().next().value!);
    }
    return snapshot;
  }

  /**
   * After a commit that changed the instance from `before`, as this cache gave it, to `after`: the
   * next call needs no read. If the entry changed meanwhile (another change was invalidated), the
   * cache reads it again instead.
   */
  update(before: InstanceSnapshot, after: InstanceSnapshot): void {
    const unchanged = this.#entries.get(before.id) === before;
    this.invalidate(before.id); // a read begun before the commit must not be cached after it
    if (unchanged) this.#entries.set(after.id, after);
  }

  invalidate(id: string): void {
    this.#entries.delete(id);
    this.#generation += 1;
  }

  clear(): void {
    this.#entries.clear();
    this.#generation += 1;
  }
}
