import { describe, expect, it } from "vitest";
import { expectedLogistic, gaussKronrod15 } from "../../src/math/quadrature.ts";
import { scalar, type Tensor, vector } from "../../src/math/tensor.ts";
import {
  type Arguments,
  logisticRegression as model,
  type Parameters,
  riskLevelIndex,
} from "../../src/models/logistic-regression/index.ts";
import type { Fields } from "../../src/models/types.ts";
import { testRandom } from "../support/assertions.ts";

const defaults: Arguments = {
  input_dim: 2,
  intercept: true,
  prior_variance: 10,
  credible_level: 0.95,
  risk_thresholds: [0.2, 0.5],
  risk_labels: ["low", "medium", "high"],
};

const events = (rows: Array<[number[], number | undefined]>): Fields[] =>
  rows.map(([x, y]): Fields => (y === undefined ? { x: vector(x) } : { x: vector(x), y: scalar(y) }));

const learn = (args: Arguments, prior: Parameters, data: Fields[]) =>
  model.learn({ arguments: args, prior, state: {}, events: data, seed: 0, options: {} });

const infer = (args: Arguments, parameters: Parameters, x: number[]) =>
  model.infer({ arguments: args, parameters, state: {}, observation: { x: vector(x) }, goal: {}, seed: 0, decisionIndex: 0 });

const value = (t: Tensor | undefined) => t!.values[0]!;

const gaussian = (rand: () => number) => () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());

/** Cases x ~ N(0, I) with outcomes drawn from the logistic model with coefficients w (intercept last). */
function simulate(seed: number, n: number, w: number[]): Fields[] {
  const rand = testRandom(seed);
  const normal = gaussian(rand);
  return Array.from({ length: n }, () => {
    const x = Array.from({ length: w.length - 1 }, normal);
    const z = x.reduce((s, xi, i) => s + xi * w[i]!, w[w.length - 1]!);
    return { x: vector(x), y: scalar(rand() < 1 / (1 + Math.exp(-z)) ? 1 : 0) };
  });
}

// An independent implementation of the objective: the negative log joint −log p(y, w) written out directly.
function negativeLogJoint(data: Fields[], w: number[], priorVariance: number, intercept: boolean): number {
  let total = 0;
  for (const e of data) {
    const x = [...e.x!.values, ...(intercept ? [1] : [])];
    const z = x.reduce((s, xi, i) => s + xi * w[i]!, 0);
    const p = 1 / (1 + Math.exp(-z));
    total -= e.y!.values[0] === 1 ? Math.log(p) : Math.log(1 - p);
  }
  const d = w.length;
  return total + w.reduce((s, wi) => s + (wi * wi) / (2 * priorVariance), 0) + (d / 2) * Math.log(2 * Math.PI * priorVariance);
}

/** Minimises a convex function of two variables by brute-force grid search, zooming in on the best point. */
function gridMinimum(f: (w: number[]) => number, center: number[], halfWidth: number): number[] {
  let best = [...center];
  let width = halfWidth;
  for (let level = 0; level < 40; level++) {
    const cells = 20;
    let bestValue = Infinity;
    const around = [...best];
    for (let i = -cells; i <= cells; i++) {
      for (let j = -cells; j <= cells; j++) {
        const w = [around[0]! + (i * width) / cells, around[1]! + (j * width) / cells];
        const v = f(w);
        if (v < bestValue) [bestValue, best] = [v, w];
      }
    }
    width /= 5;
  }
  return best;
}

/** Central-difference Hessian of f at w. */
function finiteDifferenceHessian(f: (w: number[]) => number, w: number[], h: number): number[][] {
  const at = (i: number, di: number, j: number, dj: number) => {
    const u = [...w];
    u[i]! += di;
    u[j]! += dj;
    return f(u);
  };
  return w.map((_, i) =>
    w.map((_, j) => (at(i, h, j, h) - at(i, h, j, -h) - at(i, -h, j, h) + at(i, -h, j, -h)) / (4 * h * h)),
  );
}

const finiteDifferenceGradient = (f: (w: number[]) => number, w: number[], h: number) =>
  w.map((_, i) => {
    const up = [...w];
    const down = [...w];
    up[i]! += h;
    down[i]! -= h;
    return (f(up) - f(down)) / (2 * h);
  });

// Reference values of E[σ(z)], z ~ N(mu, sd²), by the trapezoidal rule, which converges geometrically for
// analytic integrands decaying on the real line. Two representations, each used where its integrand is smooth
// on the scale of the step: over the normal (σ(mu + sd·t)φ(t), poles at distance π/sd), and over the logistic
// noise (E[σ(z)] = P(ε < z) = ∫ Φ((mu − e)/sd) σ′(e) de, poles at distance π).
function trapezoid(f: (t: number) => number, from: number, to: number, h: number): number {
  const n = Math.round((to - from) / h);
  let sum = 0.5 * (f(from) + f(to));
  for (let i = 1; i < n; i++) sum += f(from + i * h);
  return sum * h;
}
const sigma = (z: number) => (z >= 0 ? 1 / (1 + Math.exp(-z)) : Math.exp(z) / (1 + Math.exp(z)));
const phiDensity = (t: number) => Math.exp(-0.5 * t * t) / Math.sqrt(2 * Math.PI);
const normalCdfBySeries = (x: number) => 0.5 * erfcSeries(-x / Math.SQRT2);
const overNormal = (mu: number, sd: number) => trapezoid((t) => sigma(mu + sd * t) * phiDensity(t), -12, 12, Math.min(0.01, 0.5 / sd));
const overLogistic = (mu: number, sd: number) =>
  trapezoid((e) => normalCdfBySeries((mu - e) / sd) * sigma(e) * sigma(-e), -45, 45, 0.01);

/** erfc by its Taylor series (x < 1.5) or continued fraction (test-local, so the reference shares no code with the model). */
function erfcSeries(x: number): number {
  if (x < 0) return 2 - erfcSeries(-x);
  if (x < 1.5) {
    // erf x = 2/√π Σ (−1)^n x^{2n+1} / (n! (2n+1))
    let term = x;
    let sum = x;
    for (let n = 1; n < 200; n++) {
      term *= (-x * x) / n;
      sum += term / (2 * n + 1);
      if (Math.abs(term) < 1e-18) break;
    }
    return 1 - (2 / Math.sqrt(Math.PI)) * sum;
  }
  // Lentz's continued fraction: erfc x = e^{−x²}/√π · 1/(x + 1/2/(x + 1/(x + 3/2/(x + …))))
  let fraction = x;
  for (let k = 120; k >= 1; k--) fraction = x + k / 2 / fraction;
  return Math.exp(-x * x) / Math.sqrt(Math.PI) / fraction;
}

describe("logistic-regression-v1 prior and arguments", () => {
  it("starts from N(0, prior_variance·I) over [x; 1]", () => {
    const p = model.initialParameters({ ...defaults, prior_variance: 4 }, 0);
    expect(p.mean).toEqual([0, 0, 0]);
    expect(p.covariance).toEqual([4, 0, 0, 0, 4, 0, 0, 0, 4]);
    expect(p.precision).toEqual([0.25, 0, 0, 0, 0.25, 0, 0, 0, 0.25]);
    expect(model.parameterPosteriors(p)).toEqual({ w: { kind: "mvNormal", mean: p.mean, covariance: p.covariance } });
    expect(model.initialParameters({ ...defaults, input_dim: 3, intercept: false }, 0).mean).toHaveLength(3);
  });

  it("requires increasing thresholds inside (0, 1) and one distinct label more than thresholds", () => {
    const problems = (changes: Partial<Arguments>) =>
      model.checkArguments!({ ...defaults, ...changes }).map((p) => [`arguments.${p.argument}`, "ARGUMENTS_NOT_VALID"]);
    expect(problems({})).toEqual([]);
    expect(problems({ risk_thresholds: [0.3] , risk_labels: ["low", "high"] })).toEqual([]);
    expect(problems({ risk_labels: ["low", "high"] })).toEqual([["arguments.risk_labels", "ARGUMENTS_NOT_VALID"]]);
    expect(problems({ risk_labels: ["a", "b", "c", "d"] })).toEqual([["arguments.risk_labels", "ARGUMENTS_NOT_VALID"]]);
    expect(problems({ risk_labels: ["low", "", "high"] })).toEqual([["arguments.risk_labels", "ARGUMENTS_NOT_VALID"]]);
    expect(problems({ risk_labels: ["low", "low", "high"] })).toEqual([["arguments.risk_labels", "ARGUMENTS_NOT_VALID"]]);
    expect(problems({ risk_thresholds: [0.5, 0.2] })).toEqual([["arguments.risk_thresholds", "ARGUMENTS_NOT_VALID"]]);
    expect(problems({ risk_thresholds: [0.2, 0.2] })).toEqual([["arguments.risk_thresholds", "ARGUMENTS_NOT_VALID"]]);
    expect(problems({ risk_thresholds: [0.2, 1] })).toEqual([["arguments.risk_thresholds", "ARGUMENTS_NOT_VALID"]]);
    expect(problems({ risk_thresholds: [0, 0.5] })).toEqual([["arguments.risk_thresholds", "ARGUMENTS_NOT_VALID"]]);
  });
});

describe("logistic-regression-v1 learning (Laplace)", () => {
  // A tiny, non-separable data set in one feature plus intercept.
  const tiny = events([
    [[-2], 0],
    [[-1.2], 0],
    [[-0.5], 1],
    [[0.1], 0],
    [[0.4], 1],
    [[0.9], 0],
    [[1.3], 1],
    [[2.2], 1],
  ]);
  const args = { ...defaults, input_dim: 1, prior_variance: 3 };
  const f = (w: number[]) => negativeLogJoint(tiny, w, 3, true);

  it("finds the MAP of a brute-force grid search, with the finite-difference Hessian as precision", () => {
    const { parameters, metrics } = learn(args, model.initialParameters(args, 0), tiny);
    const map = gridMinimum(f, [0, 0], 10);
    parameters.mean.forEach((m, i) => expect(Math.abs(m - map[i]!)).toBeLessThan(1e-6));
    const hessian = finiteDifferenceHessian(f, parameters.mean, 1e-3);
    hessian.flat().forEach((h, i) => expect(Math.abs(parameters.precision[i]! - h)).toBeLessThan(1e-6 * Math.abs(h) + 1e-9));
    // covariance = H⁻¹: covariance · H_fd = I.
    for (let i = 0; i < 2; i++) {
      for (let j = 0; j < 2; j++) {
        const product = parameters.covariance[i * 2]! * hessian[0]![j]! + parameters.covariance[i * 2 + 1]! * hessian[1]![j]!;
        expect(Math.abs(product - (i === j ? 1 : 0))).toBeLessThan(1e-6);
      }
    }
    expect(metrics.dataPoints).toBe(8);
    expect(metrics.values?.converged).toBe(1);
    // Laplace evidence: log p(y, ŵ) + (d/2) log 2π − ½ log|H|.
    const det = hessian[0]![0]! * hessian[1]![1]! - hessian[0]![1]! * hessian[1]![0]!;
    expect(metrics.values?.logEvidence).toBeCloseTo(-f(map) + Math.log(2 * Math.PI) - 0.5 * Math.log(det), 6);
  });

  it("reports the negative log joint after each Newton step, non-increasing down to the minimum", () => {
    const { parameters, metrics } = learn(args, model.initialParameters(args, 0), tiny);
    const trace = metrics.freeEnergy!;
    expect(metrics.iterations).toBe(trace.length);
    expect(trace.length).toBeGreaterThan(2);
    expect(trace.length).toBeLessThanOrEqual(50);
    for (let i = 1; i < trace.length; i++) expect(trace[i]!).toBeLessThanOrEqual(trace[i - 1]!);
    expect(trace[0]!).toBeLessThan(f([0, 0]));
    expect(trace.at(-1)!).toBeCloseTo(f(parameters.mean), 10);
    expect(trace.at(-1)!).toBeCloseTo(f(gridMinimum(f, [0, 0], 10)), 10);
  });

  it("converges with backtracking on nearly separable data under a vague prior", () => {
    const separable = events([
      [[-3, 1], 0],
      [[-2, 0.5], 0],
      [[-1, -1], 0],
      [[-0.2, 0.3], 0],
      [[0.2, 0.1], 1],
      [[1, 2], 1],
      [[2, -0.5], 1],
      [[3, 0], 1],
      [[0.05, -0.2], 0],
    ]);
    const vague = { ...defaults, prior_variance: 1e4 };
    const { parameters, metrics } = learn(vague, model.initialParameters(vague, 0), separable);
    expect(metrics.values?.converged).toBe(1);
    const objective = (w: number[]) => negativeLogJoint(separable, w, 1e4, true);
    // Large coefficients, and a vanishing gradient there (relative to the curvature scale).
    expect(Math.abs(parameters.mean[0]!)).toBeGreaterThan(10);
    finiteDifferenceGradient(objective, parameters.mean, 1e-5).forEach((g) => expect(Math.abs(g)).toBeLessThan(1e-6));
    const trace = metrics.freeEnergy!;
    for (let i = 1; i < trace.length; i++) expect(trace[i]!).toBeLessThanOrEqual(trace[i - 1]!);
    expect(trace.at(-1)!).toBeCloseTo(objective(parameters.mean), 8);
  });

  it("backtracks when the prior sits far from the data (an incremental learn after a shift)", () => {
    // From w = 8 the logistic is saturated: the full Newton step lands near w = −2300 and plain Newton diverges.
    const args1 = { ...defaults, input_dim: 1, intercept: false };
    const prior: Parameters = { mean: [8], covariance: [1e4], precision: [1e-4] };
    const data = events(Array.from({ length: 50 }, (_, i): [number[], number] => [[1], i < 40 ? 0 : 1]));
    const { parameters, metrics } = learn(args1, prior, data);
    expect(metrics.values?.converged).toBe(1);
    // The minimum of 40·softplus(w) + 10·softplus(−w) + (w − 8)²/2e4 by bisection on its derivative.
    const derivative = (w: number) => 40 * sigma(w) - 10 * sigma(-w) + (w - 8) / 1e4;
    let [lo, hi] = [-20, 20];
    for (let i = 0; i < 200; i++) [lo, hi] = derivative((lo + hi) / 2) > 0 ? [lo, (lo + hi) / 2] : [(lo + hi) / 2, hi];
    expect(parameters.mean[0]).toBeCloseTo(lo, 10);
    const curvature = 50 * sigma(lo) * sigma(-lo) + 1e-4;
    expect(parameters.precision[0]).toBeCloseTo(curvature, 10);
    expect(parameters.covariance[0]).toBeCloseTo(1 / curvature, 8);
    const trace = metrics.freeEnergy!;
    for (let i = 1; i < trace.length; i++) expect(trace[i]!).toBeLessThanOrEqual(trace[i - 1]!);
  });

  it("recovers known coefficients from 2000 simulated cases within 4 posterior sd", () => {
    const truth = [1.5, -2, 0.5];
    const { parameters, metrics } = learn(defaults, model.initialParameters(defaults, 0), simulate(11, 2000, truth));
    expect(metrics.values?.converged).toBe(1);
    truth.forEach((w, i) => {
      const sd = Math.sqrt(parameters.covariance[i * 3 + i]!);
      expect(sd).toBeLessThan(0.15);
      expect(Math.abs(parameters.mean[i]! - w)).toBeLessThan(4 * sd);
    });
  });

  it("skips events without an outcome and learns all new events in one solve", () => {
    const prior = model.initialParameters(defaults, 0);
    const data = simulate(3, 60, [1, -1, 0]);
    const unlabelled = events([[[0.3, 0.2], undefined], [[-1, 4], undefined]]);
    const mixed = [...data.slice(0, 30), ...unlabelled, ...data.slice(30)];
    const withGaps = learn(defaults, prior, mixed);
    expect(withGaps.parameters).toEqual(learn(defaults, prior, data).parameters);
    expect(withGaps.metrics.dataPoints).toBe(60);
    expect(withGaps.metrics.values?.skippedEvents).toBe(2);
    const nothing = learn(defaults, prior, unlabelled);
    expect(nothing.parameters).toBe(prior);
    expect(nothing.metrics).toMatchObject({ dataPoints: 0, iterations: 0, freeEnergy: [] });
  });

  it("incremental learning (ADF) approximates relearning on all events when batches are large", () => {
    const data = simulate(5, 8000, [1.5, -2, 0.5]);
    const prior = model.initialParameters(defaults, 0);
    const batch = learn(defaults, prior, data).parameters;
    let incremental = prior;
    for (let k = 0; k < 8; k++) incremental = learn(defaults, incremental, data.slice(k * 1000, (k + 1) * 1000)).parameters;
    // Approximate: not the batch posterior ...
    expect(Math.max(...batch.mean.map((m, i) => Math.abs(m - incremental.mean[i]!)))).toBeGreaterThan(1e-6);
    // ... but within a tenth of a posterior sd of it, with variances within 5%, after batches of 1000 cases.
    for (let i = 0; i < 3; i++) {
      const variance = batch.covariance[i * 3 + i]!;
      expect(Math.abs(incremental.mean[i]! - batch.mean[i]!)).toBeLessThan(0.1 * Math.sqrt(variance));
      expect(Math.abs(incremental.covariance[i * 3 + i]! / variance - 1)).toBeLessThan(0.05);
    }
  });
});

describe("logistic-regression-v1 risk prediction", () => {
  /** Parameters giving the linear predictor N(mu, sd²) at x = [1, 0] without intercept. */
  const noIntercept = { ...defaults, intercept: false };
  const predictorAt = (mu: number, sd: number): Parameters => ({
    mean: [mu, 0],
    covariance: [sd * sd, 0, 0, 1],
    precision: [1 / (sd * sd), 0, 0, 1],
  });

  it("checks the Gauss–Kronrod constants: exact for polynomials of degree 23 (Kronrod) and 13 (Gauss)", () => {
    for (let k = 0; k <= 23; k++) {
      const exact = (3 ** (k + 1) - (-1) ** (k + 1)) / (k + 1); // ∫_{-1}^{3} x^k dx
      const { value, error } = gaussKronrod15((x) => x ** k, -1, 3);
      expect(Math.abs(value - exact) / Math.max(1, Math.abs(exact)), `degree ${k}`).toBeLessThan(1e-14);
      if (k <= 13) expect(error / Math.max(1, Math.abs(exact)), `degree ${k}`).toBeLessThan(1e-14);
    }
    expect(gaussKronrod15((x) => x ** 24, -1, 1).error).toBeGreaterThan(1e-6);
  });

  it("computes E[σ(z)] to 1e-13 against two independent numerical integrations (not the probit approximation)", () => {
    for (const mu of [-30, -8, -2.5, -0.3, 0, 0.7, 3, 12]) {
      for (const sd of [1e-4, 0.05, 0.5, 1, 2.5, 7, 30, 400]) {
        const reference = sd <= 2.5 ? overNormal(mu, sd) : overLogistic(mu, sd);
        const p = expectedLogistic(mu, sd);
        expect(Math.abs(p - reference), `mu ${mu}, sd ${sd}`).toBeLessThan(1e-13);
        expect(Math.abs(expectedLogistic(-mu, sd) - (1 - p))).toBeLessThan(1e-15);
        const viaModel = infer(noIntercept, predictorAt(mu, sd), [1, 0]);
        expect(value(viaModel.values?.risk_probability)).toBe(p);
        expect(viaModel.predictions?.y).toEqual({ kind: "bernoulli", p });
        expect(value(viaModel.values?.linear_predictor_mean)).toBe(mu);
        expect(value(viaModel.values?.linear_predictor_sd)).toBeCloseTo(sd, 14);
      }
    }
    // Steep logistic switches far from any fixed breakpoint of the quadrature.
    for (const [mu, sd] of [[-1234.567, 1000], [4321, 5000], [-2718.28, 3141.59], [-41, 100]] as const) {
      expect(Math.abs(expectedLogistic(mu, sd) - overLogistic(mu, sd)), `mu ${mu}, sd ${sd}`).toBeLessThan(1e-13);
    }
    // The two references agree where both are accurate.
    expect(Math.abs(overNormal(0.7, 2) - overLogistic(0.7, 2))).toBeLessThan(1e-14);
    // A known value and the probit approximation's error of order 1e-3.
    const p = expectedLogistic(2, 2);
    expect(Math.abs(p - sigma(2 / Math.sqrt(1 + (Math.PI * 4) / 8)))).toBeGreaterThan(1e-3);
    expect(expectedLogistic(1.5, 0)).toBe(sigma(1.5));
    expect(expectedLogistic(-40, 1)).toBeCloseTo(Math.exp(-39.5), 30);
  });

  it("maps the linear predictor's normal quantiles through σ for the interval, which contains p", () => {
    const q95 = 1.959963984540054;
    for (const mu of [-6, -2, -0.4, 0, 1, 3, 8]) {
      for (const sd of [0.01, 0.3, 1, 3, 20]) {
        const out = infer(noIntercept, predictorAt(mu, sd), [1, 0]);
        const [lo, hi] = out.values!.risk_interval!.values;
        expect(out.values!.risk_interval!.shape).toEqual([2]);
        expect(lo).toBeCloseTo(sigma(mu - q95 * sd), 15);
        expect(hi).toBeCloseTo(sigma(mu + q95 * sd), 15);
        const p = value(out.values?.risk_probability);
        expect(lo! <= p && p <= hi!, `mu ${mu}, sd ${sd}`).toBe(true);
        const [lo50, hi50] = infer({ ...noIntercept, credible_level: 0.5 }, predictorAt(mu, sd), [1, 0]).values!.risk_interval!.values;
        expect(lo50).toBeGreaterThan(lo!);
        expect(hi50).toBeLessThan(hi!);
      }
    }
    expect(infer({ ...noIntercept, credible_level: 1 }, predictorAt(1, 2), [1, 0]).values!.risk_interval!.values).toEqual([0, 1]);
    // Scaled inputs: μ = φᵀm and v = φᵀSφ with an intercept.
    const params: Parameters = { mean: [0.5, -1, 0.2], covariance: [0.2, 0.05, 0, 0.05, 0.1, -0.02, 0, -0.02, 0.3], precision: [] };
    const out = infer(defaults, params, [2, 1]);
    const v = 4 * 0.2 + 2 * 2 * 0.05 + 0.1 + 2 * 2 * 0 + 2 * -0.02 + 0.3;
    expect(value(out.values?.linear_predictor_mean)).toBeCloseTo(0.5 * 2 - 1 + 0.2, 15);
    expect(value(out.values?.linear_predictor_sd)).toBeCloseTo(Math.sqrt(v), 15);
  });

  it("labels risk levels with a risk equal to a threshold taking the higher level", () => {
    expect([0, 0.19999999999999998, 0.2, 0.49, 0.5, 1].map((p) => riskLevelIndex(p, [0.2, 0.5]))).toEqual([0, 0, 1, 1, 2, 2]);
    // Without an intercept, x = 0 gives z = 0 exactly: p = ½ on the default threshold.
    const zero = model.initialParameters(noIntercept, 0);
    const at = (changes: Partial<Arguments>) => infer({ ...noIntercept, ...changes }, zero, [0, 0]);
    expect(at({}).labels).toEqual({ risk_level: "high" });
    expect(value(at({}).values?.risk_level_probability)).toBe(1);
    expect(at({ risk_thresholds: [0.2, 0.5000000000000001] }).labels).toEqual({ risk_level: "medium" });
    expect(at({ risk_thresholds: [0.3, 0.4], risk_labels: ["A", "B", "C"] }).labels).toEqual({ risk_level: "C" });
    expect(at({ risk_thresholds: [0.5], risk_labels: ["no", "yes"] }).labels).toEqual({ risk_level: "yes" });
    expect(at({ risk_thresholds: [0.6], risk_labels: ["no", "yes"] }).labels).toEqual({ risk_level: "no" });
  });

  it("reports the probability that the risk lies in the reported level's band", () => {
    const logit = (p: number) => Math.log(p / (1 - p));
    for (const [mu, sd, level] of [[-0.8, 0.6, "medium"], [-3, 0.5, "low"], [2, 1.5, "high"], [-1.2, 4, "medium"]] as const) {
      const out = infer(noIntercept, predictorAt(mu, sd), [1, 0]);
      expect(out.labels?.risk_level).toBe(level);
      const band = { low: [-Infinity, logit(0.2)], medium: [logit(0.2), logit(0.5)], high: [logit(0.5), Infinity] }[level];
      const mass = (a: number) => (a === -Infinity ? 0 : a === Infinity ? 1 : normalCdfBySeries((a - mu) / sd));
      expect(value(out.values?.risk_level_probability)).toBeCloseTo(mass(band[1]!) - mass(band[0]!), 12);
    }
  });

  it("stays finite and ordered for extreme inputs (where p may leave the interval)", () => {
    const { parameters } = learn(defaults, model.initialParameters(defaults, 0), simulate(2, 200, [1, -1, 0]));
    for (const x of [[1e3, 1e3], [-1e4, 5e3], [1e-300, 0], [50, -50]]) {
      const out = infer(defaults, parameters, x);
      const p = value(out.values?.risk_probability);
      const [lo, hi] = out.values!.risk_interval!.values;
      expect(Number.isFinite(p) && p >= 0 && p <= 1).toBe(true);
      expect(0 <= lo! && lo! <= hi! && hi! <= 1).toBe(true);
      expect(defaults.risk_labels).toContain(out.labels?.risk_level);
    }
    // With extreme log-odds the mean of σ(z) can leave its central interval: z ~ N(−14641, 2390²) has
    // P(z > 0) ≈ Φ(−6.12) ≈ 4.6e-10 = E[σ(z)], above the 97.5% quantile σ(−9955) ≈ 0.
    expect(expectedLogistic(-14641, 2390)).toBeCloseTo(normalCdfBySeries(-14641 / 2390), 12);
  });
});
