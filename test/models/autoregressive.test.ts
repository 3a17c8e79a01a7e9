import { Matrix, solve } from "ml-matrix";
import { describe, expect, it } from "vitest";
import { addObservation, emptyStats, meanFieldUpdate } from "../../src/math/linear-gaussian.ts";
import { scalar, type Tensor } from "../../src/math/tensor.ts";
import { autoregressive, filterLags, forecast, laggedStatistics } from "../../src/models/autoregressive/index.ts";
import type { Fields, JsonObject } from "../../src/models/types.ts";
import { resolveArguments, validateFields } from "../../src/models/validation.ts";
import { simulateAutoregressive as simulate } from "../support/assertions.ts";

type Args = Parameters<typeof autoregressive.initialParameters>[0];
type Params = ReturnType<typeof autoregressive.initialParameters>;
type State = ReturnType<typeof autoregressive.initialState>;

const withArgs = (given: JsonObject = {}): Args => {
  const { arguments: args, violations } = resolveArguments(autoregressive.schema, given);
  expect(violations).toEqual([]);
  return args as unknown as Args;
};
const event = (y: number, start = false): Fields => (start ? { y: scalar(y), start: scalar(1) } : { y: scalar(y) });
const learn = (args: Args, prior: Params, events: Fields[]) =>
  autoregressive.learn({ arguments: args, prior, state: autoregressive.initialState(args), events, seed: 0, options: {} });
const infer = (args: Args, parameters: Params, state: State, ys: number[], start = false) => {
  const observation: Record<string, Tensor> = { y: { shape: [ys.length], values: ys } };
  if (start) observation.start = scalar(1);
  return autoregressive.infer({ arguments: args, parameters, state, observation, goal: {}, seed: 0, decisionIndex: 0 });
};

/** A point-mass-like posterior: θ known exactly, noise variance b/a. */
const known = (theta: number[], noiseVariance: number): Params => ({
  mean: theta,
  covariance: new Array<number>(theta.length * theta.length).fill(0),
  shape: 1,
  rate: noiseVariance,
});
const observed = (lags: number[]): State => ({ mean: lags, covariance: new Array<number>(lags.length * lags.length).fill(0) });

describe("autoregressive-v1 schema", () => {
  it("has defaults for every argument and examples valid under them", () => {
    const args = withArgs();
    expect(args).toMatchObject({ order: 2, horizon: 5, observation_count: 1, iterations: 20 });
    for (const kind of ["observation", "event"] as const) {
      const specs = autoregressive.schema[kind];
      const fields = Object.fromEntries(specs.map((s) => [s.name, { shape: [], values: [...s.example] }]));
      expect(validateFields(specs, fields, args as unknown as JsonObject, kind)).toEqual([]);
    }
  });
});

describe("autoregressive-v1 learning", () => {
  it("regresses each value on its predecessors, restarting lags at the batch start and at start = 1, values of one event in order", () => {
    const events: Fields[] = [event(1), { y: { shape: [3], values: [2, 3, 4] } }, event(5), event(10, true), event(11), event(12)];
    const { stats, observations } = laggedStatistics(events, 2);
    expect(observations).toBe(8);
    // Rows: [2,1]→3, [3,2]→4, [4,3]→5, then a new sequence 10, 11 → [11,10]→12.
    const expected = emptyStats(2);
    for (const [x, y] of [[[2, 1], 3], [[3, 2], 4], [[4, 3], 5], [[11, 10], 12]] as Array<[number[], number]>) addObservation(expected, x, y);
    expect(stats).toEqual(expected);
  });

  it("runs mean-field VB on the lagged statistics with a non-increasing free energy, and its mean is the least-squares fit", () => {
    const args = withArgs({ order: 3 });
    const ys = simulate([0.8, -0.5, 0.3], 10, 500, 3);
    const { parameters, metrics } = learn(args, autoregressive.initialParameters(args, 0), ys.map((y) => event(y)));
    expect(metrics.dataPoints).toBe(497);
    expect(metrics.values?.observations).toBe(500);
    const trace = metrics.freeEnergy!;
    expect(trace).toHaveLength(20);
    for (let i = 1; i < trace.length; i++) expect(trace[i]!).toBeLessThanOrEqual(trace[i - 1]! + 1e-9 * Math.abs(trace[i - 1]!));
    const { stats } = laggedStatistics(ys.map((y) => event(y)), 3);
    expect(parameters).toEqual(meanFieldUpdate(autoregressive.initialParameters(args, 0), stats, 20).posterior);
    // Independent: ordinary least squares on the explicit design matrix (the prior precision 1e-6 is negligible).
    const rows = ys.slice(3).map((_, t) => [ys[t + 2]!, ys[t + 1]!, ys[t]!]);
    const ols = solve(new Matrix(rows), Matrix.columnVector(ys.slice(3))).to1DArray();
    parameters.mean.forEach((v, i) => expect(v).toBeCloseTo(ols[i]!, 6));
  });

  it("recovers θ and τ within 4 posterior sds from 2000 values", () => {
    for (const [order, seed] of [[2, 11], [3, 12]] as const) {
      const theta = [0.8, -0.5, 0.3].slice(0, order);
      const args = withArgs({ order });
      const { parameters } = learn(args, autoregressive.initialParameters(args, 0), simulate(theta, 10, 2000, seed).map((y) => event(y)));
      theta.forEach((v, i) => expect(Math.abs(parameters.mean[i]! - v) / Math.sqrt(parameters.covariance[i * order + i]!)).toBeLessThan(4));
      const { shape, rate } = parameters;
      expect(Math.abs(shape / rate - 10) / (Math.sqrt(shape) / rate)).toBeLessThan(4);
    }
  });

  it("leaves the parameters bit-identical when no lag vector is complete", () => {
    const args = withArgs({ order: 3 });
    const prior = autoregressive.initialParameters(args, 0);
    const out = learn(args, prior, [event(1), event(2), event(3, true)]);
    expect(out.parameters).toBe(prior);
    expect(out.metrics.dataPoints).toBe(0);
  });
});

describe("autoregressive-v1 inference", () => {
  it("with θ known, forecasts the AR recursion and variances σ²·Σψ_j² (impulse response)", () => {
    const theta = [0.8, -0.5, 0.3];
    const sigma2 = 0.1;
    const lags = [1.2, -0.4, 0.7];
    const { mean, variance } = forecast(known(theta, sigma2), observed(lags), 3, 6);
    // Independent: the point recursion for the means, and ψ_0 = 1, ψ_j = Σ_i θ_i ψ_{j−i} for the variances.
    const path = [...lags].reverse();
    const psi = [1];
    for (let h = 0; h < 6; h++) {
      const next = theta.reduce((s, t, i) => s + t * path[path.length - 1 - i]!, 0);
      path.push(next);
      expect(mean[h]).toBeCloseTo(next, 12);
      const sum = psi.reduce((s, p) => s + p * p, 0);
      expect(variance[h]).toBeCloseTo(sigma2 * sum, 12);
      psi.push(theta.reduce((s, t, i) => s + t * (psi[psi.length - 1 - i] ?? 0), 0));
    }
  });

  it("one step ahead with observed lags is N(mᵀx, xᵀΣx + b/a)", () => {
    const parameters: Params = { mean: [0.6, -0.2], covariance: [0.04, 0.01, 0.01, 0.09], shape: 20, rate: 3 };
    const { mean, variance } = forecast(parameters, observed([2, -1]), 2, 1);
    expect(mean[0]).toBeCloseTo(1.4, 14);
    expect(variance[0]).toBeCloseTo(4 * 0.04 - 2 * 2 * 0.01 + 0.09 + 3 / 20, 14);
  });

  it("conditions unknown initial lags on an observation like the information-form posterior", () => {
    const args = withArgs({ order: 2, initial_variance: 2 });
    const sigma2 = 0.3;
    const parameters = known([0.7, -0.4], sigma2);
    const after = filterLags(parameters, autoregressive.initialState(args), 2, [1.5]);
    // Independent: x ~ N(0, 2I), y = θᵀx + ε: posterior precision 0.5·I + θθᵀ/σ², mean = Λ⁻¹θy/σ².
    const precision = new Matrix([[0.5 + 0.49 / sigma2, -0.28 / sigma2], [-0.28 / sigma2, 0.5 + 0.16 / sigma2]]);
    const covariance = solve(precision, Matrix.eye(2));
    const m = covariance.mmul(Matrix.columnVector([0.7 * 1.5 / sigma2, -0.4 * 1.5 / sigma2])).to1DArray();
    // New lags [y, x_old[0]]: y exact, the older lag keeps its posterior.
    expect(after.mean[0]).toBe(1.5);
    expect(after.mean[1]).toBeCloseTo(m[0]!, 12);
    expect(after.covariance[3]).toBeCloseTo(covariance.get(0, 0), 12);
    expect([after.covariance[0], after.covariance[1], after.covariance[2]]).toEqual([0, 0, 0]);
  });

  it("carries the filter state: two calls with halves equal one call with everything", () => {
    const args = withArgs({ order: 3, horizon: 4 });
    const parameters: Params = { mean: [0.7, -0.3, 0.2], covariance: [0.02, 0, 0.01, 0, 0.03, 0, 0.01, 0, 0.02], shape: 30, rate: 3 };
    const ys = simulate([0.8, -0.5, 0.3], 10, 9, 4);
    const whole = infer(args, parameters, autoregressive.initialState(args), ys);
    const first = infer(args, parameters, autoregressive.initialState(args), ys.slice(0, 4));
    const second = infer(args, parameters, first.state!, ys.slice(4));
    expect(second.state).toEqual(whole.state);
    expect(second.values).toEqual(whole.values);
    expect(second.predictions).toEqual(whole.predictions);
    // start = 1 forgets what came before.
    const restarted = infer(args, parameters, first.state!, ys, true);
    expect(restarted.values).toEqual(whole.values);
    expect(whole.state!.mean).toEqual([ys[8], ys[7], ys[6]]);
    expect(whole.values!.y_mean!.shape).toEqual([4]);
    const y = whole.predictions!.y!;
    expect(y.kind === "product" && y.factors.map((f) => f.kind)).toEqual(["normal", "normal", "normal", "normal"]);
  });
});
