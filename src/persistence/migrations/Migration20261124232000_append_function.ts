import { Migration } from '@mikro-orm/migrations';

// The append of src/persistence/events.ts as a PL/pgSQL function, which keeps its statement's plan
// for the rest of the session: sent as a statement, it was parsed and planned at every append,
// most of a one-event append's time on the embedded database (README, "Data path").
// `reserved` takes each episode's next sequence numbers, locking its row, which serialises appends
// to it, and keeps its time range; the insert numbers the events from what it returns; episodes
// that do not exist return nothing and get no events. The events come as arrays, the cheapest
// form to parse: the append of each event as an index, times as integer epoch milliseconds, and
// the data as one JSON array text.
const APPEND_EVENTS = `create function append_events(
    p_instance_ids uuid[], p_names text[], p_counts bigint[], p_earliest timestamptz[], p_latest timestamptz[], p_now timestamptz,
    p_event_appends int[], p_event_offsets int[], p_event_ms bigint[], p_event_data jsonb, p_event_metadata jsonb[]
  ) returns table (i bigint, added bigint, ep episode) language plpgsql as $$
  begin
    return query
    with reserved as (
      update episode e set event_count = e.event_count + a.n,
        first_event_at = least(e.first_event_at, a.earliest), last_event_at = greatest(e.last_event_at, a.latest), updated_at = p_now
      from unnest(p_instance_ids, p_names, p_counts, p_earliest, p_latest) with ordinality as a(instance_id, name, n, earliest, latest, i)
      where e.instance_id = a.instance_id and e.name = a.name
      returning a.i, a.n as added, e as ep, e.id, e.event_count
    ), inserted as (
      insert into event (episode_id, seq, timestamp, data, metadata)
      select r.id, r.event_count - r.added + 1 + x.j, to_timestamp(x.ms / 1000) + (x.ms % 1000) * interval '1 millisecond', x.data, x.metadata
      from rows from (unnest(p_event_appends), unnest(p_event_offsets), unnest(p_event_ms), jsonb_array_elements(p_event_data), unnest(p_event_metadata))
        as x(k, j, ms, data, metadata)
      join reserved r on r.i = x.k
    )
    select r.i, r.added, r.ep from reserved r;
  end $$;`;

export class Migration20261124232000_append_function extends Migration {

  override name = 'Migration20261124232000_append_function';

  override up(): void | Promise<void> {
    this.addSql(APPEND_EVENTS);
  }

  override down(): void | Promise<void> {
    this.addSql(`drop function append_events(uuid[], text[], bigint[], timestamptz[], timestamptz[], timestamptz, int[], int[], bigint[], jsonb, jsonb[]);`);
  }

}
