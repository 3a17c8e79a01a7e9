// Event storage: bulk appends and keyset-paged raw reads (hydrating entities is ~4× slower).
import type { EntityManager } from "@mikro-orm/sql";
import type { JsonObject } from "../models/types.ts";
import { type Episode, Event } from "./entities.ts";

export interface NewEvent {
  readonly timestamp: Date;
  readonly data: JsonObject;
  readonly metadata: JsonObject | null;
}

export interface StoredEvent extends NewEvent {
  readonly seq: number;
}

const INSERT_CHUNK = 2000;
const READ_PAGE = 10_000;

/**
 * Appends events after the episode's last one. The caller holds the episode row locked in
 * `em`'s transaction, which serialises sequence allocation per episode.
 */
export async function appendEvents(em: EntityManager, episode: Episode, events: readonly NewEvent[]) {
  const firstSeq = episode.eventCount + 1;
  for (let start = 0; start < events.length; start += INSERT_CHUNK) {
    const rows = events.slice(start, start + INSERT_CHUNK).map((e, i) => ({
      episode: episode.id,
      seq: firstSeq + start + i,
      timestamp: e.timestamp,
      data: e.data,
      metadata: e.metadata,
    }));
    await em.insertMany(Event, rows);
  }
  const times = events.map((e) => e.timestamp.getTime());
  const earliest = new Date(Math.min(...times));
  const latest = new Date(Math.max(...times));
  episode.eventCount += events.length;
  if (!episode.firstEventAt || earliest < episode.firstEventAt) episode.firstEventAt = earliest;
  if (!episode.lastEventAt || latest > episode.lastEventAt) episode.lastEventAt = latest;
  return { firstSeq, lastSeq: episode.eventCount };
}

interface EventRow {
  seq: string | number;
  timestamp: string | Date;
  data: JsonObject;
  metadata: JsonObject | null;
}

const toStored = (row: EventRow): StoredEvent => ({
  seq: Number(row.seq),
  timestamp: new Date(row.timestamp),
  data: row.data,
  metadata: row.metadata,
});

/** Events with afterSeq < seq, in order, at most `limit` of them. */
export async function readEvents(
  em: EntityManager,
  episodeId: string,
  afterSeq: number,
  limit: number,
): Promise<StoredEvent[]> {
  const rows = (await em
    .createQueryBuilder(Event)
    .select(["seq", "timestamp", "data", "metadata"])
    .where({ episode: episodeId, seq: { $gt: afterSeq } })
    .orderBy({ seq: "asc" })
    .limit(limit)
    .execute("all", false)) as unknown as EventRow[];
  return rows.map(toStored);
}

/** The data of events fromSeq..toSeq inclusive, in order, read in keyset pages. */
export async function readEventData(
  em: EntityManager,
  episodeId: string,
  fromSeq: number,
  toSeq: number,
): Promise<JsonObject[]> {
  const data: JsonObject[] = [];
  for (let after = fromSeq - 1; after < toSeq; after += READ_PAGE) {
    const rows = (await em
      .createQueryBuilder(Event)
      .select(["data"])
      .where({ episode: episodeId, seq: { $gt: after, $lte: Math.min(after + READ_PAGE, toSeq) } })
      .orderBy({ seq: "asc" })
      .execute("all", false)) as unknown as Array<{ data: JsonObject }>;
    for (const row of rows) data.push(row.data);
  }
  return data;
}

export async function deleteEvents(em: EntityManager, episodeId: string): Promise<void> {
  await em.nativeDelete(Event, { episode: episodeId });
}
