import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RunKind, RunStatus } from "../../gen/posterior/v1/learning_service_pb.ts";
import type { Distribution } from "../../gen/posterior/v1/values_pb.ts";
import { expectFailure, testRandom } from "../support/assertions.ts";
import { inMemoryApp, tensor } from "../support/harness.ts";

let app: Awaited<ReturnType<typeof inMemoryApp>>;
beforeAll(async () => {
  app = await inMemoryApp({ inferBatchLimit: 5 });
});
afterAll(() => app.close());

const create = async (prior_a = 1, prior_b = 1) =>
  (await app.models.createInstance({ model: "beta-bernoulli-v1", arguments: { prior_a, prior_b } })).instance!.instanceId;

const attach = (instanceId: string, ys: number[], episode = "default") =>
  app.models.attachEvents({ instanceId, episode, events: ys.map((y) => ({ data: { y: tensor(y) } })) });

const learn = async (instanceId: string, extra: { episodes?: string[]; relearn?: boolean } = {}) =>
  (await app.learning.learn({ instanceId, wait: true, ...extra })).run!;

const betaOf = (d: Distribution | undefined) => {
  if (d?.kind.case !== "beta") throw new Error(`expected a Beta, got ${d?.kind.case}`);
  return [d.kind.value.alpha, d.kind.value.beta];
};

const parameters = async (instanceId: string) => betaOf((await app.models.getParameters({ instanceId })).parameters.p);

/** Predictive probability of the next outcome after also seeing y = 1 (the reference server's mean_p). */
const meanP = async (instanceId: string, storeEvent = true) => {
  const r = await app.inference.infer({ instanceId, observation: { y: tensor(1) }, storeEvent });
  const y = r.predictions.y?.kind;
  if (y?.case !== "bernoulli") throw new Error("expected a Bernoulli prediction");
  return y.value.p;
};

describe("beta-bernoulli-v1 reference behaviour (RxInferServer checks)", () => {
  it("continual learning: (9,3) → (12,10) → 13/23 twice → (14,10) → 15/25", async () => {
    const id = await create();
    await attach(id, [1, 1, 0, 1, 1, 1, 0, 1, 1, 1]);
    await learn(id);
    expect(await parameters(id)).toEqual([9, 3]);
    await attach(id, [0, 1, 0, 0, 1, 0, 0, 1, 0, 0]);
    await learn(id);
    expect(await parameters(id)).toEqual([12, 10]);
    expect(await meanP(id)).toBeCloseTo(13 / 23, 6);
    expect(await meanP(id)).toBeCloseTo(13 / 23, 6);
    await learn(id); // absorbs the two stored infer observations
    expect(await parameters(id)).toEqual([14, 10]);
    expect(await meanP(id)).toBeCloseTo(15 / 25, 6);
  });

  it("learns exact counts and infers close to the true rate", async () => {
    const rand = testRandom(2024);
    for (const n of [500, 1000]) {
      for (const pTrue of [0.2, 0.5, 0.8]) {
        for (const [a, b] of [1, 2, 5].flatMap((a) => [1, 2, 5].map((b) => [a, b] as const))) {
          const id = await create(a, b);
          const ys = Array.from({ length: n }, () => (rand() < pTrue ? 1 : 0));
          const ones = ys.reduce<number>((s, y) => s + y, 0);
          await attach(id, ys);
          await learn(id);
          expect(await parameters(id)).toEqual([a + ones, b + n - ones]);
          for (const y of [0, 1]) {
            const r = await app.inference.infer({ instanceId: id, observation: { y: tensor(y) }, storeEvent: false });
            const pred = r.predictions.y?.kind;
            expect(pred?.case === "bernoulli" && Math.abs(pred.value.p - pTrue)).toBeLessThan(0.1);
          }
        }
      }
    }
  });

  it("a fresh instance infers (a+1)/(a+1+b) for y = 1", async () => {
    for (const a of [1, 5, 10]) {
      for (const b of [1, 3, 8]) {
        expect(await meanP(await create(a, b), false)).toBeCloseTo((a + 1) / (a + 1 + b), 6);
      }
    }
  });

  it("documented scenario: (16,6) → infer → (37,16); a relearned new episode gives (36,16)", async () => {
    const id = await create();
    const first = [...Array(15).fill(1), ...Array(5).fill(0)];
    const second = [...Array(20).fill(1), ...Array(10).fill(0)];
    await attach(id, first);
    await learn(id);
    expect(await parameters(id)).toEqual([16, 6]);
    await meanP(id);
    await attach(id, second);
    await learn(id);
    expect(await parameters(id)).toEqual([37, 16]);
    await app.models.createEpisode({ instanceId: id, name: "all" });
    await attach(id, [...first, ...second], "all");
    await learn(id, { episodes: ["all"], relearn: true });
    expect(await parameters(id)).toEqual([36, 16]);
  });
});

describe("inference", () => {
  it("returns the posterior and predictive, stores the observation, and leaves parameters alone", async () => {
    const id = await create(2, 3);
    const r = await app.inference.infer({ instanceId: id, observation: { y: tensor(0) } });
    expect(betaOf(r.posteriors.p)).toEqual([2, 4]);
    expect(r.episode).toBe("default");
    expect(r.eventSeq).toBe(1n);
    expect(r.parametersVersion).toBe(0);
    expect(await parameters(id)).toEqual([2, 3]);
    const { events } = await app.models.listEvents({ instanceId: id });
    expect(events.map((e) => e.data.y?.values)).toEqual([[0]]);
  });

  it("routes the event to the named episode, or stores nothing when told not to", async () => {
    const id = await create();
    await app.models.createEpisode({ instanceId: id, name: "morning" });
    const routed = await app.inference.infer({ instanceId: id, episode: "morning", observation: { y: tensor(1) }, metadata: { src: "t" } });
    expect([routed.episode, routed.eventSeq]).toEqual(["morning", 1n]);
    const unstored = await app.inference.infer({ instanceId: id, observation: { y: tensor(1) }, storeEvent: false });
    expect([unstored.episode, unstored.eventSeq]).toEqual(["", 0n]);
    expect((await app.models.getEpisode({ instanceId: id, name: "default" })).episode?.eventCount).toBe(0n);
    const { events } = await app.models.listEvents({ instanceId: id, episode: "morning" });
    expect(events[0]?.metadata).toEqual({ src: "t" });
  });

  it("commits concurrent stored observations together: every call gets its own number, none is lost", async () => {
    const id = await create();
    await app.models.createEpisode({ instanceId: id, name: "other" });
    const calls = Array.from({ length: 300 }, (_, i) =>
      app.inference.infer({ instanceId: id, observation: { y: tensor(i % 2) }, episode: i % 3 === 0 ? "other" : "default" }),
    );
    const missing = expectFailure(
      app.inference.infer({ instanceId: id, observation: { y: tensor(1) }, episode: "nope" }),
      Code.NotFound,
      "EPISODE_NOT_FOUND",
    );
    const results = await Promise.all(calls);
    await missing;
    for (const episode of ["default", "other"]) {
      const seqs = results.filter((r) => r.episode === episode).map((r) => Number(r.eventSeq));
      expect(seqs.sort((x, y) => x - y)).toEqual(Array.from({ length: seqs.length }, (_, k) => k + 1));
      const { events } = await app.models.listEvents({ instanceId: id, episode });
      expect(events).toHaveLength(seqs.length);
    }
    // Each stored observation is one event: learning them counts every one exactly once.
    await app.learning.learn({ instanceId: id, wait: true });
    expect(await parameters(id)).toEqual([1 + 150, 1 + 150]);
  });

  it("answers from the new parameters as soon as a learn has committed", async () => {
    const id = await create();
    expect(await meanP(id, false)).toBeCloseTo(2 / 3, 12);
    await attach(id, [0, 0, 0, 0]);
    await learn(id);
    expect(await meanP(id, false)).toBeCloseTo(2 / 7, 12);
    await app.models.deleteInstance({ instanceId: id });
    await expectFailure(app.inference.infer({ instanceId: id, observation: { y: tensor(1) } }), Code.NotFound, "INSTANCE_NOT_FOUND");
  });

  it("rejects bad input with the right code, reason and field, and writes nothing", async () => {
    const id = await create();
    type Observation = Record<string, { shape?: number[]; values: number[] }>;
    const cases: Array<[Observation, string, string]> = [
      [{ y: tensor(2) }, "DATA_NOT_VALID", "observation.y"],
      [{ y: tensor(Number.NaN) }, "DATA_NOT_VALID", "observation.y"],
      [{ y: tensor(Number.POSITIVE_INFINITY) }, "DATA_NOT_VALID", "observation.y"],
      [{ y: tensor(-1) }, "DATA_NOT_VALID", "observation.y"],
      [{}, "DATA_INCOMPLETE", "observation.y"],
      [{ y: tensor(1, 1) }, "DATA_LAYOUT_NOT_COMPATIBLE", "observation.y"],
      [{ y: { shape: [2], values: [1] } }, "DATA_LAYOUT_NOT_COMPATIBLE", "observation.y"],
      [{ y: tensor(1), x: tensor(3) }, "DATA_LAYOUT_NOT_COMPATIBLE", "observation.x"],
    ];
    for (const [observation, reason, field] of cases) {
      await expectFailure(app.inference.infer({ instanceId: id, observation }), Code.InvalidArgument, reason, field);
    }
    await expectFailure(
      app.inference.infer({ instanceId: id, observation: { y: tensor(1) }, arguments: { prior_a: 3 } }),
      Code.InvalidArgument,
      "ARGUMENTS_NOT_VALID",
      "arguments.prior_a",
    );
    await expectFailure(
      app.inference.infer({ instanceId: id, episode: "nope", observation: { y: tensor(1) } }),
      Code.NotFound,
      "EPISODE_NOT_FOUND",
    );
    await expectFailure(
      app.inference.infer({ instanceId: "00000000-0000-4000-8000-000000000000", observation: { y: tensor(1) } }),
      Code.NotFound,
      "INSTANCE_NOT_FOUND",
    );
    expect((await app.models.getEpisode({ instanceId: id, name: "default" })).episode?.eventCount).toBe(0n);
  });

  it("answers a batch row by row, up to the configured limit", async () => {
    const id = await create();
    const { results } = await app.inference.inferBatch({
      requests: [
        { instanceId: id, observation: { y: tensor(1) } },
        { instanceId: id, observation: { y: tensor(7) } },
        { instanceId: "00000000-0000-4000-8000-000000000000", observation: { y: tensor(1) } },
        { instanceId: id, observation: { y: tensor(0) } },
      ],
    });
    expect(results.map((r) => r.result.case)).toEqual(["response", "error", "error", "response"]);
    const [ok, invalid, missing] = results.map((r) => r.result.value);
    expect(ok && "eventSeq" in ok && ok.eventSeq).toBe(1n);
    expect(invalid && "code" in invalid && [invalid.code, invalid.message, invalid.details.length]).toEqual([
      Code.InvalidArgument,
      "observation.y: must be <= 1, got 7",
      2,
    ]);
    expect(missing && "code" in missing && missing.code).toBe(Code.NotFound);
    expect((await app.models.getEpisode({ instanceId: id, name: "default" })).episode?.eventCount).toBe(2n);

    const six = Array.from({ length: 6 }, () => ({ instanceId: id, observation: { y: tensor(1) } }));
    await expectFailure(app.inference.inferBatch({ requests: six }), Code.InvalidArgument, "INVALID_REQUEST", "requests");
  });

  it("answers a batch on a filtering model as the same calls one by one would", async () => {
    const make = async () => (await app.models.createInstance({ model: "autoregressive-v1", seed: 7 })).instance!.instanceId;
    const [batched, single] = [await make(), await make()];
    const ys = [0.5, -0.2, 0.9, 0.1, -0.4];
    const { results } = await app.inference.inferBatch({ requests: ys.map((y) => ({ instanceId: batched, observation: { y: tensor(y) } })) });
    const one: unknown[] = [];
    for (const y of ys) one.push((await app.inference.infer({ instanceId: single, observation: { y: tensor(y) } })).predictions);
    expect(results.map((r) => (r.result.case === "response" ? r.result.value.predictions : r.result.value))).toEqual(one);
    expect(results.map((r) => (r.result.case === "response" ? r.result.value.eventSeq : 0n))).toEqual([1n, 2n, 3n, 4n, 5n]);
  });

  it("can answer with the parameters of an earlier run", async () => {
    const id = await create();
    await attach(id, [1, 1, 1]);
    const first = await learn(id);
    await attach(id, [0, 0]);
    await learn(id);
    const pinned = await app.inference.infer({ instanceId: id, observation: { y: tensor(1) }, runId: first.runId, storeEvent: false });
    expect(betaOf(pinned.posteriors.p)).toEqual([5, 1]);
    expect([pinned.parametersVersion, pinned.parametersRunId]).toEqual([1, first.runId]);
    const current = await app.inference.infer({ instanceId: id, observation: { y: tensor(1) }, storeEvent: false });
    expect([betaOf(current.posteriors.p), current.parametersVersion]).toEqual([[5, 3], 2]);
    expect(betaOf((await app.models.getParameters({ instanceId: id, runId: first.runId })).parameters.p)).toEqual([4, 1]);
  });
});

describe("learning", () => {
  it("records a run with the episode ranges, versions and a free-energy trace", async () => {
    const id = await create();
    await attach(id, [1, 0, 1]);
    const run = await learn(id);
    expect(run.kind).toBe(RunKind.LEARN);
    expect(run.status).toBe(RunStatus.SUCCEEDED);
    expect(run.episodes.map((e) => [e.episode, e.fromSeq, e.toSeq])).toEqual([["default", 1n, 3n]]);
    expect([run.parametersVersionBefore, run.parametersVersionAfter]).toEqual([0, 1]);
    expect(run.metrics?.dataPoints).toBe(3n);
    // Negative log evidence of 1,0,1 under Beta(1,1): -log(1/2 · 1/3 · 2/4)
    expect(run.metrics?.freeEnergy[0]).toBeCloseTo(Math.log(12), 10);
    const { episode } = await app.models.getEpisode({ instanceId: id, name: "default" });
    expect(episode?.learnedCount).toBe(3n);
    const { events } = await app.models.listEvents({ instanceId: id });
    expect(events.every((e) => e.learned)).toBe(true);
    expect((await app.models.getParameters({ instanceId: id })).runId).toBe(run.runId);
  });

  it("only learns new events, and a learn with none leaves the parameters and version unchanged", async () => {
    const id = await create();
    await attach(id, [1, 1]);
    await learn(id);
    const idle = await learn(id);
    expect(idle.metrics?.dataPoints).toBe(0n);
    expect([idle.parametersVersionBefore, idle.parametersVersionAfter]).toEqual([1, 1]);
    expect(await parameters(id)).toEqual([3, 1]);
  });

  it("relearn starts from the prior and counts every event once", async () => {
    const id = await create();
    await attach(id, [1, 1, 0]);
    await learn(id);
    await learn(id, { relearn: true });
    expect(await parameters(id)).toEqual([3, 2]);
  });

  it("learns from every episode by default, and from the named ones when asked", async () => {
    const id = await create();
    await app.models.createEpisode({ instanceId: id, name: "b" });
    await attach(id, [1, 1]);
    await attach(id, [0, 0, 0], "b");
    await learn(id, { episodes: ["b"] });
    expect(await parameters(id)).toEqual([1, 4]);
    await learn(id);
    expect(await parameters(id)).toEqual([3, 4]);
    // Relearning one episode drops the others' data from the parameters, and says so.
    await learn(id, { episodes: ["default"], relearn: true });
    expect(await parameters(id)).toEqual([3, 1]);
    expect((await app.models.getEpisode({ instanceId: id, name: "b" })).episode?.learnedCount).toBe(0n);
  });

  it("learns inline events appended to the named episode", async () => {
    const id = await create();
    const { run } = await app.learning.learn({
      instanceId: id,
      wait: true,
      inlineEvents: [{ data: { y: tensor(1) } }, { data: { y: tensor(1) } }],
    });
    expect(run?.metrics?.dataPoints).toBe(2n);
    expect(await parameters(id)).toEqual([3, 1]);
  });

  it("rejects what it cannot do yet or does not understand, and queues nothing", async () => {
    const id = await create();
    await expectFailure(app.learning.learn({ instanceId: id, wait: true, episodes: ["nope"] }), Code.NotFound, "EPISODE_NOT_FOUND");
    await expectFailure(
      app.learning.learn({ instanceId: id, wait: true, parameters: ["q"] }),
      Code.InvalidArgument,
      "INVALID_REQUEST",
      "parameters",
    );
    await expectFailure(
      app.learning.learn({ instanceId: id, wait: true, inlineEvents: [{ data: { y: tensor(5) } }] }),
      Code.InvalidArgument,
      "DATA_NOT_VALID",
      "events[0].data.y",
    );
    await expectFailure(
      app.learning.learn({ instanceId: id, options: { prior_a: 3 } }),
      Code.InvalidArgument,
      "ARGUMENTS_NOT_VALID",
      "options.prior_a",
    );
    await expectFailure(
      app.learning.learn({ instanceId: id, callbackUrl: "http://127.0.0.1:9/hook" }),
      Code.PermissionDenied,
      "CALLBACK_NOT_ALLOWED",
      "callback_url",
    );
    await expectFailure(app.learning.learn({ instanceId: id, callbackUrl: "ftp://x/y" }), Code.InvalidArgument, "INVALID_REQUEST", "callback_url");
    expect(await parameters(id)).toEqual([1, 1]);
    expect((await app.learning.listRuns({ instanceId: id })).runs).toEqual([]);
  });

  it("gets and lists recorded runs, newest first, by instance and status", async () => {
    const id = await create();
    const other = await create();
    await attach(id, [1]);
    const first = await learn(id);
    await attach(id, [0]);
    const second = await learn(id);
    await learn(other);
    const got = (await app.learning.getRun({ runId: first.runId })).run;
    expect(got).toEqual(first);
    const page1 = await app.learning.listRuns({ instanceId: id, pageSize: 1 });
    expect(page1.runs.map((r) => r.runId)).toEqual([second.runId]);
    const page2 = await app.learning.listRuns({ instanceId: id, pageSize: 1, pageToken: page1.nextPageToken });
    expect([page2.runs.map((r) => r.runId), page2.nextPageToken]).toEqual([[first.runId], ""]);
    expect((await app.learning.listRuns({ instanceId: id, status: RunStatus.SUCCEEDED })).runs).toHaveLength(2);
    expect((await app.learning.listRuns({ instanceId: id, status: RunStatus.FAILED })).runs).toEqual([]);
    await expectFailure(app.learning.getRun({ runId: "00000000-0000-4000-8000-000000000000" }), Code.NotFound, "RUN_NOT_FOUND");
    await expectFailure(app.learning.getRun({ runId: "nope" }), Code.InvalidArgument, "INVALID_REQUEST", "run_id");
    await expectFailure(
      app.learning.listRuns({ instanceId: "00000000-0000-4000-8000-000000000000" }),
      Code.NotFound,
      "INSTANCE_NOT_FOUND",
    );
  });

  it("rejects malformed run requests with the offending field", async () => {
    const id = await create();
    await expectFailure(app.learning.cancelRun({ runId: "x" }), Code.InvalidArgument, "INVALID_REQUEST", "run_id");
    await expectFailure(app.learning.restoreParameters({ instanceId: id }), Code.InvalidArgument, "INVALID_REQUEST", "point");
    const watching = (async () => {
      for await (const _ of app.learning.watchRun({ runId: "x" })) break;
    })();
    await expectFailure(watching, Code.InvalidArgument, "INVALID_REQUEST", "run_id");
  });
});
