import { raw } from "@mikro-orm/core";
import type { EntityManager } from "@mikro-orm/sql";
import { Episode, type Instance } from "./entities.ts";

/** Number of episodes of each given instance, in one query. */
export async function episodeCounts(em: EntityManager, instances: readonly Instance[]): Promise<Map<string, number>> {
  if (instances.length === 0) return new Map();
  const rows = (await em
    .createQueryBuilder(Episode)
    .select(["instance", raw("count(*) as n")])
    .where({ instance: { $in: instances.map((i) => i.id) } })
    .groupBy("instance")
    .execute("all", false)) as unknown as Array<{ instance_id: string; n: string | number }>;
  return new Map(rows.map((r) => [r.instance_id, Number(r.n)]));
}
