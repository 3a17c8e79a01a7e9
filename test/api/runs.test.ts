// Learning runs through the public API: queued on pg-boss, executed by the server's own worker,
// observable, cancellable and reversible (issue 5). Runs on PGlite, and on PostgreSQL with DATABASE_URL.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RestorePoint, RunKind, RunStatus, type Run } from "../../gen/posterior/v1/learning_service_pb.ts";
import type { Distribution } from "../../gen/posterior/v1/values_pb.ts";
import { expectFailure } from "../support/assertions.ts";
import { inMemoryApp, tensor } from "../support/harness.ts";

let app: Awaited<ReturnType<typeof inMemoryApp>>;
let hooks: Server;
let hookUrl: string;
/** What the callback endpoint received, and how many of the next calls it answers with a 500. */
const received: Array<Record<string, unknown>> = [];
let failNext = 0;

beforeAll(async () => {
  hooks = createServer((req, res) => {
    let body = "";
    req.on("data", (chunk: Buffer) => (body += chunk.toString()));
    req.on("end", () => {
      received.push(JSON.parse(body) as Record<string, unknown>);
      res.statusCode = failNext-- > 0 ? 500 : 204;
      res.end();
    });
  });
  await new Promise<void>((resolve) => hooks.listen(0, "127.0.0.1", resolve));
  hookUrl = `http://127.0.0.1:${(hooks.address() as AddressInfo).port}/hook`;
  app = await inMemoryApp({ callbackAllow: [new URL(hookUrl).origin] });
});
afterAll(async () => {
  await app.close();
  hooks.close();
});

const createBeta = async () =>
  (await app.models.createInstance({ model: "beta-bernoulli-v1", arguments: { prior_a: 1, prior_b: 1 } })).instance!.instanceId;

const attach = (instanceId: string, ys: number[], episode = "default") =>
  app.models.attachEvents({ instanceId, episode, events: ys.map((y) => ({ data: { y: tensor(y) } })) });

const betaOf = (d: Distribution | undefined) => {
  if (d?.kind.case !== "beta") throw new Error(`expected a Beta, got ${d?.kind.case}`);
  return [d.kind.value.alpha, d.kind.value.beta];
};
const beta = async (instanceId: string) => betaOf((await app.models.getParameters({ instanceId })).parameters.p);
const learned = async (instanceId: string, episode = "default") =>
  Number((await app.models.getEpisode({ instanceId, name: episode })).episode!.learnedCount);

/**
 * A linear state-space instance with `points` observations. Every tenth restarts the filter
 * (`current_state`), so the smoother never reaches its cheap steady state: an EM iteration costs
 * about 1 ms per 1 000 points.
 */
async function createSlow(points: number) {
  const id = (await app.models.createInstance({ model: "linear-state-space-model-v1" })).instance!.instanceId;
  for (let start = 0; start < points; start += 1000) {
    const events = Array.from({ length: Math.min(1000, points - start) }, (_, k) => {
      const t = (start + k) / 10;
      const y = tensor(Math.sin(t), Math.cos(t));
      const data: Record<string, typeof y> = (start + k) % 10 === 0 ? { y, current_state: y } : { y };
      return { data };
    });
    await app.models.attachEvents({ instanceId: id, events });
  }
  return id;
}

async function watchUntil(runId: string, until: (run: Run) => boolean): Promise<Run[]> {
  const seen: Run[] = [];
  for await (const { run } of app.learning.watchRun({ runId })) {
    seen.push(run!);
    if (until(run!)) break;
  }
  return seen;
}

const finished = (r: Run) => r.status === RunStatus.SUCCEEDED || r.status === RunStatus.FAILED || r.status === RunStatus.CANCELLED;

describe("learning runs", () => {
  it("returns a queued run at once and goes QUEUED → RUNNING → SUCCEEDED, with progress and metrics", async () => {
    const id = await createSlow(1000);
    const { run } = await app.learning.learn({ instanceId: id, options: { iterations: 2000 } });
    expect([RunStatus.QUEUED, RunStatus.RUNNING]).toContain(run!.status);
    const seen = await watchUntil(run!.runId, finished);
    const statuses = seen.map((r) => r.status).filter((s, i, all) => s !== all[i - 1]);
    expect(statuses.at(-1)).toBe(RunStatus.SUCCEEDED);
    expect(statuses.filter((s) => s !== RunStatus.QUEUED)).toEqual([RunStatus.RUNNING, RunStatus.SUCCEEDED]);
    const iterations = seen.filter((r) => r.status === RunStatus.RUNNING && r.progress).map((r) => r.progress!.iteration);
    expect(iterations.length).toBeGreaterThan(1);
    expect(iterations).toEqual([...iterations].sort((a, b) => a - b));
    const done = seen.at(-1)!;
    expect(done.progress).toMatchObject({ iteration: 2000, totalIterations: 2000, dataPoints: 1000n });
    expect(done.metrics).toMatchObject({ iterations: 2000, dataPoints: 1000n });
    expect(done.metrics!.freeEnergy).toHaveLength(2000);
    expect(done.metrics!.durationSeconds).toBeGreaterThan(0);
    expect(done).toMatchObject({ attempts: 1, kind: RunKind.LEARN, parametersVersionBefore: 0, parametersVersionAfter: 1, error: "" });
    expect(done.worker).toMatch(/:\d+$/);
    expect(done.episodes).toEqual([expect.objectContaining({ episode: "default", fromSeq: 1n, toSeq: 1000n })]);
    const created = Number(done.createTime!.seconds) * 1e3 + done.createTime!.nanos / 1e6;
    const started = Number(done.startTime!.seconds) * 1e3 + done.startTime!.nanos / 1e6;
    const ended = Number(done.endTime!.seconds) * 1e3 + done.endTime!.nanos / 1e6;
    expect(created <= started && started <= ended).toBe(true);
    expect(await learned(id)).toBe(1000);
  });

  it("serves inference with the old parameters during a run and the new ones after it commits", async () => {
    const id = await createSlow(1000);
    const infer = () => app.inference.infer({ instanceId: id, observation: { y: tensor(0, 1) }, storeEvent: false });
    const { run } = await app.learning.learn({ instanceId: id, options: { iterations: 3000 } });
    await watchUntil(run!.runId, (r) => r.status === RunStatus.RUNNING && (r.progress?.iteration ?? 0) > 0);
    const during = await infer();
    expect(during.parametersVersion).toBe(0);
    const done = (await watchUntil(run!.runId, finished)).at(-1)!;
    expect(done.status).toBe(RunStatus.SUCCEEDED);
    const after = await infer();
    expect([after.parametersVersion, after.parametersRunId]).toEqual([1, run!.runId]);
    expect(after.predictions).not.toEqual(during.predictions);
  });

  it("cancels a running run at its next iteration, leaving parameters and cursors as they were", async () => {
    const id = await createSlow(1000);
    const before = await app.models.getParameters({ instanceId: id });
    const { run } = await app.learning.learn({ instanceId: id, options: { iterations: 10_000 } });
    await watchUntil(run!.runId, (r) => (r.progress?.iteration ?? 0) > 2);
    const started = performance.now();
    const cancelled = (await app.learning.cancelRun({ runId: run!.runId })).run!;
    expect(performance.now() - started).toBeLessThan(5000); // 10 000 iterations would take over 10 s
    expect(cancelled).toMatchObject({ status: RunStatus.CANCELLED, error: "cancelled by request" });
    expect(cancelled.progress!.iteration).toBeLessThan(10_000);
    expect(await app.models.getParameters({ instanceId: id })).toEqual(before);
    expect(await learned(id)).toBe(0);
    await expectFailure(app.learning.cancelRun({ runId: run!.runId }), Code.FailedPrecondition, "RUN_FINISHED");
  });

  it("runs one run per instance at a time; a queued one can be cancelled before it starts", async () => {
    const id = await createSlow(1000);
    const first = (await app.learning.learn({ instanceId: id, options: { iterations: 10_000 } })).run!;
    const second = (await app.learning.learn({ instanceId: id })).run!;
    await watchUntil(first.runId, (r) => (r.progress?.iteration ?? 0) > 0);
    expect((await app.learning.getRun({ runId: second.runId })).run!.status).toBe(RunStatus.QUEUED);
    const cancelledQueued = (await app.learning.cancelRun({ runId: second.runId })).run!;
    expect(cancelledQueued).toMatchObject({ status: RunStatus.CANCELLED, attempts: 0 });
    expect((await app.learning.cancelRun({ runId: first.runId })).run!.status).toBe(RunStatus.CANCELLED);
  });

  it("serialises concurrent runs of one instance: each learns once and none loses an update", async () => {
    const id = await createBeta();
    for (const episode of ["a", "b", "c"]) await app.models.createEpisode({ instanceId: id, name: episode });
    await attach(id, [1, 1, 1], "a");
    await attach(id, [0, 0], "b");
    await attach(id, [1], "c");
    const runs = await Promise.all(["a", "b", "c"].map((e) => app.learning.learn({ instanceId: id, episodes: [e], wait: true })));
    expect(runs.map((r) => r.run!.status)).toEqual([RunStatus.SUCCEEDED, RunStatus.SUCCEEDED, RunStatus.SUCCEEDED]);
    expect(runs.map((r) => r.run!.attempts)).toEqual([1, 1, 1]);
    const versions = runs.map((r) => [r.run!.parametersVersionBefore, r.run!.parametersVersionAfter]).sort((x, y) => x[0]! - y[0]!);
    expect(versions).toEqual([
      [0, 1],
      [1, 2],
      [2, 3],
    ]);
    expect(await beta(id)).toEqual([5, 3]);
  });

  it("fails a run whose learner throws, and leaves parameters and cursors unchanged", async () => {
    const id = (await app.models.createInstance({ model: "autoregressive-v1" })).instance!.instanceId;
    const ys = Array.from({ length: 20 }, (_, i) => (i % 2 ? 1e200 : -1e200));
    await app.models.attachEvents({ instanceId: id, events: ys.map((y) => ({ data: { y: tensor(y) } })) });
    const before = await app.models.getParameters({ instanceId: id });
    const { run } = await app.learning.learn({ instanceId: id, wait: true });
    expect(run).toMatchObject({ status: RunStatus.FAILED, attempts: 1, parametersVersionAfter: 0 });
    expect(run!.error).toMatch(/learning failed: .*not positive definite/);
    expect(await app.models.getParameters({ instanceId: id })).toEqual(before);
    expect(await learned(id)).toBe(0);
    await expectFailure(
      app.learning.restoreParameters({ instanceId: id, runId: run!.runId, point: RestorePoint.AFTER }),
      Code.FailedPrecondition,
      "RUN_HAS_NO_PARAMETERS",
      "run_id",
    );
  });

  it("POSTs the run's id, status and metrics to the callback URL, retrying after a 500", async () => {
    const id = await createBeta();
    await attach(id, [1, 0, 1]);
    received.length = 0;
    failNext = 1;
    const { run } = await app.learning.learn({ instanceId: id, wait: true, callbackUrl: hookUrl });
    expect(run!.status).toBe(RunStatus.SUCCEEDED);
    let current = run!;
    for (let i = 0; i < 100 && !current.callback?.deliveredTime; i++) {
      await new Promise((r) => setTimeout(r, 100));
      current = (await app.learning.getRun({ runId: run!.runId })).run!;
    }
    expect(current.callback).toMatchObject({ attempts: 2, lastStatusCode: 204, lastError: "" });
    expect(current.callback!.deliveredTime).toBeDefined();
    expect(received).toHaveLength(2);
    expect(received[1]).toMatchObject({
      runId: run!.runId,
      instanceId: id,
      status: "RUN_STATUS_SUCCEEDED",
      parametersVersionAfter: 1,
      metrics: { dataPoints: 3, iterations: 1 },
    });
  });

  it("restores the parameters before or after a run, rewinding what counts as learned", async () => {
    const id = await createBeta();
    await attach(id, [1, 1]);
    const first = (await app.learning.learn({ instanceId: id, wait: true })).run!;
    await app.models.createEpisode({ instanceId: id, name: "other" });
    await attach(id, [0, 0, 0], "other");
    await attach(id, [0]);
    const second = (await app.learning.learn({ instanceId: id, wait: true })).run!;
    expect(await beta(id)).toEqual([3, 5]);

    const restored = (await app.learning.restoreParameters({ instanceId: id, runId: second.runId, point: RestorePoint.BEFORE })).run!;
    expect(restored).toMatchObject({
      kind: RunKind.RESTORE,
      status: RunStatus.SUCCEEDED,
      restoredRunId: second.runId,
      parametersVersionBefore: 2,
      parametersVersionAfter: 3,
    });
    expect(await beta(id)).toEqual([3, 1]);
    expect([await learned(id), await learned(id, "other")]).toEqual([2, 0]);
    const pinned = await app.inference.infer({ instanceId: id, observation: { y: tensor(1) }, storeEvent: false, runId: first.runId });
    expect([pinned.parametersVersion, pinned.parametersRunId]).toEqual([1, first.runId]);
    const current = await app.inference.infer({ instanceId: id, observation: { y: tensor(1) }, storeEvent: false });
    expect([current.parametersVersion, current.parametersRunId]).toEqual([3, restored.runId]);

    // The rewound events are learned again, once: the same posterior as before the restore.
    await app.learning.learn({ instanceId: id, wait: true });
    expect(await beta(id)).toEqual([3, 5]);
    await app.learning.restoreParameters({ instanceId: id, runId: first.runId, point: RestorePoint.BEFORE });
    expect(await beta(id)).toEqual([1, 1]);
    expect([await learned(id), await learned(id, "other")]).toEqual([0, 0]);
    await app.learning.restoreParameters({ instanceId: id, runId: second.runId, point: RestorePoint.AFTER });
    expect(await beta(id)).toEqual([3, 5]);
    expect([await learned(id), await learned(id, "other")]).toEqual([3, 3]);
    const runs = (await app.learning.listRuns({ instanceId: id })).runs;
    expect(runs.map((r) => r.kind)).toEqual([RunKind.RESTORE, RunKind.RESTORE, RunKind.LEARN, RunKind.RESTORE, RunKind.LEARN, RunKind.LEARN]);
  });

  it("appends inline events atomically with the run and learns them", async () => {
    const id = await createBeta();
    const { run } = await app.learning.learn({
      instanceId: id,
      inlineEpisode: "default",
      inlineEvents: [{ data: { y: tensor(1) } }, { data: { y: tensor(0) } }],
    });
    const done = (await watchUntil(run!.runId, finished)).at(-1)!;
    expect(done.episodes).toEqual([expect.objectContaining({ episode: "default", fromSeq: 1n, toSeq: 2n })]);
    expect(await beta(id)).toEqual([2, 2]);
  });
});
