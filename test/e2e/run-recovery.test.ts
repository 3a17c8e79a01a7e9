// Learning runs survive the server: a run interrupted by kill -9 is retried after the restart, and
// several server processes on one PostgreSQL share the queue, each run executed exactly once.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Run, RunStatus } from "../../gen/posterior/v1/learning_service_pb.ts";
import { createDatabase, freshDatabaseConfig, usingPostgres } from "../support/database.ts";
import { type Clients, tensor } from "../support/harness.ts";
import { processClients, type ServerProcess, startProcess, stopProcess } from "../support/process.ts";

let dataDir: string;
const running: ServerProcess[] = [];
beforeAll(() => {
  dataDir = mkdtempSync(join(tmpdir(), "posterior-recovery-"));
});
afterAll(async () => {
  for (const p of running) await stopProcess(p, "SIGKILL");
  rmSync(dataDir, { recursive: true, force: true });
});

async function start(env: Record<string, string>) {
  const p = await startProcess({ POSTERIOR_LEARN_RETRY_DELAY_SECONDS: "1", ...env });
  running.push(p);
  return p;
}

const finished = (r: Run) => r.status === RunStatus.SUCCEEDED || r.status === RunStatus.FAILED || r.status === RunStatus.CANCELLED;

async function watchUntil(c: Clients, runId: string, until: (run: Run) => boolean): Promise<Run> {
  for await (const { run } of c.learning.watchRun({ runId })) if (until(run!)) return run!;
  throw new Error("the watch ended before the condition held");
}

/**
 * `points` observations of a slow rotation, in batches. Every tenth restarts the filter, so that
 * learning stays slow enough (about 1 ms per EM iteration per 1 000 points) to be interrupted.
 */
async function attachSeries(c: Clients, instanceId: string, from: number, points: number) {
  for (let start = from; start < from + points; start += 1000) {
    const events = Array.from({ length: Math.min(1000, from + points - start) }, (_, k) => {
      const t = (start + k) / 10;
      const y = tensor(Math.sin(t), Math.cos(t));
      const data: Record<string, typeof y> = (start + k) % 10 === 0 ? { y, current_state: y } : { y };
      return { data };
    });
    await c.models.attachEvents({ instanceId, events });
  }
}

describe("learning runs across crashes and replicas", () => {
  it("retries a run interrupted by kill -9; parameters are fully old until it commits, then fully new", { timeout: 180_000 }, async () => {
    const database = await freshDatabaseConfig();
    const env = { POSTERIOR_DATA_DIR: dataDir, ...(database.url ? { DATABASE_URL: database.url } : {}) };
    const first = await start(env);
    let c = processClients(first);
    const create = async () => (await c.models.createInstance({ model: "linear-state-space-model-v1" })).instance!.instanceId;
    const [crashed, reference] = [await create(), await create()];
    for (const id of [crashed, reference]) {
      await attachSeries(c, id, 0, 1000);
      expect((await c.learning.learn({ instanceId: id, wait: true })).run!.status).toBe(RunStatus.SUCCEEDED);
      await attachSeries(c, id, 1000, 1000);
    }
    const old = await c.models.getParameters({ instanceId: crashed });
    const options = { iterations: 4000 };
    const { run } = await c.learning.learn({ instanceId: crashed, options });
    await watchUntil(c, run!.runId, (r) => r.status === RunStatus.RUNNING && (r.progress?.iteration ?? 0) >= 5);
    expect(await stopProcess(first, "SIGKILL")).toBeNull();

    const second = await start(env);
    c = processClients(second);
    const during = await c.models.getParameters({ instanceId: crashed });
    const done = await watchUntil(c, run!.runId, (r) => {
      // Until the retry commits, nothing of the interrupted attempt is visible.
      if (!finished(r)) expect(r.parametersVersionAfter).toBe(0);
      return finished(r);
    });
    expect(done).toMatchObject({ status: RunStatus.SUCCEEDED, attempts: 2, parametersVersionBefore: 1, parametersVersionAfter: 2 });
    expect(during.parametersVersion).toBe(1);
    expect(during.parameters).toEqual(old.parameters);

    // The retried run's result is exactly what an uninterrupted run gives on the same data.
    expect((await c.learning.learn({ instanceId: reference, options, wait: true })).run!.status).toBe(RunStatus.SUCCEEDED);
    const [after, expected] = await Promise.all([crashed, reference].map((instanceId) => c.models.getParameters({ instanceId })));
    expect(after!.parameters).toEqual(expected!.parameters);
    expect(after!.parameters).not.toEqual(old.parameters);
    expect(Number((await c.models.getEpisode({ instanceId: crashed, name: "default" })).episode!.learnedCount)).toBe(2000);
    expect(await stopProcess(second)).toBe(0);
  });

  it("sends a run back to the queue when the server is stopped during it, and finishes it after the restart", { timeout: 180_000 }, async () => {
    const database = await freshDatabaseConfig();
    const dir = mkdtempSync(join(dataDir, "stop-"));
    const env = { POSTERIOR_DATA_DIR: dir, ...(database.url ? { DATABASE_URL: database.url } : {}) };
    const first = await start(env);
    let c = processClients(first);
    const id = (await c.models.createInstance({ model: "linear-state-space-model-v1" })).instance!.instanceId;
    await attachSeries(c, id, 0, 2000);
    const { run } = await c.learning.learn({ instanceId: id, options: { iterations: 4000 } });
    await watchUntil(c, run!.runId, (r) => (r.progress?.iteration ?? 0) >= 5);
    const stopping = performance.now();
    expect(await stopProcess(first)).toBe(0);
    expect(performance.now() - stopping).toBeLessThan(10_000); // 4 000 iterations would take several more seconds

    const second = await start(env);
    c = processClients(second);
    const interrupted = (await c.learning.getRun({ runId: run!.runId })).run!;
    expect([RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.SUCCEEDED]).toContain(interrupted.status);
    const done = await watchUntil(c, run!.runId, finished);
    expect(done).toMatchObject({ status: RunStatus.SUCCEEDED, attempts: 2, parametersVersionAfter: 1, error: "" });
    expect(await stopProcess(second)).toBe(0);
  });

  it.runIf(usingPostgres)("shares the queue between two processes: 50 runs, each executed once", { timeout: 180_000 }, async () => {
    // An empty database: the two processes also race to migrate it.
    const env = { DATABASE_URL: await createDatabase(process.env.DATABASE_URL!) };
    const [a, b] = await Promise.all([start(env), start(env)]);
    const clients = [processClients(a!), processClients(b!)];
    const c = clients[0]!;
    const instances: string[] = [];
    const references: string[] = [];
    const counts: Array<[number, number]> = [];
    for (let i = 0; i < 5; i++) {
      const create = async () => (await c.models.createInstance({ model: "beta-bernoulli-v1" })).instance!.instanceId;
      const [id, ref] = [await create(), await create()];
      instances.push(id);
      references.push(ref);
      let ones = 0;
      let zeros = 0;
      for (let e = 0; e < 10; e++) {
        const ys = Array.from({ length: 20 }, (_, k) => ((k * 7 + e * 3 + i) % 5 < 2 ? 1 : 0));
        ones += ys.filter((y) => y === 1).length;
        zeros += ys.filter((y) => y === 0).length;
        for (const instanceId of [id, ref]) {
          await c.models.createEpisode({ instanceId, name: `e${e}` });
          await c.models.attachEvents({ instanceId, episode: `e${e}`, events: ys.map((y) => ({ data: { y: tensor(y) } })) });
        }
      }
      counts.push([1 + ones, 1 + zeros]);
    }
    // Replica B reads (and caches) each instance before A's and B's runs change it.
    const before = await Promise.all(instances.map((instanceId) => clients[1]!.inference.infer({ instanceId, observation: { y: tensor(1) }, storeEvent: false })));
    expect(before.map((r) => r.parametersVersion)).toEqual(instances.map(() => 0));
    const requests = instances.flatMap((instanceId) => Array.from({ length: 10 }, (_, e) => ({ instanceId, episodes: [`e${e}`] })));
    const queued = await Promise.all(requests.map((r, k) => clients[k % 2]!.learning.learn(r)));
    const runs = await Promise.all(queued.map(({ run }) => watchUntil(c, run!.runId, finished)));

    expect(runs.map((r) => r.status)).toEqual(runs.map(() => RunStatus.SUCCEEDED));
    expect(runs.map((r) => r.attempts)).toEqual(runs.map(() => 1));
    const workers = new Set(runs.map((r) => r.worker.split(":").at(-1)));
    expect(workers).toEqual(new Set([String(a!.child.pid), String(b!.child.pid)]));
    // Both replicas answer with the final parameters: changes made elsewhere reach their caches.
    for (const replica of clients) {
      const after = await Promise.all(instances.map((instanceId) => replica.inference.infer({ instanceId, observation: { y: tensor(1) }, storeEvent: false })));
      expect(after.map((r) => r.parametersVersion)).toEqual(instances.map(() => 10));
    }
    for (const [i, instanceId] of instances.entries()) {
      // Exactly once and never two at a time: the ten runs form one chain of versions 0 → 10.
      const chain = runs.filter((r) => r.instanceId === instanceId).map((r) => [r.parametersVersionBefore, r.parametersVersionAfter]);
      expect(chain.sort((x, y) => x[0]! - y[0]!)).toEqual(Array.from({ length: 10 }, (_, v) => [v, v + 1]));
      await c.learning.learn({ instanceId: references[i]!, wait: true });
      const [got, want] = await Promise.all([instanceId, references[i]!].map((id) => c.models.getParameters({ instanceId: id })));
      expect(got!.parameters).toEqual(want!.parameters);
      expect(got!.parameters.p?.kind.value).toMatchObject({ alpha: counts[i]![0], beta: counts[i]![1] });
    }
    expect([await stopProcess(a!), await stopProcess(b!)]).toEqual([0, 0]);
  });
});
