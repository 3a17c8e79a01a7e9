import { Code } from "@connectrpc/connect";
import { Matrix, solve } from "ml-matrix";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Random } from "../../src/math/random.ts";
import { basis } from "../../src/models/feature-discovery/index.ts";
import { expectFailure } from "../support/assertions.ts";
import { inMemoryApp, tensor } from "../support/harness.ts";

let app: Awaited<ReturnType<typeof inMemoryApp>>;
beforeAll(async () => {
  app = await inMemoryApp();
});
afterAll(() => app.close());

const MODEL = "feature-discovery-v1";
const DEFAULT_FUNCTIONS = ["linear", "quadratic", "pairwise", "triplewise"];
type Data = Record<string, { shape?: number[]; values: number[] }>;
type Target = readonly [number, (x: number[]) => number];

const create = async (args: Record<string, number | string[]> = {}) =>
  (await app.models.createInstance({ model: MODEL, arguments: args })).instance!.instanceId;

// Explicit shapes: a one-element vector without one would read as a scalar.
const input = (x: number[]) => ({ shape: [x.length], values: x });
const attach = (instanceId: string, xs: number[][], ys: number[]) =>
  app.models.attachEvents({ instanceId, events: xs.map((x, i) => ({ data: { x: input(x), y: tensor(ys[i]!) } as Data })) });
const learn = async (instanceId: string, relearn = false) => (await app.learning.learn({ instanceId, wait: true, relearn })).run!;

async function parameters(instanceId: string) {
  const { parameters: p } = await app.models.getParameters({ instanceId });
  const omega = p.omega?.kind;
  const tau = p.noise_precision?.kind;
  if (omega?.case !== "mvNormal" || tau?.case !== "gamma") throw new Error("expected omega: mvNormal and noise_precision: gamma");
  return { mean: omega.value.mean, covariance: omega.value.covariance, shape: tau.value.shape, rate: tau.value.rate };
}

async function predict(instanceId: string, x: number[], storeEvent = false) {
  const r = await app.inference.infer({ instanceId, observation: { x: input(x) }, storeEvent });
  const y = r.predictions.y?.kind;
  if (y?.case !== "normal") throw new Error(`expected a Normal prediction, got ${y?.case}`);
  expect([r.values.y_mean?.values[0], r.values.y_variance?.values[0]]).toEqual([y.value.mean, y.value.variance]);
  return y.value;
}

/** The reference's data: x ~ N(0, I_D) for training (randn), y = f(x) + N(0, 1/precision). */
function simulate(rng: Random, [d, f]: Target, n: number, precision: number) {
  const xs = Array.from({ length: n }, () => Array.from({ length: d }, () => rng.normal()));
  return { xs, ys: xs.map((x) => f(x) + rng.normal() / Math.sqrt(precision)) };
}

/** Least-squares weights on the raw data, solved independently of the engine. */
function leastSquares(xs: number[][], ys: number[], functions: string[]): number[] {
  const design = new Matrix(xs.map((x) => basis(x, functions)));
  return solve(design.transpose().mmul(design), design.transpose().mmul(Matrix.columnVector(ys))).to1DArray();
}
const dot = (a: readonly number[], b: readonly number[]) => a.reduce((s, v, i) => s + v * b[i]!, 0);

/**
 * Predictions at the reference's 10 test points x ~ U(0, 1)^D. The reference wants every y_mean
 * within 0.05 of f(x); with N = 1500 any correct learner (this one equals least squares) misses
 * that at roughly 1.5–4% of such points, as the posterior sd of φᵀω there is 0.01–0.03 (simulated
 * over many seeds), so the test asserts what does hold for a correct learner: agreement with
 * least squares, every error within 4.5 posterior sds, and at least 95% of points within 0.05.
 */
async function checkPredictions(id: string, f: Target[1], points: number[][], functions: string[], reference: number[], agreement: number) {
  const out: Array<{ error: number; z: number }> = [];
  const { covariance } = await parameters(id);
  for (const x of points) {
    const { mean } = await predict(id, x);
    const phi = basis(x, functions);
    const k = phi.length;
    let spread = 0;
    for (let i = 0; i < k; i++) for (let j = 0; j < k; j++) spread += phi[i]! * covariance[i * k + j]! * phi[j]!;
    expect(Math.abs(mean - dot(phi, reference))).toBeLessThan(agreement);
    out.push({ error: Math.abs(mean - f(x)), z: Math.abs(mean - f(x)) / Math.sqrt(spread) });
  }
  for (const { z } of out) expect(z).toBeLessThan(4.5);
  return out.filter((o) => o.error < 0.05).length;
}

const TARGETS: Target[] = [
  [3, (x) => 2 * x[0]! + 3 * x[1]! + 4 * x[2]!],
  [4, (x) => 2 * x[0]! + 3 * x[1]! + 4 * x[2]! + 5 * x[3]!],
  [2, (x) => x[0]! * x[1]!],
  [3, (x) => -3 * x[0]! * x[1]! + 4 * x[2]!],
  [5, (x) => x[0]! * x[1]! - x[2]! * x[3]! + 6 * x[4]!],
  [3, (x) => x[0]! * x[1]! * x[2]!],
  [3, (x) => x[0]! * x[1]! * x[2]! - x[0]! * x[1]! - 2 * x[1]! * x[2]! + 3 * x[0]! + 2 * x[1]! + x[2]!],
];

describe("feature-discovery-v1 reference behaviour (RxInferServer checks)", () => {
  it("learns hidden functions, then keeps learning, then relearns", { timeout: 120_000 }, async () => {
    const rng = new Random(34);
    const within = [0, 0, 0];
    let total = 0;
    for (const target of TARGETS) {
      for (const precision of [2, 5, 7]) {
        const [d, f] = target;
        const id = await create({ input_dim: d });
        const first = simulate(rng, target, 1500, precision);
        await attach(id, first.xs, first.ys);
        const run = await learn(id);
        expect(run.metrics?.freeEnergy).toHaveLength(25);
        const learned = await parameters(id);
        expect(Math.abs(learned.shape / learned.rate / precision - 1)).toBeLessThan(0.1);
        const points = Array.from({ length: 10 }, () => Array.from({ length: d }, () => rng.nextDouble()));
        total += points.length;
        const batchFit = leastSquares(first.xs, first.ys, DEFAULT_FUNCTIONS);
        within[0]! += await checkPredictions(id, f, points, DEFAULT_FUNCTIONS, batchFit, 1e-6);

        // Stored inference observations carry no y: learning them changes nothing, bit for bit.
        await predict(id, points[0]!, true);
        const idle = await learn(id);
        expect(idle.metrics?.dataPoints).toBe(0n);
        expect(await parameters(id)).toEqual(learned);

        const extra = simulate(rng, target, 10, precision);
        await attach(id, extra.xs, extra.ys);
        await learn(id);
        const incremental = await parameters(id);
        expect(incremental.mean).not.toEqual(learned.mean);
        expect(incremental.covariance).not.toEqual(learned.covariance);
        expect(incremental.shape).not.toBe(learned.shape);
        expect(incremental.rate).not.toBe(learned.rate);
        const allXs = [...first.xs, ...extra.xs];
        const allYs = [...first.ys, ...extra.ys];
        const fullFit = leastSquares(allXs, allYs, DEFAULT_FUNCTIONS);
        // Streaming VB is not batch VB, but with 10 new events it stays close to the batch fit.
        within[1]! += await checkPredictions(id, f, points, DEFAULT_FUNCTIONS, fullFit, 0.01);

        await learn(id, true);
        const relearned = await parameters(id);
        expect(relearned.mean).not.toEqual(incremental.mean);
        expect(relearned.covariance).not.toEqual(incremental.covariance);
        expect(relearned.rate).not.toBe(incremental.rate);
        within[2]! += await checkPredictions(id, f, points, DEFAULT_FUNCTIONS, fullFit, 1e-6);
      }
    }
    for (const count of within) expect(count / total).toBeGreaterThanOrEqual(0.95);
  });

  it("learns with modifiers: linear:sigmoid, pairwise:abs, tripplewise:tanh (the reference's spelling)", { timeout: 60_000 }, async () => {
    const functions = ["linear:sigmoid", "pairwise:abs", "tripplewise:tanh"];
    const sigmoid = (v: number) => 1 / (1 + Math.exp(-v));
    const targets: Target[] = [
      [2, (x) => 2 * sigmoid(x[0]!) - 3 * sigmoid(x[1]!)],
      [3, (x) => 3 * Math.tanh(x[0]! * x[1]! * x[2]!)],
      [6, (x) => Math.tanh(x[0]! * x[1]! * x[2]!) - 4 * Math.tanh(x[3]! * x[4]! * x[5]!)],
      [4, (x) => Math.abs(x[0]! * x[1]!) + 2 * Math.abs(x[2]! * x[3]!)],
    ];
    const rng = new Random(35);
    let within = 0;
    let total = 0;
    for (const target of targets) {
      const [d, f] = target;
      const id = await create({ input_dim: d, functions });
      const data = simulate(rng, target, 1500, 5);
      await attach(id, data.xs, data.ys);
      await learn(id);
      const learned = await parameters(id);
      expect(Math.abs(learned.shape / learned.rate / 5 - 1)).toBeLessThan(0.1);
      const points = Array.from({ length: 10 }, () => Array.from({ length: d }, () => rng.nextDouble()));
      total += points.length;
      within += await checkPredictions(id, f, points, functions, leastSquares(data.xs, data.ys, functions), 1e-6);
    }
    expect(within / total).toBeGreaterThanOrEqual(0.95);
  });

  it("reports the free energy per iteration: x = [i], y = i, 10 iterations → 10 finite, strictly decreasing values", async () => {
    const id = await create({ input_dim: 1, number_of_iterations: 10 });
    const xs = Array.from({ length: 10 }, (_, i) => [i + 1]);
    await attach(id, xs, xs.map(([x]) => x!));
    const run = await learn(id);
    const trace = run.metrics!.freeEnergy;
    expect(trace).toHaveLength(10);
    expect(run.metrics?.iterations).toBe(10);
    expect(trace.every(Number.isFinite)).toBe(true);
    for (let i = 1; i < trace.length; i++) expect(trace[i]!).toBeLessThan(trace[i - 1]!);
  });
});

describe("feature-discovery-v1 beyond the reference", () => {
  it("answers before any learning with the prior predictive", async () => {
    const id = await create();
    const y = await predict(id, [0.5, 2]);
    const phi = basis([0.5, 2], DEFAULT_FUNCTIONS);
    expect(y.mean).toBe(0);
    expect(y.variance / (1e6 * dot(phi, phi) + 1e-8 / 1e-12) - 1).toBeCloseTo(0, 12);
  });

  it("shows the defaults and the initial prior", async () => {
    const { instance } = await app.models.createInstance({ model: MODEL });
    expect(instance?.arguments).toEqual({ functions: DEFAULT_FUNCTIONS, input_dim: 2, number_of_iterations: 25 });
    const p = await parameters(instance!.instanceId);
    expect(p.mean).toEqual([0, 0, 0, 0, 0]);
    expect([p.shape, p.rate]).toEqual([1e-12, 1e-8]);
  });

  it("rejects unknown functions or modifiers and inputs of the wrong length", async () => {
    for (const functions of [["linear", "cubic"], ["pairwise:exp"]]) {
      await expectFailure(app.models.createInstance({ model: MODEL, arguments: { functions } }), Code.InvalidArgument, "ARGUMENTS_NOT_VALID", "arguments.functions");
    }
    const id = await create({ input_dim: 3 });
    await expectFailure(
      app.inference.infer({ instanceId: id, observation: { x: input([1, 2]) } }),
      Code.InvalidArgument,
      "DATA_LAYOUT_NOT_COMPATIBLE",
      "observation.x",
    );
    await expectFailure(
      app.models.attachEvents({ instanceId: id, events: [{ data: { y: tensor(1) } }] }),
      Code.InvalidArgument,
      "DATA_INCOMPLETE",
      "events[0].data.x",
    );
  });
});
