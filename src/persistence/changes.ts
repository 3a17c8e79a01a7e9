// Change notices between replicas on one PostgreSQL: a transaction that changes an instance sends
// NOTIFY with its id, and every replica drops its cached copy. PGlite has one process, which
// invalidates its cache directly.
import { PgliteDriver } from "@mikro-orm/pglite";
import type { EntityManager } from "@mikro-orm/sql";
import pg from "pg";
import type { Logger } from "pino";

const CHANNEL = "posterior_instance_changed";

/** Queues the notice in `em`'s transaction: it is delivered at commit, and not at all on rollback. */
export async function announceInstanceChange(em: EntityManager, instanceId: string): Promise<void> {
  if (em.getDriver() instanceof PgliteDriver) return; // one process, nobody to tell
  await em.execute("select pg_notify(?, ?)", [CHANNEL, instanceId]);
}

/** Calls `onChange` with each changed instance id; `onLost` when notices may have been missed. */
export async function listenForInstanceChanges(
  url: string,
  onChange: (instanceId: string) => void,
  onLost: () => void,
  logger: Logger,
): Promise<() => Promise<void>> {
  let client: pg.Client | undefined;
  let stopped = false;
  const connect = async () => {
    const c = new pg.Client({ connectionString: url, application_name: "posterior-changes" });
    c.on("notification", (n) => n.payload && onChange(n.payload));
    c.on("error", (error) => {
      logger.warn({ err: error }, "instance change listener lost its connection; reconnecting");
      onLost();
      if (!stopped) setTimeout(() => void connect().catch(() => onLost()), 1000);
    });
    await c.connect();
    await c.query(`listen ${CHANNEL}`);
    client = c;
  };
  await connect();
  return async () => {
    stopped = true;
    await client?.end();
  };
}
