import type { AppOrm } from "../persistence/database.ts";
import { type Appended, appendToEpisodes, type NewEvent } from "../persistence/events.ts";
import { notFound } from "./errors.ts";

interface PendingEvent {
  readonly instanceId: string;
  readonly episode: string;
  readonly event: NewEvent;
  readonly resolve: (seq: number) => void;
  readonly reject: (error: unknown) => void;
}

/** At most this many events go into one commit. */
const MAX_BATCH = 1000;

/**
 * Group commit for single events (an Infer that stores its observation). Each call is answered
 * only once its event is committed. While one commit is in flight the next calls' events gather,
 * and go into the next commit together: one transaction per batch instead of per call, with no
 * added delay when the load is light.
 */
export class EventWriter {
  readonly #orm: AppOrm;
  #pending: PendingEvent[] = [];
  #draining: Promise<void> | undefined;

  constructor(orm: AppOrm) {
    this.#orm = orm;
  }

  /** Appends the event to the episode; resolves with its sequence number once committed. */
  append(instanceId: string, episode: string, event: NewEvent): Promise<number> {
    return new Promise((resolve, reject) => {
      this.#pending.push({ instanceId, episode, event, resolve, reject });
      // Start the commit only after this turn of the event loop has read every request that had
      // arrived: PGlite answers without yielding to I/O, so starting at once would commit one by one.
      this.#draining ??= new Promise<void>((resolve) => setImmediate(resolve))
        .then(() => this.#drain())
        .finally(() => (this.#draining = undefined));
    });
  }

  /** Resolves once everything appended so far is committed (or failed). */
  async flush(): Promise<void> {
    await this.#draining;
  }

  async #drain(): Promise<void> {
    while (this.#pending.length > 0) {
      const batch = this.#pending.splice(0, MAX_BATCH);
      await this.#commit(batch);
    }
  }

  async #commit(batch: readonly PendingEvent[]): Promise<void> {
    const groups = new Map<string, PendingEvent[]>();
    for (const p of batch) {
      const key = JSON.stringify([p.instanceId, p.episode]);
      const group = groups.get(key);
      if (group) group.push(p);
      else groups.set(key, [p]);
    }
    const appends = [...groups.values()];
    let appended: Array<Appended | undefined>;
    try {
      appended = await appendToEpisodes(
        this.#orm.em.fork(),
        appends.map((group) => ({ instanceId: group[0]!.instanceId, episode: group[0]!.episode, events: group.map((p) => p.event) })),
      );
    } catch (error) {
      for (const p of batch) p.reject(error);
      return;
    }
    appends.forEach((group, k) => {
      const firstSeq = appended[k]?.firstSeq;
      // A missing episode fails only the calls that named it.
      if (firstSeq === undefined) group.forEach((p) => p.reject(notFound("EPISODE", "episode", p.episode)));
      else group.forEach((p, i) => p.resolve(firstSeq + i));
    });
  }
}
