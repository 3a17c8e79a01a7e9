import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { expectArgumentsRejected, expectFailure, simulateAutoregressive as simulate } from "../support/assertions.ts";
import { inMemoryApp, tensor } from "../support/harness.ts";

let app: Awaited<ReturnType<typeof inMemoryApp>>;
beforeAll(async () => {
  app = await inMemoryApp();
});
afterAll(() => app.close());

const MODEL = "autoregressive-v1";
type Data = Record<string, { shape?: number[]; values: number[] }>;

const create = async (args: Record<string, number> = {}) =>
  (await app.models.createInstance({ model: MODEL, arguments: args })).instance!.instanceId;
const attach = (instanceId: string, ys: number[], episode = "default") =>
  app.models.attachEvents({ instanceId, episode, events: ys.map((y) => ({ data: { y: tensor(y) } })) });
const learn = async (instanceId: string) => (await app.learning.learn({ instanceId, wait: true })).run!;

const posteriors = async (instanceId: string) => {
  const { parameters } = await app.models.getParameters({ instanceId });
  const theta = parameters.theta?.kind;
  const tau = parameters.noise_precision?.kind;
  if (theta?.case !== "mvNormal" || tau?.case !== "gamma") throw new Error("expected theta: mvNormal and noise_precision: gamma");
  return { theta: theta.value, tau: tau.value };
};

/** Filters ys (several values need observation_count) and forecasts; not stored unless asked. */
const infer = async (instanceId: string, ys: number[], options: { horizon?: number; start?: boolean; store?: boolean } = {}) => {
  const observation: Data = { y: { shape: [ys.length], values: ys } };
  if (options.start) observation.start = tensor(1);
  const overrides: Record<string, number> = { observation_count: ys.length };
  if (options.horizon !== undefined) overrides.horizon = options.horizon;
  const r = await app.inference.infer({ instanceId, observation, arguments: overrides, storeEvent: options.store ?? false });
  const y = r.predictions.y?.kind;
  const lags = r.posteriors.lags?.kind;
  if (y?.case !== "product" || lags?.case !== "mvNormal") throw new Error("expected a product prediction and mvNormal lags");
  const factors = y.value.factors.map((f) => {
    if (f.kind.case !== "normal") throw new Error(`expected normal factors, got ${f.kind.case}`);
    return f.kind.value;
  });
  return { factors, mean: r.values.y_mean!.values, variance: r.values.y_variance!.values, lags: lags.value };
};

const norm = (v: readonly number[]) => Math.sqrt(v.reduce((s, x) => s + x * x, 0));

describe("autoregressive-v1 reference behaviour (RxInferServer checks)", () => {
  const grid = [2, 3].flatMap((order) => [100, 200].flatMap((n) => [3, 5].map((horizon) => ({ order, n, horizon }))));

  // As in the reference (one fixed RNG seed for the data), every configuration gets the noise stream of
  // the same seed. Over independent draws these tolerances fail often whatever the learner: measured on
  // 2000 draws, ‖θ̂ − θ‖ ≥ 0.2‖θ‖ for 11% (order 2) and 29% (order 3) of series at n = 100, since the
  // least-squares error itself is that large, and some forecast misses 3/√10 for 4–8% (the h-step
  // predictive sd exceeds 1/√10 for h > 1). So the seed decides: 42 passes all eight configurations,
  // 1234 misses one 3-step forecast by 0.03, and of seeds 1–5 three pass. The check still catches a
  // wrong learner or forecast outright; the calibration test below covers independent draws.
  it("learns θ within rtol 0.2 and forecasts the simulated future within 3/√10", { timeout: 60_000 }, async () => {
    for (const { order, n, horizon } of grid) {
      const theta = [0.8, -0.5, 0.3].slice(0, order);
      const series = simulate(theta, 10, n + horizon, 42);
      const train = series.slice(0, n);
      const future = series.slice(n);
      const id = await create({ order, horizon });
      await attach(id, train);
      const run = await learn(id);
      expect(run.metrics?.dataPoints).toBe(BigInt(n - order));
      const { theta: q } = await posteriors(id);
      expect(norm(q.mean.map((v, i) => v - theta[i]!)) / norm(theta)).toBeLessThan(0.2);
      // The filter is fed only the last `order` training values, as a fresh sequence.
      const { mean, factors } = await infer(id, train.slice(-order), { start: true });
      expect(mean).toHaveLength(horizon);
      future.forEach((y, h) => {
        expect(Math.abs(mean[h]! - y)).toBeLessThan(3 / Math.sqrt(10));
        expect(factors[h]!.mean).toBe(mean[h]);
      });
    }
  });

  it("on independent draws, errors are consistent with the model's uncertainty: θ and forecasts within 4.5 sds", { timeout: 60_000 }, async () => {
    for (const [index, { order, n, horizon }] of grid.entries()) {
      const theta = [0.8, -0.5, 0.3].slice(0, order);
      const series = simulate(theta, 10, n + horizon, 500 + index);
      const train = series.slice(0, n);
      const id = await create({ order, horizon });
      await attach(id, train);
      await learn(id);
      const { theta: q } = await posteriors(id);
      theta.forEach((v, i) => expect(Math.abs(q.mean[i]! - v) / Math.sqrt(q.covariance[i * order + i]!)).toBeLessThan(4.5));
      const { mean, variance } = await infer(id, train.slice(-order), { start: true });
      series.slice(n).forEach((y, h) => expect(Math.abs(mean[h]! - y) / Math.sqrt(variance[h]!)).toBeLessThan(4.5));
    }
  });

  it("recovers θ and τ from 2000 values within 4 posterior sds, with a non-increasing free energy", { timeout: 30_000 }, async () => {
    for (const [order, seed] of [[2, 7], [3, 8]] as const) {
      const theta = [0.8, -0.5, 0.3].slice(0, order);
      const id = await create({ order });
      const series = simulate(theta, 10, 2000, seed);
      for (let i = 0; i < series.length; i += 1000) await attach(id, series.slice(i, i + 1000));
      const run = await learn(id);
      const trace = run.metrics!.freeEnergy;
      expect(trace).toHaveLength(20);
      for (let i = 1; i < trace.length; i++) expect(trace[i]!).toBeLessThanOrEqual(trace[i - 1]! + 1e-9 * Math.abs(trace[i - 1]!));
      const { theta: q, tau } = await posteriors(id);
      theta.forEach((v, i) => expect(Math.abs(q.mean[i]! - v) / Math.sqrt(q.covariance[i * order + i]!)).toBeLessThan(4));
      expect(Math.abs(tau.shape / tau.rate - 10) / (Math.sqrt(tau.shape) / tau.rate)).toBeLessThan(4);
    }
  });
});

describe("autoregressive-v1 filtering state", () => {
  it("carries the lags between calls: halves give what one call with everything gives", async () => {
    const series = simulate([0.8, -0.5, 0.3], 10, 300, 21);
    const ids = [await create({ order: 3 }), await create({ order: 3 })];
    for (const id of ids) {
      await attach(id, series.slice(0, 290));
      await learn(id);
    }
    const recent = series.slice(290);
    const whole = await infer(ids[0]!, recent);
    await infer(ids[1]!, recent.slice(0, 4));
    const halves = await infer(ids[1]!, recent.slice(4));
    expect(halves.mean).toEqual(whole.mean);
    expect(halves.variance).toEqual(whole.variance);
    expect(whole.lags.mean).toEqual([recent[9], recent[8], recent[7]]);
    expect(whole.lags.covariance.every((v) => v === 0)).toBe(true);
    // A one-value call continues from the stored lags: its lag vector shifts the new value in.
    const next = await infer(ids[0]!, [0.25], { horizon: 2 });
    expect(next.lags.mean).toEqual([0.25, recent[9], recent[8]]);
    expect(next.mean).toHaveLength(2);
  });

  it("learns stored inference observations as the series: the same posterior as attaching the values", async () => {
    const series = simulate([0.8, -0.5], 10, 120, 31);
    const attached = await create();
    await attach(attached, series);
    await learn(attached);
    const inferred = await create();
    for (let i = 0; i < series.length; i += 40) await infer(inferred, series.slice(i, i + 40), { store: true });
    const run = await learn(inferred);
    expect(run.metrics?.dataPoints).toBe(118n);
    expect(await posteriors(inferred)).toEqual(await posteriors(attached));
  });

  it("keeps episodes' series apart when learning them together", async () => {
    const a = simulate([0.8, -0.5], 10, 60, 41);
    const b = simulate([0.8, -0.5], 10, 60, 42).map((y) => y + 50);
    const id = await create();
    await attach(id, a);
    await app.models.createEpisode({ instanceId: id, name: "second" });
    await app.models.attachEvents({ instanceId: id, episode: "second", events: b.map((y) => ({ data: { y: tensor(y) } })) });
    const run = await app.learning.learn({ instanceId: id, wait: true, episodes: ["default", "second"] });
    // Each episode's first `order` values only provide lags: 2 × (60 − 2) rows; joined series would give 118.
    expect(run.run?.metrics?.dataPoints).toBe(116n);
  });
});

describe("autoregressive-v1 validation", () => {
  it("rejects missing, misshapen, non-finite and out-of-range data and invalid arguments", async () => {
    const id = await create();
    const call = (observation: Data, args: Record<string, number> = {}) => app.inference.infer({ instanceId: id, observation, arguments: args });
    await expectFailure(call({}), Code.InvalidArgument, "DATA_INCOMPLETE", "observation.y");
    await expectFailure(call({ y: tensor(Number.NaN) }), Code.InvalidArgument, "DATA_NOT_VALID", "observation.y");
    // Several values need observation_count.
    await expectFailure(call({ y: tensor(1, 2) }), Code.InvalidArgument, "DATA_LAYOUT_NOT_COMPATIBLE", "observation.y");
    await expectFailure(call({ y: tensor(1, 2, 3) }, { observation_count: 2 }), Code.InvalidArgument, "DATA_LAYOUT_NOT_COMPATIBLE", "observation.y");
    await expectFailure(call({ y: tensor(1), start: tensor(2) }), Code.InvalidArgument, "DATA_NOT_VALID", "observation.start");
    await expectFailure(call({ y: tensor(1) }, { order: 3 }), Code.InvalidArgument, "ARGUMENTS_NOT_VALID", "arguments.order");
    await expectFailure(call({ y: tensor(1) }, { horizon: 0 }), Code.InvalidArgument, "ARGUMENTS_NOT_VALID", "arguments.horizon");
    await expectFailure(
      app.models.attachEvents({ instanceId: id, episode: "default", events: [{ data: { y: tensor(1, 2) } }] }),
      Code.InvalidArgument,
      "DATA_LAYOUT_NOT_COMPATIBLE",
      "events[0].data.y",
    );
    await expectFailure(
      app.models.attachEvents({ instanceId: id, episode: "default", events: [{ data: { y: tensor(Number.POSITIVE_INFINITY) } }] }),
      Code.InvalidArgument,
      "DATA_NOT_VALID",
      "events[0].data.y",
    );
    await expectArgumentsRejected(app.models, MODEL, [{ order: 0 }, { order: 2.5 }, { iterations: 0 }, { noise_rate: 0 }]);
    expect((await app.models.getEpisode({ instanceId: id, name: "default" })).episode?.eventCount).toBe(0n);
  });

  it("is listed with its schema, and forecasts from the prior before any learning", async () => {
    const { modelType } = await app.models.getModelType({ name: MODEL });
    expect(modelType?.parameters.map((p) => [p.name, p.family])).toEqual([
      ["theta", "mvNormal"],
      ["noise_precision", "gamma"],
    ]);
    expect(modelType?.learning).toMatch(/^Approximate/);
    const id = await create();
    const { mean, variance } = await infer(id, [0.5]);
    expect(mean).toEqual([0, 0, 0, 0, 0]);
    expect(variance.every((v) => v > 1e5 && Number.isFinite(v))).toBe(true);
  });
});
