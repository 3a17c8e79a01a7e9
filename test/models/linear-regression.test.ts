import { Matrix, inverse } from "ml-matrix";
import { describe, expect, it } from "vitest";
import { gammaln } from "../../src/math/special.ts";
import { scalar, type Tensor } from "../../src/math/tensor.ts";
import { linearRegression } from "../../src/models/linear-regression/index.ts";
import type { Fields, JsonObject } from "../../src/models/types.ts";
import { resolveArguments, resolveShape, validateFields } from "../../src/models/validation.ts";
import { testRandom, testNormals as normals } from "../support/assertions.ts";

type Args = Parameters<typeof linearRegression.initialParameters>[0];
type Params = ReturnType<typeof linearRegression.initialParameters>;

const defaults = resolveArguments(linearRegression.schema, {}).arguments as unknown as Args;
const withArgs = (given: Partial<Args>): Args => resolveArguments(linearRegression.schema, given as JsonObject).arguments as unknown as Args;

const point = (x: number[]): Tensor => ({ shape: [x.length], values: x });
const event = (x: number[], y?: number): Fields => (y === undefined ? { x: point(x) } : { x: point(x), y: scalar(y) });

const learn = (args: Args, prior: Params, events: Fields[]) =>
  linearRegression.learn({ arguments: args, prior, state: {}, events, seed: 0, options: {} });
const infer = (args: Args, parameters: Params, x: number[]) =>
  linearRegression.infer({ arguments: args, parameters, state: {}, observation: { x: point(x) }, goal: {}, seed: 0, decisionIndex: 1 });

/** y = a·x + b + noise over an even grid on [−5, 5]. */
function line(n: number, a: number, b: number, noiseVariance: number, seed: number): Fields[] {
  const normal = normals(seed);
  return Array.from({ length: n }, (_, i) => {
    const x = -5 + (10 * i) / (n - 1);
    return event([x], a * x + b + Math.sqrt(noiseVariance) * normal());
  });
}

function logStudentT(y: number, location: number, scale: number, nu: number): number {
  const z = (y - location) / scale;
  return gammaln((nu + 1) / 2) - gammaln(nu / 2) - 0.5 * Math.log(nu * Math.PI) - Math.log(scale) - ((nu + 1) / 2) * Math.log1p((z * z) / nu);
}

describe("linear-regression-v1 schema", () => {
  it("has a default for every argument, and examples valid under the defaults", () => {
    const { arguments: args, violations } = resolveArguments(linearRegression.schema, {});
    expect(violations).toEqual([]);
    expect(args).toEqual({ input_dim: 1, intercept: true, prior_precision: 1e-6, noise_shape: 1e-3, noise_rate: 1e-3 });
    for (const kind of ["observation", "event"] as const) {
      const specs = linearRegression.schema[kind];
      const fields = Object.fromEntries(specs.map((s) => [s.name, { shape: resolveShape(s.shape, args), values: [...s.example] }]));
      expect(validateFields(specs, fields, args, kind)).toEqual([]);
    }
  });

  it("starts from Λ0 = prior_precision·I, m0 = 0 and the Gamma prior, with the intercept as the last weight", () => {
    expect(linearRegression.initialParameters(withArgs({ prior_precision: 0.5, noise_shape: 2, noise_rate: 3 }), 0)).toEqual({
      mean: [0, 0],
      precision: [0.5, 0, 0, 0.5],
      shape: 2,
      rate: 3,
    });
    expect(linearRegression.initialParameters(withArgs({ input_dim: 2, intercept: false }), 0).precision).toEqual([1e-6, 0, 0, 1e-6]);
  });
});

describe("linear-regression-v1 learning", () => {
  it("equals the dense Normal-Gamma posterior on the design [x, 1]", () => {
    const args = withArgs({ input_dim: 2, prior_precision: 0.3, noise_shape: 2, noise_rate: 1.5 });
    const normal = normals(3);
    const xs = Array.from({ length: 25 }, () => [normal(), 2 * normal()]);
    const ys = xs.map((x) => 1.5 * x[0]! - 0.5 * x[1]! + 2 + 0.3 * normal());
    const { parameters, metrics } = learn(args, linearRegression.initialParameters(args, 0), xs.map((x, i) => event(x, ys[i])));

    const design = new Matrix(xs.map((x) => [...x, 1]));
    const lambda = Matrix.add(design.transpose().mmul(design), Matrix.eye(3, 3, 0.3));
    const m = inverse(lambda).mmul(design.transpose().mmul(Matrix.columnVector(ys)));
    const residual = Matrix.sub(Matrix.columnVector(ys), design.mmul(m)).to1DArray();
    const rate = 1.5 + 0.5 * (residual.reduce((s, r) => s + r * r, 0) + 0.3 * m.to1DArray().reduce((s, v) => s + v * v, 0));
    parameters.mean.forEach((v, i) => expect(v).toBeCloseTo(m.get(i, 0), 10));
    parameters.precision.forEach((v, i) => expect(v).toBeCloseTo(lambda.to1DArray()[i]!, 10));
    expect(parameters.shape).toBe(2 + 25 / 2);
    expect(parameters.rate).toBeCloseTo(rate, 10);
    expect(metrics.dataPoints).toBe(25);
    expect(metrics.freeEnergy).toHaveLength(1);
  });

  it("reports −log evidence: the sum of the sequential predictive surprises", () => {
    const args = withArgs({ noise_shape: 1.5, noise_rate: 2, prior_precision: 0.1 });
    const events = line(12, 0.7, -1, 0.5, 8);
    let parameters = linearRegression.initialParameters(args, 0);
    let surprise = 0;
    for (const e of events) {
      const y = infer(args, parameters, [...e.x!.values]).predictions!.y!;
      if (y.kind !== "studentT") throw new Error("expected a Student-t prediction");
      surprise -= logStudentT(e.y!.values[0]!, y.location, y.scale, y.degreesOfFreedom);
      parameters = learn(args, parameters, [e]).parameters;
    }
    const batch = learn(args, linearRegression.initialParameters(args, 0), events);
    expect(batch.metrics.freeEnergy![0]).toBeCloseTo(surprise, 9);
  });

  it("learning A then B equals learning A ∪ B; the stored posterior is the next prior", () => {
    const rand = testRandom(11);
    for (let trial = 0; trial < 20; trial++) {
      const args = withArgs({ prior_precision: 0.1 + rand(), noise_shape: 0.5 + rand(), noise_rate: 0.5 + rand() });
      const events = line(2 + Math.floor(rand() * 40), 2 * rand() - 1, 3 * rand(), 0.5, trial);
      const cut = Math.floor(rand() * events.length);
      const prior = linearRegression.initialParameters(args, 0);
      const sequential = learn(args, learn(args, prior, events.slice(0, cut)).parameters, events.slice(cut)).parameters;
      const together = learn(args, prior, events).parameters;
      sequential.mean.forEach((v, i) => expect(v).toBeCloseTo(together.mean[i]!, 10));
      sequential.precision.forEach((v, i) => expect(v).toBeCloseTo(together.precision[i]!, 10));
      expect(sequential.shape).toBeCloseTo(together.shape, 12);
      expect(sequential.rate).toBeCloseTo(together.rate, 10);
    }
  });

  it("skips events without y; with none it returns the prior bit for bit", () => {
    const prior = learn(defaults, linearRegression.initialParameters(defaults, 0), line(10, 1, 2, 0.1, 1)).parameters;
    const idle = learn(defaults, prior, [event([1]), event([2.5])]);
    expect(idle.parameters).toEqual(prior);
    expect(idle.metrics).toMatchObject({ dataPoints: 0, freeEnergy: [0] });
    const mixed = learn(defaults, prior, [event([1]), event([2], 3), event([4])]);
    expect(mixed.parameters).toEqual(learn(defaults, prior, [event([2], 3)]).parameters);
    expect(mixed.metrics.dataPoints).toBe(1);
  });

  it("recovers slope and intercept: slope within 0.05 at n = 2000 under the noisiest setting", () => {
    const { parameters } = learn(defaults, linearRegression.initialParameters(defaults, 0), line(2000, -1, 5, 2, 99));
    const { w, noise_precision } = linearRegression.parameterPosteriors(parameters);
    if (w?.kind !== "mvNormal" || noise_precision?.kind !== "gamma") throw new Error("unexpected families");
    expect(Math.abs(w.mean[0]! + 1)).toBeLessThan(0.05);
    expect(Math.abs(w.mean[1]! - 5)).toBeLessThan(0.1);
    // E[τ] = 1/2 within 10% (its posterior sd is about 3%).
    expect(Math.abs(noise_precision.shape / noise_precision.rate - 0.5)).toBeLessThan(0.05);
  });
});

describe("linear-regression-v1 inference", () => {
  it("predicts with the exact Student-t and reports its mean and variance", () => {
    const args = withArgs({ prior_precision: 0.2, noise_shape: 3, noise_rate: 2 });
    const parameters = learn(args, linearRegression.initialParameters(args, 0), line(15, 2, -1, 0.5, 4)).parameters;
    const x = 1.7;
    const out = infer(args, parameters, [x]);
    const lambdaInverse = inverse(Matrix.from1DArray(2, 2, parameters.precision));
    const phi = Matrix.columnVector([x, 1]);
    const leverage = phi.transpose().mmul(lambdaInverse).mmul(phi).get(0, 0);
    const nu = 2 * parameters.shape;
    const scale2 = (parameters.rate / parameters.shape) * (1 + leverage);
    const location = parameters.mean[0]! * x + parameters.mean[1]!;
    expect(out.predictions!.y).toMatchObject({ kind: "studentT", degreesOfFreedom: nu });
    const y = out.predictions!.y!;
    if (y.kind !== "studentT") throw new Error("expected a Student-t");
    expect(y.location).toBeCloseTo(location, 12);
    expect(y.scale).toBeCloseTo(Math.sqrt(scale2), 12);
    expect(out.values!.y_mean).toEqual(scalar(y.location));
    expect(out.values!.y_variance!.values[0]).toBeCloseTo((scale2 * nu) / (nu - 2), 12);
  });

  it("reports an infinite variance while ν ≤ 2 (the default prior before two events)", () => {
    const fresh = linearRegression.initialParameters(defaults, 0);
    expect(infer(defaults, fresh, [1]).values!.y_variance!.values[0]).toBe(Number.POSITIVE_INFINITY);
    const one = learn(defaults, fresh, [event([1], 2)]).parameters;
    expect(infer(defaults, one, [1]).values!.y_variance!.values[0]).toBe(Number.POSITIVE_INFINITY);
    const two = learn(defaults, one, [event([2], 3)]).parameters;
    expect(Number.isFinite(infer(defaults, two, [1]).values!.y_variance!.values[0])).toBe(true);
  });

  it("reports w moment-matched: covariance rate/(shape−1)·Λ⁻¹, or the scale matrix while shape ≤ 1", () => {
    const parameters = learn(defaults, linearRegression.initialParameters(defaults, 0), line(20, 1, 0, 1, 5)).parameters;
    const lambdaInverse = inverse(Matrix.from1DArray(2, 2, parameters.precision)).to1DArray();
    const posteriors = linearRegression.parameterPosteriors(parameters);
    const w = posteriors.w!;
    if (w.kind !== "mvNormal") throw new Error("expected an mvNormal");
    w.covariance.forEach((c, i) => expect(c).toBeCloseTo((parameters.rate / (parameters.shape - 1)) * lambdaInverse[i]!, 10));
    expect(posteriors.noise_precision).toEqual({ kind: "gamma", shape: parameters.shape, rate: parameters.rate });
    const prior = linearRegression.parameterPosteriors(linearRegression.initialParameters(defaults, 0)).w!;
    // shape 1e-3: scale matrix (rate/shape)·Λ0⁻¹ = 1·1e6·I.
    expect(prior).toEqual({ kind: "mvNormal", mean: [0, 0], covariance: [1e6, 0, 0, 1e6] });
  });

  it("handles several inputs without an intercept", () => {
    const args = withArgs({ input_dim: 3, intercept: false });
    const normal = normals(21);
    const w = [0.5, -2, 1];
    const events = Array.from({ length: 300 }, () => {
      const x = [normal(), normal(), normal()];
      return event(x, x.reduce((s, v, i) => s + v * w[i]!, 0) + 0.1 * normal());
    });
    const parameters = learn(args, linearRegression.initialParameters(args, 0), events).parameters;
    parameters.mean.forEach((v, i) => expect(Math.abs(v - w[i]!)).toBeLessThan(0.03));
    expect(infer(args, parameters, [1, 1, 1]).values!.y_mean!.values[0]).toBeCloseTo(-0.5, 1);
  });
});
