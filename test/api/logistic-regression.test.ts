// logistic-regression-v1 through the public API: the risk-scoring service it replaces (score, level,
// confidence, batches of up to 100 patients, the parameters' version) on real service clients and a real database.
import { createRegistry } from "@bufbuild/protobuf";
import { anyUnpack } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BadRequestSchema, ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.ts";
import type { Status } from "../../gen/google/rpc/status_pb.ts";
import type { InferResponse } from "../../gen/posterior/v1/inference_service_pb.ts";
import type { Distribution } from "../../gen/posterior/v1/values_pb.ts";
import { scalar, vector } from "../../src/math/tensor.ts";
import { type Arguments, logisticRegression, type Parameters } from "../../src/models/logistic-regression/index.ts";
import type { Fields } from "../../src/models/types.ts";
import { expectFailure, testRandom } from "../support/assertions.ts";
import { inMemoryApp, tensor } from "../support/harness.ts";

let app: Awaited<ReturnType<typeof inMemoryApp>>;
beforeAll(async () => {
  app = await inMemoryApp();
});
afterAll(() => app.close());

const MODEL = "logistic-regression-v1";
const defaults: Arguments = {
  input_dim: 2,
  intercept: true,
  prior_variance: 10,
  credible_level: 0.95,
  risk_thresholds: [0.2, 0.5],
  risk_labels: ["low", "medium", "high"],
};

const create = async (args: Partial<Arguments> = {}) =>
  (await app.models.createInstance({ model: MODEL, arguments: args })).instance!.instanceId;

interface Case {
  x: number[];
  y: number;
}

function patients(seed: number, n: number, w = [1.2, -0.8, -1]): Case[] {
  const rand = testRandom(seed);
  const normal = () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
  return Array.from({ length: n }, () => {
    const x = [normal(), normal()];
    const z = w[0]! * x[0]! + w[1]! * x[1]! + w[2]!;
    return { x, y: rand() < 1 / (1 + Math.exp(-z)) ? 1 : 0 };
  });
}

const attach = (instanceId: string, cases: Case[], episode = "default") =>
  app.models.attachEvents({ instanceId, episode, events: cases.map(({ x, y }) => ({ data: { x: tensor(...x), y: tensor(y) } })) });
const learn = async (instanceId: string, extra: { relearn?: boolean; episodes?: string[] } = {}) =>
  (await app.learning.learn({ instanceId, wait: true, ...extra })).run!;

const posteriorOf = async (instanceId: string): Promise<Parameters> => {
  const w: Distribution | undefined = (await app.models.getParameters({ instanceId })).parameters.w;
  if (w?.kind.case !== "mvNormal") throw new Error(`expected an mvNormal, got ${w?.kind.case}`);
  return { mean: [...w.kind.value.mean], covariance: [...w.kind.value.covariance], precision: [] };
};

/** The pure model's answer for x under the given (API-reported) posterior. */
const expected = (parameters: Parameters, x: number[], args: Arguments = defaults) =>
  logisticRegression.infer({ arguments: args, parameters, state: {}, observation: { x: vector(x) }, goal: {}, seed: 0, decisionIndex: 0 });

const fields = (cases: Case[]): Fields[] => cases.map(({ x, y }) => ({ x: vector(x), y: scalar(y) }));

function expectScore(response: InferResponse, parameters: Parameters, x: number[], args: Arguments = defaults) {
  const want = expected(parameters, x, args);
  for (const name of ["risk_probability", "risk_interval", "linear_predictor_mean", "linear_predictor_sd", "risk_level_probability"]) {
    const got = response.values[name]!.values;
    const exp = want.values![name]!.values;
    expect(got).toHaveLength(exp.length);
    got.forEach((v, i) => expect(v).toBeCloseTo(exp[i]!, 14));
  }
  const y = response.predictions.y?.kind;
  if (y?.case !== "bernoulli" || want.predictions?.y?.kind !== "bernoulli") throw new Error("expected a Bernoulli prediction");
  expect(y.value.p).toBeCloseTo(want.predictions.y.p, 14);
  expect(response.labels).toEqual(want.labels);
}

describe("logistic-regression-v1 risk scoring", () => {
  it("creates with documented defaults whose examples score, learns attached outcomes, and scores a patient", async () => {
    const { modelType } = await app.models.getModelType({ name: MODEL });
    expect(modelType?.learning).toMatch(/Laplace/);
    const example = modelType!.observation.find((f) => f.name === "x")!.example!.values;
    const id = await create();
    const fresh = await app.inference.infer({ instanceId: id, observation: { x: tensor(...example) }, storeEvent: false });
    expectScore(fresh, logisticRegression.initialParameters(defaults, 0), example);

    const cases = patients(1, 400);
    await attach(id, cases);
    const run = await learn(id);
    expect(run.metrics?.dataPoints).toBe(400n);
    expect(run.metrics?.values).toMatchObject({ converged: 1, skippedEvents: 0 });
    const trace = run.metrics!.freeEnergy;
    expect(trace.length).toBe(run.metrics!.iterations);
    for (let i = 1; i < trace.length; i++) expect(trace[i]!).toBeLessThanOrEqual(trace[i - 1]!);

    // The stored posterior is the pure model's Laplace fit of the same events.
    const posterior = await posteriorOf(id);
    const direct = logisticRegression.learn({
      arguments: defaults,
      prior: logisticRegression.initialParameters(defaults, 0),
      state: {},
      events: fields(cases),
      seed: 0,
      options: {},
    }).parameters;
    posterior.mean.forEach((m, i) => expect(m).toBeCloseTo(direct.mean[i]!, 12));
    posterior.covariance.forEach((c, i) => expect(c).toBeCloseTo(direct.covariance[i]!, 12));

    const scored = await app.inference.infer({ instanceId: id, observation: { x: tensor(1.5, -1) }, storeEvent: false });
    expectScore(scored, posterior, [1.5, -1]);
    expect(scored.labels.risk_level).toBe("high");
    expect(scored.parametersVersion).toBe(1);
    expect(scored.parametersRunId).toBe(run.runId);
  });

  it("scores a batch of 100 patients in order, with per-row errors for bad rows, and learns nothing from the stored scores", async () => {
    const id = await create();
    await attach(id, patients(2, 300));
    await learn(id);
    const posterior = await posteriorOf(id);
    const rand = testRandom(3);
    const xs = Array.from({ length: 100 }, () => [4 * rand() - 2, 4 * rand() - 2]);
    const bad = new Map<number, { x?: number[]; reason: string; message: RegExp }>([
      [17, { x: [1, 2, 3], reason: "DATA_LAYOUT_NOT_COMPATIBLE", message: /^observation\.x: .*3/ }],
      [42, { x: [0.5], reason: "DATA_LAYOUT_NOT_COMPATIBLE", message: /^observation\.x: / }],
      [63, { x: [0.1, Number.NaN], reason: "DATA_NOT_VALID", message: /^observation\.x: .*NaN/ }],
      [99, { reason: "DATA_INCOMPLETE", message: /^observation\.x: / }],
    ]);
    const requests = xs.map((x, i) => {
      const row = bad.get(i);
      const given = row === undefined ? x : row.x;
      const observation: Record<string, { values: number[] }> = given === undefined ? {} : { x: tensor(...given) };
      return { instanceId: id, observation };
    });
    const { results } = await app.inference.inferBatch({ requests });
    expect(results).toHaveLength(100);
    const registry = createRegistry(ErrorInfoSchema, BadRequestSchema);
    results.forEach((r, i) => {
      const row = bad.get(i);
      if (row === undefined) {
        expect(r.result.case, `row ${i}`).toBe("response");
        expectScore(r.result.value as InferResponse, posterior, xs[i]!);
      } else {
        expect(r.result.case, `row ${i}`).toBe("error");
        const status = r.result.value as Status;
        expect(status.code).toBe(Code.InvalidArgument);
        expect(status.message).toMatch(row.message);
        const [info, badRequest] = status.details.map((d) => anyUnpack(d, registry));
        expect(info).toMatchObject({ reason: row.reason });
        expect(badRequest).toMatchObject({ fieldViolations: [{ field: "observation.x" }] });
      }
    });
    // Each successful row was stored as an event without an outcome, in request order; learning skips them.
    const episode = (await app.models.getEpisode({ instanceId: id, name: "default" })).episode!;
    expect(episode.eventCount).toBe(300n + 96n);
    const run = await learn(id);
    expect(run.metrics?.dataPoints).toBe(0n);
    expect(run.metrics?.values).toMatchObject({ skippedEvents: 96 });
    expect(await posteriorOf(id)).toEqual(posterior);

    const tooMany = Array.from({ length: 101 }, () => ({ instanceId: id, observation: { x: tensor(0, 0) } }));
    await expectFailure(app.inference.inferBatch({ requests: tooMany }), Code.InvalidArgument, "INVALID_REQUEST", "requests");
  });

  it("learns several episodes in one solve, and relearn replaces incremental (ADF) learning by the batch fit", async () => {
    const cases = patients(4, 240);
    const together = await create();
    await attach(together, cases);
    await learn(together);
    const reference = await posteriorOf(together);

    const episodes = await create();
    await app.models.createEpisode({ instanceId: episodes, name: "clinic-b" });
    await attach(episodes, cases.slice(0, 100));
    await attach(episodes, cases.slice(100), "clinic-b");
    const run = await learn(episodes);
    expect(run.metrics?.dataPoints).toBe(240n);
    const both = await posteriorOf(episodes);
    both.mean.forEach((m, i) => expect(m).toBeCloseTo(reference.mean[i]!, 10));
    both.covariance.forEach((c, i) => expect(c).toBeCloseTo(reference.covariance[i]!, 10));

    const incremental = await create();
    await attach(incremental, cases.slice(0, 60));
    await learn(incremental);
    await attach(incremental, cases.slice(60));
    await learn(incremental);
    const adf = await posteriorOf(incremental);
    expect(Math.max(...adf.mean.map((m, i) => Math.abs(m - reference.mean[i]!)))).toBeGreaterThan(1e-8);
    await learn(incremental, { relearn: true });
    const relearned = await posteriorOf(incremental);
    relearned.mean.forEach((m, i) => expect(m).toBeCloseTo(reference.mean[i]!, 12));
    relearned.covariance.forEach((c, i) => expect(c).toBeCloseTo(reference.covariance[i]!, 12));
  });

  it("applies per-call thresholds, labels and credible level, checked like creation arguments", async () => {
    const id = await create({ input_dim: 3, intercept: false, prior_variance: 2 });
    const args = { ...defaults, input_dim: 3, intercept: false, prior_variance: 2 };
    const prior = logisticRegression.initialParameters(args, 0);
    const x = [0.3, -0.2, 0.4];
    const overrides = { risk_thresholds: [0.55], risk_labels: ["routine", "follow-up"], credible_level: 0.8 };
    const r = await app.inference.infer({ instanceId: id, observation: { x: tensor(...x) }, arguments: overrides, storeEvent: false });
    expectScore(r, prior, x, { ...args, ...overrides });
    expect(r.labels.risk_level).toBe("routine");

    const infer = (extra: Record<string, number[] | string[] | number>) =>
      app.inference.infer({ instanceId: id, observation: { x: tensor(...x) }, arguments: extra, storeEvent: false });
    await expectFailure(infer({ risk_thresholds: [0.3] }), Code.InvalidArgument, "ARGUMENTS_NOT_VALID", "arguments.risk_labels");
    await expectFailure(infer({ risk_thresholds: [0.6, 0.3] }), Code.InvalidArgument, "ARGUMENTS_NOT_VALID", "arguments.risk_thresholds");
    await expectFailure(infer({ credible_level: 0 }), Code.InvalidArgument, "ARGUMENTS_NOT_VALID", "arguments.credible_level");
    await expectFailure(infer({ prior_variance: 5 }), Code.InvalidArgument, "ARGUMENTS_NOT_VALID", "arguments.prior_variance");
  });

  it("scores with a single feature sent as one number (stored and read back as a scalar)", async () => {
    const args = { ...defaults, input_dim: 1 };
    const id = await create({ input_dim: 1 });
    const cases = patients(6, 80).map(({ x, y }) => ({ x: [x[0]!], y }));
    await attach(id, cases);
    expect((await learn(id)).metrics?.dataPoints).toBe(80n);
    const direct = logisticRegression.learn({
      arguments: args,
      prior: logisticRegression.initialParameters(args, 0),
      state: {},
      events: fields(cases),
      seed: 0,
      options: {},
    }).parameters;
    const posterior = await posteriorOf(id);
    posterior.mean.forEach((m, i) => expect(m).toBeCloseTo(direct.mean[i]!, 12));
    const r = await app.inference.infer({ instanceId: id, observation: { x: tensor(0.7) }, storeEvent: false });
    expectScore(r, posterior, [0.7], args);
  });

  it("rejects bad arguments and data with the reason and the field", async () => {
    const bad = (args: Record<string, unknown>) => app.models.createInstance({ model: MODEL, arguments: args as never });
    await expectFailure(bad({ risk_labels: ["low", "high"] }), Code.InvalidArgument, "ARGUMENTS_NOT_VALID", "arguments.risk_labels");
    await expectFailure(bad({ risk_labels: ["a", "a", "b"] }), Code.InvalidArgument, "ARGUMENTS_NOT_VALID", "arguments.risk_labels");
    await expectFailure(bad({ risk_thresholds: [0.5, 0.2] }), Code.InvalidArgument, "ARGUMENTS_NOT_VALID", "arguments.risk_thresholds");
    await expectFailure(bad({ risk_thresholds: [0.2, 1] }), Code.InvalidArgument, "ARGUMENTS_NOT_VALID", "arguments.risk_thresholds");
    await expectFailure(bad({ risk_thresholds: [0, 0.5] }), Code.InvalidArgument, "ARGUMENTS_NOT_VALID", "arguments.risk_thresholds");
    await expectFailure(bad({ input_dim: 0 }), Code.InvalidArgument, "ARGUMENTS_NOT_VALID", "arguments.input_dim");
    await expectFailure(bad({ input_dim: 1.5 }), Code.InvalidArgument, "ARGUMENTS_NOT_VALID", "arguments.input_dim");
    await expectFailure(bad({ prior_variance: 0 }), Code.InvalidArgument, "ARGUMENTS_NOT_VALID", "arguments.prior_variance");
    await expectFailure(bad({ intercept: 1 }), Code.InvalidArgument, "ARGUMENTS_NOT_VALID", "arguments.intercept");
    await expectFailure(bad({ risk_labels: "high" }), Code.InvalidArgument, "ARGUMENTS_NOT_VALID", "arguments.risk_labels");

    const id = await create();
    const events = (data: Record<string, { values: number[] }>) => app.models.attachEvents({ instanceId: id, events: [{ data }] });
    await expectFailure(events({ x: tensor(1, 2), y: tensor(2) }), Code.InvalidArgument, "DATA_NOT_VALID", "events[0].data.y");
    await expectFailure(events({ x: tensor(1, 2), y: tensor(0.5) }), Code.InvalidArgument, "DATA_NOT_VALID", "events[0].data.y");
    await expectFailure(events({ y: tensor(1) }), Code.InvalidArgument, "DATA_INCOMPLETE", "events[0].data.x");
    await expectFailure(events({ x: tensor(1, 2, 3), y: tensor(1) }), Code.InvalidArgument, "DATA_LAYOUT_NOT_COMPATIBLE", "events[0].data.x");
    await expectFailure(events({ x: tensor(1, 2), z: tensor(1) }), Code.InvalidArgument, "DATA_LAYOUT_NOT_COMPATIBLE", "events[0].data.z");
    await expectFailure(
      app.inference.infer({ instanceId: id, observation: { x: tensor(1, Number.POSITIVE_INFINITY) } }),
      Code.InvalidArgument,
      "DATA_NOT_VALID",
      "observation.x",
    );
    await expectFailure(
      app.inference.infer({ instanceId: id, observation: { x: tensor(1, 2), y: tensor(1) } }),
      Code.InvalidArgument,
      "DATA_LAYOUT_NOT_COMPATIBLE",
      "observation.y",
    );
    expect((await app.models.getEpisode({ instanceId: id, name: "default" })).episode?.eventCount).toBe(0n);
  });
});
