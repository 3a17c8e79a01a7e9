import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Distribution } from "../../gen/posterior/v1/values_pb.ts";
import { expectArgumentsRejected, expectFailure, testNormals as normals } from "../support/assertions.ts";
import { inMemoryApp, tensor } from "../support/harness.ts";

let app: Awaited<ReturnType<typeof inMemoryApp>>;
beforeAll(async () => {
  app = await inMemoryApp();
});
afterAll(() => app.close());

const MODEL = "linear-regression-v1";
type Data = Record<string, { shape?: number[]; values: number[] }>;

const create = async (args: Record<string, number | boolean> = {}) =>
  (await app.models.createInstance({ model: MODEL, arguments: args })).instance!.instanceId;

// A one-element vector needs its shape: without it the wire convention reads a scalar.
const input = (...x: number[]) => ({ shape: [x.length], values: x });
const point = (x: number, y?: number): Data => (y === undefined ? { x: input(x) } : { x: input(x), y: tensor(y) });

const attach = (instanceId: string, events: Data[], episode = "default") =>
  app.models.attachEvents({ instanceId, episode, events: events.map((data) => ({ data })) });
const learn = async (instanceId: string, relearn = false) => (await app.learning.learn({ instanceId, wait: true, relearn })).run!;

const posteriors = async (instanceId: string) => {
  const { parameters } = await app.models.getParameters({ instanceId });
  const w = parameters.w?.kind;
  const tau = parameters.noise_precision?.kind;
  if (w?.case !== "mvNormal" || tau?.case !== "gamma") throw new Error("expected w: mvNormal and noise_precision: gamma");
  return { w: w.value, tau: tau.value };
};

const predict = async (instanceId: string, x: number) => {
  const r = await app.inference.infer({ instanceId, observation: { x: input(x) }, storeEvent: false });
  const y: Distribution | undefined = r.predictions.y;
  if (y?.kind.case !== "studentT") throw new Error(`expected a Student-t prediction, got ${y?.kind.case}`);
  return { y: y.kind.value, mean: r.values.y_mean!.values[0]!, variance: r.values.y_variance!.values[0]! };
};

/** The reference's data: x = range(−5, 5, length = n) (both ends included), y = a·x + b + N(0, noise variance). */
function line(n: number, a: number, b: number, noiseVariance: number, normal: () => number): Data[] {
  return Array.from({ length: n }, (_, i) => {
    const x = -5 + (10 * i) / (n - 1);
    return point(x, a * x + b + Math.sqrt(noiseVariance) * normal());
  });
}

const GRID = [1000, 2000].flatMap((n) =>
  [0.5, 2, -1].flatMap((a) => [0, 5, -3].flatMap((b) => [0.1, 0.5, 2].map((noise) => ({ n, a, b, noise })))),
);

describe("linear-regression-v1 reference behaviour (RxInferServer checks)", () => {
  // The full grid: 54 instances and 81 000 events, well inside the 40 s budget. As in the reference
  // (generate_linear_regression_data defaults to a fresh StableRNG(1234)), every instance gets the
  // noise stream of the same seed. With independent draws the 0.1 tolerance is only about 1.9
  // posterior sds at noise variance 2 and n = 1000, so it cannot hold for every draw; the
  // calibration test below covers independent draws with the model's own uncertainty.
  it("learns slope and intercept within 0.1 and predicts a·x + b within 0.1 at x ∈ {0, 2, −2}", { timeout: 120_000 }, async () => {
    for (const { n, a, b, noise } of GRID) {
      const id = await create();
      await attach(id, line(n, a, b, noise, normals(1234)));
      const run = await learn(id);
      expect(run.metrics?.dataPoints).toBe(BigInt(n));
      const { w } = await posteriors(id);
      expect(Math.abs(w.mean[0]! - a)).toBeLessThan(0.1);
      expect(Math.abs(w.mean[1]! - b)).toBeLessThan(0.1);
      for (const x of [0, 2, -2]) {
        const { mean, y } = await predict(id, x);
        expect(Math.abs(mean - (a * x + b))).toBeLessThan(0.1);
        expect(y.location).toBe(mean);
      }
    }
  });

  it("on independent noise, errors are consistent with the posterior: all within 4.5 sds; slope within 0.05 at n = 2000", { timeout: 120_000 }, async () => {
    const normal = normals(4321);
    for (const { n, a, b, noise } of GRID) {
      const id = await create();
      await attach(id, line(n, a, b, noise, normal));
      await learn(id);
      const { w } = await posteriors(id);
      const [vaa, vab, , vbb] = w.covariance as [number, number, number, number];
      expect(Math.abs(w.mean[0]! - a) / Math.sqrt(vaa)).toBeLessThan(4.5);
      expect(Math.abs(w.mean[1]! - b) / Math.sqrt(vbb)).toBeLessThan(4.5);
      // At n = 2000 the slope's posterior sd is at most 0.011.
      if (n === 2000) expect(Math.abs(w.mean[0]! - a)).toBeLessThan(0.05);
      for (const x of [0, 2, -2]) {
        const { mean } = await predict(id, x);
        const sd = Math.sqrt(x * x * vaa + 2 * x * vab + vbb);
        expect(Math.abs(mean - (a * x + b)) / sd).toBeLessThan(4.5);
      }
    }
  });

  it("can be created without arguments, and its events round-trip exactly", async () => {
    const id = await create();
    const events = line(7, 0.3, 1, 0.2, normals(5));
    await attach(id, events);
    const { events: stored } = await app.models.listEvents({ instanceId: id });
    expect(stored.map((e) => [e.data.x?.values, e.data.y?.values])).toEqual(events.map((e) => [e.x!.values, e.y!.values]));
    expect((await app.models.getInstance({ instanceId: id })).instance?.arguments).toEqual({
      input_dim: 1,
      intercept: true,
      prior_precision: 1e-6,
      noise_shape: 1e-3,
      noise_rate: 1e-3,
    });
  });
});

describe("linear-regression-v1 continual learning (the reference forgets; here it is exact)", () => {
  it("learning A then B equals learning A ∪ B, and a relearn gives the same again", async () => {
    const normal = normals(77);
    const a = line(60, 1.5, -0.5, 0.4, normal);
    const b = line(40, 1.5, -0.5, 0.4, normal).map((e) => ({ ...e, x: input(e.x!.values[0]! * 0.5 + 1) }));
    const together = await create();
    await attach(together, [...a, ...b]);
    const whole = await learn(together);
    const incremental = await create();
    await attach(incremental, a);
    const first = await learn(incremental);
    await attach(incremental, b);
    const second = await learn(incremental);
    const expected = await posteriors(together);
    const actual = await posteriors(incremental);
    actual.w.mean.forEach((v, i) => expect(v).toBeCloseTo(expected.w.mean[i]!, 9));
    actual.w.covariance.forEach((v, i) => expect(v).toBeCloseTo(expected.w.covariance[i]!, 9));
    expect(actual.tau.shape).toBeCloseTo(expected.tau.shape, 9);
    expect(actual.tau.rate).toBeCloseTo(expected.tau.rate, 9);
    // The log evidence of A ∪ B is that of A plus that of B given A.
    expect(first.metrics!.freeEnergy[0]! + second.metrics!.freeEnergy[0]!).toBeCloseTo(whole.metrics!.freeEnergy[0]!, 8);

    await learn(incremental, true);
    const relearned = await posteriors(incremental);
    relearned.w.mean.forEach((v, i) => expect(v).toBeCloseTo(expected.w.mean[i]!, 9));
    expect(relearned.tau.rate).toBeCloseTo(expected.tau.rate, 9);
  });

  it("skips stored inference observations (no y) and leaves the parameters unchanged", async () => {
    const id = await create();
    await attach(id, line(30, 2, 1, 0.5, normals(8)));
    await learn(id);
    const before = await app.models.getParameters({ instanceId: id });
    await app.inference.infer({ instanceId: id, observation: { x: input(1) } });
    await app.inference.infer({ instanceId: id, observation: { x: input(3) } });
    const run = await learn(id);
    expect(run.metrics?.dataPoints).toBe(0n);
    expect((await app.models.getParameters({ instanceId: id })).parameters).toEqual(before.parameters);
  });
});

describe("linear-regression-v1 inference", () => {
  it("answers before any learning with the prior predictive, whose variance is infinite (ν = 2·noise_shape ≤ 2)", async () => {
    const id = await create();
    const { y, mean, variance } = await predict(id, 2);
    expect(mean).toBe(0);
    expect(y.degreesOfFreedom).toBeCloseTo(2e-3, 15);
    expect(variance).toBe(Number.POSITIVE_INFINITY);
  });

  it("reports the Student-t variance scale²·ν/(ν−2) after learning", async () => {
    const id = await create({ noise_shape: 2, noise_rate: 1, prior_precision: 0.01 });
    await attach(id, line(50, 1, 0, 1, normals(12)));
    await learn(id);
    const { y, variance } = await predict(id, 1);
    const nu = y.degreesOfFreedom;
    expect(nu).toBe(2 * (2 + 25));
    expect(variance).toBeCloseTo((y.scale * y.scale * nu) / (nu - 2), 12);
  });

  it("takes several inputs, without an intercept", async () => {
    const id = await create({ input_dim: 2, intercept: false });
    const normal = normals(31);
    await attach(
      id,
      Array.from({ length: 200 }, () => {
        const x = [normal(), normal()];
        return { x: input(...x), y: tensor(3 * x[0]! - x[1]! + 0.05 * normal()) };
      }),
    );
    await learn(id);
    const { w } = await posteriors(id);
    expect(w.mean).toHaveLength(2);
    expect(w.mean[0]).toBeCloseTo(3, 1);
    expect(w.mean[1]).toBeCloseTo(-1, 1);
    const r = await app.inference.infer({ instanceId: id, observation: { x: input(1, 1) }, storeEvent: false });
    expect(r.values.y_mean?.values[0]).toBeCloseTo(2, 1);
  });

  it("rejects missing, misshapen and non-finite inputs and invalid arguments", async () => {
    const id = await create();
    const infer = (observation: Data) => app.inference.infer({ instanceId: id, observation });
    await expectFailure(infer({}), Code.InvalidArgument, "DATA_INCOMPLETE", "observation.x");
    await expectFailure(infer({ x: tensor(1, 2) }), Code.InvalidArgument, "DATA_LAYOUT_NOT_COMPATIBLE", "observation.x");
    await expectFailure(infer({ x: input(Number.NaN) }), Code.InvalidArgument, "DATA_NOT_VALID", "observation.x");
    await expectFailure(infer({ x: input(1), y: tensor(2) }), Code.InvalidArgument, "DATA_LAYOUT_NOT_COMPATIBLE", "observation.y");
    await expectFailure(attach(id, [{ y: tensor(1) }]), Code.InvalidArgument, "DATA_INCOMPLETE", "events[0].data.x");
    await expectFailure(attach(id, [{ x: input(1), y: tensor(Number.POSITIVE_INFINITY) }]), Code.InvalidArgument, "DATA_NOT_VALID");
    await expectArgumentsRejected(app.models, MODEL, [{ input_dim: 0 }, { prior_precision: 0 }, { noise_shape: -1 }, { input_dim: 1.5 }]);
    expect((await app.models.getEpisode({ instanceId: id, name: "default" })).episode?.eventCount).toBe(0n);
  });

  it("is listed with its schema", async () => {
    const { modelType } = await app.models.getModelType({ name: MODEL });
    expect(modelType?.parameters.map((p) => [p.name, p.family])).toEqual([
      ["w", "mvNormal"],
      ["noise_precision", "gamma"],
    ]);
    expect(modelType?.arguments.map((a) => a.name)).toEqual(["input_dim", "intercept", "prior_precision", "noise_shape", "noise_rate"]);
    expect(modelType?.learning).toMatch(/^Exact/);
  });
});
