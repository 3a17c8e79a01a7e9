// Event storage: bulk appends and keyset-paged raw reads (hydrating entities is ~4× slower).
import type { EntityManager } from "@mikro-orm/sql";
import type { JsonObject } from "../models/types.ts";
import { Episode, Event } from "./entities.ts";
import { query, run, type Statement } from "./statements.ts";

export interface NewEvent {
  readonly timestamp: Date;
  readonly data: JsonObject;
  readonly metadata: JsonObject | null;
}

export interface StoredEvent extends NewEvent {
  readonly seq: number;
}

/** Event data in order, as JSON array texts (each of at most DATA_GROUP events); `length` events in all. */
export interface EventDataText {
  readonly length: number;
  readonly arrays: readonly string[];
}

function timeRange(events: readonly NewEvent[]): { earliest: Date; latest: Date } {
  let earliest = Infinity;
  let latest = -Infinity;
  for (const e of events) {
    const t = e.timestamp.getTime();
    if (t < earliest) earliest = t;
    if (t > latest) latest = t;
  }
  return { earliest: new Date(earliest), latest: new Date(latest) };
}

export interface EpisodeAppend {
  readonly instanceId: string;
  readonly episode: string;
  readonly events: readonly NewEvent[];
}

export interface Appended {
  readonly firstSeq: number;
  /**
   * The episode as updated: its event count and time range include the new events. Made on demand:
   * it costs about 40 µs, which the group commits of control loops skip.
   */
  episode(): Episode;
}

// One statement, so that an append outside a transaction is one round trip and commits by itself
// (four with BEGIN, the reservation, the insert and COMMIT; on PostgreSQL each waited for a busy
// database process). The function (migration Migration20261124232000_append_function) keeps its
// plan; the ORM's VALUES list would cost several times more to build and to parse.
const APPEND: Statement = {
  name: "append_events",
  text: "select i, added, (ep).* from append_events($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
  // uuid[], text[], int8[], timestamptz[], timestamptz[], timestamptz, int4[], int4[], int8[], jsonb, jsonb[]
  types: [2951, 1009, 1016, 1185, 1185, 1184, 1007, 1007, 1016, 3802, 3807],
};

/**
 * Appends events to episodes named by instance and name, with one statement, in `em`'s transaction
 * if it has one. Returns, for each append, the first new sequence number and the updated episode,
 * or undefined where the episode does not exist. The appends name distinct episodes.
 */
export async function appendToEpisodes(em: EntityManager, appends: readonly EpisodeAppend[]): Promise<Array<Appended | undefined>> {
  const ranges = appends.map((a) => timeRange(a.events));
  const appendIndexes: number[] = [];
  const offsets: number[] = [];
  const times: number[] = [];
  const data: string[] = [];
  const metadata: Array<string | null> = [];
  appends.forEach(({ events }, k) => {
    events.forEach((e, j) => {
      appendIndexes.push(k + 1); // as WITH ORDINALITY counts
      offsets.push(j);
      times.push(e.timestamp.getTime());
      data.push(JSON.stringify(e.data));
      metadata.push(e.metadata === null ? null : JSON.stringify(e.metadata));
    });
  });
  const reserved = await run<{ i: string | number; added: string | number } & Record<string, unknown>>(em, APPEND, [
    appends.map((a) => a.instanceId),
    appends.map((a) => a.episode),
    appends.map((a) => a.events.length),
    ranges.map((r) => r.earliest),
    ranges.map((r) => r.latest),
    new Date(),
    appendIndexes,
    offsets,
    times,
    `[${data.join(",")}]`,
    metadata,
  ]);
  const appended: Array<Appended | undefined> = appends.map(() => undefined);
  for (const { i, added, ...row } of reserved) {
    appended[Number(i) - 1] = { firstSeq: Number(row.event_count) - Number(added) + 1, episode: () => em.map(Episode, row) };
  }
  return appended;
}

// The time as epoch milliseconds: drivers give timestamptz as text, which Date misreads before year 100.
const READ_EVENTS = `select seq, (extract(epoch from timestamp) * 1000)::float8 as ms, data, metadata
  from event where episode_id = $1 and seq > $2 order by seq limit $3`;

interface EventRow {
  seq: string | number;
  ms: number;
  data: JsonObject;
  metadata: JsonObject | null;
}

/** Events with afterSeq < seq, in order, at most `limit` of them. */
export async function readEvents(em: EntityManager, episodeId: string, afterSeq: number, limit: number): Promise<StoredEvent[]> {
  const rows = await query<EventRow>(em, READ_EVENTS, [episodeId, afterSeq, limit]);
  return rows.map((row) => ({ seq: Number(row.seq), timestamp: new Date(row.ms), data: row.data, metadata: row.metadata }));
}

const READ_PAGE = 10_000;
/**
 * Events per JSON array read. Thousands of rows cost the drivers far more than one long text, but
 * a text is limited (to 512 MiB in V8), so a group stays small enough for large events too.
 */
const DATA_GROUP = 100;

// Each group is its own range scan of the primary key, so its events arrive in order and its
// ordered aggregate needs no sort; grouping the page by (seq - 1) / DATA_GROUP sorted the
// page and then every group (a scratch loop over 300 000 events on PGlite: 197–211 ms against 233–250 ms).
const READ_DATA = `select a.count, a.array
  from generate_series($2::bigint, $3::bigint - 1, ${DATA_GROUP}) as g(after),
    lateral (select count(*)::int as count, '[' || string_agg(data::text, ',' order by seq) || ']' as array
      from event where episode_id = $1 and seq > g.after and seq <= least(g.after + ${DATA_GROUP}, $3::bigint)) as a
  where a.count > 0 order by g.after`;

/** The data of events fromSeq..toSeq inclusive, unparsed, in order, one keyset page at a time. */
export async function* readEventData(em: EntityManager, episodeId: string, fromSeq: number, toSeq: number): AsyncGenerator<EventDataText> {
  for (let after = fromSeq - 1; after < toSeq; after += READ_PAGE) {
    const rows = await query<{ count: number; array: string }>(em, READ_DATA, [episodeId, after, Math.min(after + READ_PAGE, toSeq)]);
    yield { length: rows.reduce((n, r) => n + r.count, 0), arrays: rows.map((r) => r.array) };
  }
}

/** Deletes every event of the episodes. */
export async function deleteEvents(em: EntityManager, episodeIds: readonly string[]): Promise<void> {
  if (episodeIds.length > 0) await em.nativeDelete(Event, { episode: { $in: [...episodeIds] } });
}

/**
 * Deletes the episodes, one or all of an instance's, and their events, in `em`'s transaction.
 * Events have no foreign key (see entities.ts), so their deletion is a second statement: it runs
 * once the episodes' row locks are taken, and so sees the events of every append that held one.
 * Appends that come later find no episode.
 */
export async function deleteEpisodes(em: EntityManager, which: { episodeId: string } | { instanceId: string }): Promise<void> {
  const [column, id] = "episodeId" in which ? ["id", which.episodeId] : ["instance_id", which.instanceId];
  const deleted = await query<{ id: string }>(em, `delete from episode where ${column} = $1 returning id`, [id]);
  await deleteEvents(em, deleted.map((e) => e.id));
}
