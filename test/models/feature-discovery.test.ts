import { Matrix, inverse, solve } from "ml-matrix";
import { describe, expect, it } from "vitest";
import { addObservation, emptyStats, meanFieldUpdate } from "../../src/math/linear-gaussian.ts";
import { scalar, type Tensor } from "../../src/math/tensor.ts";
import { basis, basisSize, featureDiscovery } from "../../src/models/feature-discovery/index.ts";
import type { Fields, JsonObject } from "../../src/models/types.ts";
import { resolveArguments, resolveShape, validateFields } from "../../src/models/validation.ts";
import { testNormals as normals } from "../support/assertions.ts";

type Args = Parameters<typeof featureDiscovery.initialParameters>[0];
type Params = ReturnType<typeof featureDiscovery.initialParameters>;

const withArgs = (given: JsonObject): Args => {
  const { arguments: args, violations } = resolveArguments(featureDiscovery.schema, given);
  expect(violations).toEqual([]);
  return args as unknown as Args;
};
const point = (x: number[]): Tensor => ({ shape: [x.length], values: x });
const event = (x: number[], y?: number): Fields => (y === undefined ? { x: point(x) } : { x: point(x), y: scalar(y) });
const learn = (args: Args, prior: Params, events: Fields[]) =>
  featureDiscovery.learn({ arguments: args, prior, state: {}, events, seed: 0, options: {} });
const infer = (args: Args, parameters: Params, x: number[]) =>
  featureDiscovery.infer({ arguments: args, parameters, state: {}, observation: { x: point(x) }, goal: {}, seed: 0, decisionIndex: 1 });

function simulate(d: number, n: number, f: (x: number[]) => number, precision: number, seed: number) {
  const normal = normals(seed);
  const xs = Array.from({ length: n }, () => Array.from({ length: d }, normal));
  const ys = xs.map((x) => f(x) + normal() / Math.sqrt(precision));
  return { xs, ys, events: xs.map((x, i) => event(x, ys[i])) };
}

const sigmoid = (v: number) => 1 / (1 + Math.exp(-v));

describe("feature-discovery-v1 basis functions", () => {
  it("concatenates linear, quadratic, adjacent pairwise and triplewise products in order", () => {
    const [a, b, c, d] = [0.5, -2, 3, 1.5];
    expect(basis([a, b, c, d], ["linear", "quadratic", "pairwise", "triplewise"])).toEqual([
      a, b, c, d, a * a, b * b, c * c, d * d, a * b, b * c, c * d, a * b * c, b * c * d,
    ]);
    expect(basis([a, b, c], ["triplewise", "linear"])).toEqual([a * b * c, a, b, c]);
    expect(basis([a], ["linear", "quadratic", "pairwise", "triplewise"])).toEqual([a, a * a]);
  });

  it("applies modifiers after the product, and accepts the reference's 'tripplewise'", () => {
    const x = [0.5, -2, 3];
    expect(basis(x, ["linear:sigmoid", "pairwise:abs", "tripplewise:tanh", "quadratic:tanh"])).toEqual([
      sigmoid(0.5), sigmoid(-2), sigmoid(3), 1, 6, Math.tanh(-3), Math.tanh(0.25), Math.tanh(4), Math.tanh(9),
    ]);
  });

  it("has 4D − 3 functions with the defaults for D ≥ 2, and 2 for D = 1", () => {
    const functions = ["linear", "quadratic", "pairwise", "triplewise"];
    for (const d of [2, 3, 4, 6]) expect(basisSize(functions, d)).toBe(4 * d - 3);
    expect(basisSize(functions, 1)).toBe(2);
  });

  it("accepts exactly the families and modifiers it knows", () => {
    const schema = featureDiscovery.schema;
    expect(schema.arguments.find((a) => a.name === "functions")?.choices).toHaveLength(20);
    for (const functions of [["cubic"], ["linear:exp"], ["linear", "pairwise:"], ["linear:tanh:abs"]]) {
      expect(resolveArguments(schema, { functions }).violations.map((v) => [v.field, v.reason])).toEqual([
        ["arguments.functions", "ARGUMENTS_NOT_VALID"],
      ]);
    }
  });
});

describe("feature-discovery-v1 schema and prior", () => {
  it("has a default for every argument, and examples valid under the defaults", () => {
    const args = withArgs({});
    expect(args).toEqual({ functions: ["linear", "quadratic", "pairwise", "triplewise"], input_dim: 2, number_of_iterations: 25 });
    for (const kind of ["observation", "event"] as const) {
      const specs = featureDiscovery.schema[kind];
      const fields = Object.fromEntries(specs.map((s) => [s.name, { shape: resolveShape(s.shape, args as never), values: [...s.example] }]));
      expect(validateFields(specs, fields, args as never, kind)).toEqual([]);
    }
  });

  it("starts from ω ~ N(0, 1e6·I), τ ~ Gamma(1e-12, rate 1e-8) and answers with the prior predictive", () => {
    const args = withArgs({});
    const prior = featureDiscovery.initialParameters(args, 0);
    expect(prior.mean).toEqual([0, 0, 0, 0, 0]);
    expect(prior.covariance).toEqual(Matrix.eye(5, 5, 1e6).to1DArray());
    expect([prior.shape, prior.rate]).toEqual([1e-12, 1e-8]);
    const x = [0.3, -0.8];
    const phi = basis(x, args.functions);
    const out = infer(args, prior, x);
    const y = out.predictions!.y!;
    if (y.kind !== "normal") throw new Error("expected a Normal");
    expect(y.mean).toBe(0);
    expect(y.variance / (1e6 * phi.reduce((s, v) => s + v * v, 0) + 1e4) - 1).toBeCloseTo(0, 14);
  });
});

describe("feature-discovery-v1 learning", () => {
  it("is mean-field VB on the basis statistics, and predicts φᵀm with variance φᵀSφ + b/a", () => {
    const args = withArgs({ input_dim: 3, number_of_iterations: 12 });
    const { xs, ys, events } = simulate(3, 200, (x) => 2 * x[0]! - x[1]! * x[2]!, 4, 5);
    const prior = featureDiscovery.initialParameters(args, 0);
    const { parameters, metrics } = learn(args, prior, events);
    const stats = emptyStats(9);
    xs.forEach((x, i) => addObservation(stats, basis(x, args.functions), ys[i]!));
    const expected = meanFieldUpdate(prior, stats, 12);
    expect(parameters).toEqual(expected.posterior);
    expect(metrics).toEqual({ dataPoints: 200, iterations: 12, freeEnergy: expected.freeEnergy });

    const x = [0.2, 0.9, -0.4];
    const phi = Matrix.columnVector(basis(x, args.functions));
    const mean = phi.transpose().mmul(Matrix.columnVector(parameters.mean)).get(0, 0);
    const spread = phi.transpose().mmul(Matrix.from1DArray(9, 9, parameters.covariance)).mmul(phi).get(0, 0);
    const out = infer(args, parameters, x);
    const y = out.predictions!.y!;
    if (y.kind !== "normal") throw new Error("expected a Normal");
    expect(y.mean).toBeCloseTo(mean, 12);
    expect(y.variance).toBeCloseTo(spread + parameters.rate / parameters.shape, 12);
    expect(out.values).toEqual({ y_mean: scalar(y.mean), y_variance: scalar(y.variance) });
  });

  it("converges to the least-squares weights and the noise precision on plenty of data", () => {
    const args = withArgs({ input_dim: 3 });
    const f = (x: number[]) => x[0]! * x[1]! * x[2]! - x[0]! * x[1]! - 2 * x[1]! * x[2]! + 3 * x[0]! + 2 * x[1]! + x[2]!;
    const { xs, ys, events } = simulate(3, 1500, f, 5, 17);
    const { parameters, metrics } = learn(args, featureDiscovery.initialParameters(args, 0), events);
    const design = new Matrix(xs.map((x) => basis(x, args.functions)));
    const ols = solve(design.transpose().mmul(design), design.transpose().mmul(Matrix.columnVector(ys))).to1DArray();
    parameters.mean.forEach((m, i) => expect(m).toBeCloseTo(ols[i]!, 6));
    // Truth: ω = [3, 2, 1, 0, 0, 0, −1, −2, 1]; its posterior sd is about 0.02.
    [3, 2, 1, 0, 0, 0, -1, -2, 1].forEach((w, i) => expect(Math.abs(parameters.mean[i]! - w)).toBeLessThan(0.1));
    expect(Math.abs(parameters.shape / parameters.rate / 5 - 1)).toBeLessThan(0.1);
    // Covariance at the fixed point: (S0⁻¹ + E[τ]ΦᵀΦ)⁻¹.
    const eTau = parameters.shape / parameters.rate;
    const s = inverse(Matrix.add(Matrix.mul(design.transpose().mmul(design), eTau), Matrix.eye(9, 9, 1e-6))).to1DArray();
    parameters.covariance.forEach((c, i) => expect(c).toBeCloseTo(s[i]!, 10));
    expect(metrics.freeEnergy).toHaveLength(25);
  });

  it("reproduces the reference free-energy check: x = [i], y = i, 10 iterations, strictly decreasing", () => {
    const args = withArgs({ input_dim: 1, number_of_iterations: 10 });
    const events = Array.from({ length: 10 }, (_, i) => event([i + 1], i + 1));
    const { metrics } = learn(args, featureDiscovery.initialParameters(args, 0), events);
    expect(metrics.freeEnergy).toHaveLength(10);
    expect(metrics.freeEnergy!.every(Number.isFinite)).toBe(true);
    for (let i = 1; i < 10; i++) expect(metrics.freeEnergy![i]!).toBeLessThan(metrics.freeEnergy![i - 1]!);
  });

  it("uses the stored posterior as the next prior: close to, but not the same as, one batch", () => {
    const args = withArgs({ input_dim: 2 });
    const { events } = simulate(2, 400, (x) => x[0]! * x[1]! + x[0]!, 3, 23);
    const prior = featureDiscovery.initialParameters(args, 0);
    const streamed = learn(args, learn(args, prior, events.slice(0, 300)).parameters, events.slice(300)).parameters;
    const batch = learn(args, prior, events).parameters;
    expect(streamed.mean).not.toEqual(batch.mean);
    streamed.mean.forEach((m, i) => expect(Math.abs(m - batch.mean[i]!)).toBeLessThan(0.02));
    expect(streamed.shape).toBe(batch.shape);
    expect(Math.abs(streamed.rate / batch.rate - 1)).toBeLessThan(0.05);
  });

  it("skips events without y; with none the parameters come back bit-identical", () => {
    const args = withArgs({});
    const learned = learn(args, featureDiscovery.initialParameters(args, 0), simulate(2, 50, (x) => x[0]!, 2, 3).events).parameters;
    const idle = learn(args, learned, [event([0.1, 0.2]), event([0.3, 0.4])]);
    expect(idle.parameters).toBe(learned);
    expect(idle.metrics).toEqual({ dataPoints: 0, iterations: 0, freeEnergy: [] });
    const mixed = learn(args, learned, [event([0.1, 0.2]), event([0.5, 0.5], 1), event([0.3, 0.4])]);
    expect(mixed.parameters).toEqual(learn(args, learned, [event([0.5, 0.5], 1)]).parameters);
    expect(mixed.metrics.dataPoints).toBe(1);
  });

  it("works with no basis functions at all (pure noise model)", () => {
    const args = withArgs({ input_dim: 1, functions: ["pairwise"] });
    const prior = featureDiscovery.initialParameters(args, 0);
    expect(prior.mean).toEqual([]);
    const { parameters } = learn(args, prior, [event([1], 2), event([2], -2)]);
    expect(parameters.shape).toBeCloseTo(1, 9);
    expect(parameters.rate).toBeCloseTo(4, 6);
    expect(infer(args, parameters, [3]).predictions!.y).toEqual({ kind: "normal", mean: 0, variance: parameters.rate / parameters.shape });
  });
});
