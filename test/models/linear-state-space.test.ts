import { inverse, Matrix } from "ml-matrix";
import { describe, expect, it } from "vitest";
import type { Distribution } from "../../src/math/distribution.ts";
import { logpdf } from "../../src/math/distributions.ts";
import type { Tensor } from "../../src/math/tensor.ts";
import { emLearn, linearStateSpace, smooth } from "../../src/models/linear-state-space/index.ts";
import type { Fields, JsonObject } from "../../src/models/types.ts";
import { resolveArguments, validateFields } from "../../src/models/validation.ts";
import { testNormals as normals } from "../support/assertions.ts";

type Args = Parameters<typeof linearStateSpace.initialParameters>[0];
type Params = ReturnType<typeof linearStateSpace.initialParameters>;
type State = ReturnType<typeof linearStateSpace.initialState>;

const withArgs = (given: Partial<Args> = {}): Args =>
  resolveArguments(linearStateSpace.schema, given as JsonObject).arguments as unknown as Args;
const vec = (v: number[]): Tensor => ({ shape: [v.length], values: v });

const infer = (args: Args, parameters: Params, state: State, y: number[], currentState?: number[]) =>
  linearStateSpace.infer({
    arguments: args,
    parameters,
    state,
    observation: currentState ? { y: vec(y), current_state: vec(currentState) } : { y: vec(y) },
    goal: {},
    seed: 0,
    decisionIndex: 1,
  });
const learn = (args: Args, prior: Params, events: Fields[]) =>
  linearStateSpace.learn({ arguments: args, prior, state: linearStateSpace.initialState(args), events, seed: 0, options: {} });

const rotation = (theta: number) => [Math.cos(theta), -Math.sin(theta), Math.sin(theta), Math.cos(theta)];

/** x_t = A x_{t−1} + N(0, q I), y_t = x_t + N(0, r I), from x_0. */
function simulate(a: number[], n: number, x0: number[], q: number, r: number, normal: () => number) {
  const d = x0.length;
  const xs: number[][] = [];
  const ys: number[][] = [];
  let x = x0;
  for (let t = 0; t < n; t++) {
    x = x.map((_, i) => x.reduce((s, xj, j) => s + a[i * d + j]! * xj, 0) + Math.sqrt(q) * normal());
    xs.push(x);
    ys.push(x.map((v) => v + Math.sqrt(r) * normal()));
  }
  return { xs, ys };
}

function mvNormal(d: Distribution | undefined) {
  if (d?.kind !== "mvNormal") throw new Error(`expected mvNormal, got ${d?.kind}`);
  return d;
}

/**
 * The dense joint Gaussian of x_{1:T} | y_{1:T}: the prior precision is block-tridiagonal from the
 * transitions, the observations add I/r on the diagonal blocks.
 */
function denseOracle(a: number[], q: number, r: number, m1: number[], p1: number[], ys: number[][]) {
  const d = m1.length;
  const T = ys.length;
  const n = d * T;
  const A = new Matrix([a.slice(0, d), a.slice(d, 2 * d)].slice(0, d));
  const P1inv = inverse(new Matrix([p1.slice(0, d), p1.slice(d, 2 * d)].slice(0, d)));
  const J = Matrix.zeros(n, n);
  const h = Matrix.zeros(n, 1);
  const addBlock = (bi: number, bj: number, m: Matrix) => {
    for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) J.set(bi * d + i, bj * d + j, J.get(bi * d + i, bj * d + j) + m.get(i, j));
  };
  addBlock(0, 0, P1inv);
  const P1m = P1inv.mmul(Matrix.columnVector(m1));
  for (let i = 0; i < d; i++) h.set(i, 0, P1m.get(i, 0));
  const qInv = Matrix.eye(d).mul(1 / q);
  for (let t = 1; t < T; t++) {
    addBlock(t, t, qInv);
    addBlock(t - 1, t - 1, A.transpose().mmul(qInv).mmul(A));
    addBlock(t, t - 1, qInv.mmul(A).mul(-1));
    addBlock(t - 1, t, A.transpose().mmul(qInv).mul(-1));
  }
  // Prior covariance (before observations), for the marginal likelihood of y.
  const priorCov = inverse(J);
  const priorMean = priorCov.mmul(h);
  for (let t = 0; t < T; t++) {
    addBlock(t, t, Matrix.eye(d).mul(1 / r));
    for (let i = 0; i < d; i++) h.set(t * d + i, 0, h.get(t * d + i, 0) + ys[t]![i]! / r);
  }
  const cov = inverse(J);
  const mean = cov.mmul(h).to1DArray();
  const yCov = priorCov.add(Matrix.eye(n).mul(r));
  const logLikelihood = logpdf(
    { kind: "mvNormal", mean: priorMean.to1DArray(), covariance: yCov.to1DArray() },
    ys.flat(),
  );
  const block = (m: Matrix, bi: number, bj: number) => m.subMatrix(bi * d, bi * d + d - 1, bj * d, bj * d + d - 1).to1DArray();
  return { mean, cov, block, logLikelihood };
}

describe("linear-state-space-model-v1 filter and smoother", () => {
  const a = [0.9, -0.3, 0.2, 0.7];
  const q = 0.7;
  const r = 0.4;
  const m1 = [0.5, -1];
  const p1 = [1.5, 0.3, 0.3, 0.8];
  const ys = [
    [0.3, -0.8],
    [1.1, 0.2],
    [-0.4, 0.9],
    [0.6, -0.1],
  ];

  it("agrees with the dense joint Gaussian: smoothed moments, lag-one covariances and the log-likelihood", () => {
    const oracle = denseOracle(a, q, r, m1, p1, ys);
    const sm = smooth({ mean: Float64Array.from(m1), covariance: Float64Array.from(p1), ys }, Float64Array.from(a), q, r, 2);
    expect(sm.logLikelihood).toBeCloseTo(oracle.logLikelihood, 10);
    for (let t = 0; t < ys.length; t++) {
      [...sm.means[t]!].forEach((v, i) => expect(v).toBeCloseTo(oracle.mean[2 * t + i]!, 10));
      [...sm.covariances[t]!].forEach((v, i) => expect(v).toBeCloseTo(oracle.block(oracle.cov, t, t)[i]!, 10));
      if (t + 1 < ys.length) [...sm.lagOne[t]!].forEach((v, i) => expect(v).toBeCloseTo(oracle.block(oracle.cov, t + 1, t)[i]!, 10));
    }
  });

  it("infer called step by step carries the filter belief: it equals the dense posterior of the latest state", () => {
    const args = withArgs({ process_noise: q, observation_noise: r, initial_mean: 0, initial_variance: 2, horizon: 2 });
    const parameters: Params = { A: a, precision: [1, 0, 0, 1] };
    let state = linearStateSpace.initialState(args);
    for (let t = 0; t < ys.length; t++) {
      const out = infer(args, parameters, state, ys[t]!);
      state = out.state!;
      const oracle = denseOracle(a, q, r, [0, 0], [2, 0, 0, 2], ys.slice(0, t + 1));
      state.mean.forEach((v, i) => expect(v).toBeCloseTo(oracle.mean[2 * t + i]!, 10));
      state.covariance.forEach((v, i) => expect(v).toBeCloseTo(oracle.block(oracle.cov, t, t)[i]!, 10));
      expect(state.steps).toBe(t + 1);
      expect(mvNormal(out.posteriors?.state).mean).toEqual(state.mean);
    }
  });
});

describe("linear-state-space-model-v1 inference (reference semantics)", () => {
  it("with current_state and a rotation A, the belief is ((c + y)/2, I/2) and predicted covariances are (t + 0.5)·I", () => {
    const args = withArgs({ horizon: 6 });
    const A = rotation(Math.PI / 4);
    const out = infer(args, { A, precision: [1, 0, 0, 1] }, linearStateSpace.initialState(args), [2, 0], [1, 1]);
    expect(out.state!.mean).toEqual([1.5, 0.5]);
    out.state!.covariance.forEach((v, i) => expect(v).toBeCloseTo([0.5, 0, 0, 0.5][i]!, 14));
    const states = out.predictions!.states!;
    if (states.kind !== "product") throw new Error("expected a product");
    expect(states.factors).toHaveLength(6);
    let m = [1.5, 0.5];
    states.factors.forEach((f, t) => {
      const { mean, covariance } = mvNormal(f);
      m = [A[0]! * m[0]! + A[1]! * m[1]!, A[2]! * m[0]! + A[3]! * m[1]!];
      mean.forEach((v, i) => expect(v).toBeCloseTo(m[i]!, 12));
      covariance.forEach((v, i) => expect(v).toBeCloseTo([t + 1.5, 0, 0, t + 1.5][i]!, 12));
    });
  });

  it("a fresh instance starts from N(initial_mean·1, initial_variance·I); later calls predict before updating", () => {
    const args = withArgs({ initial_mean: 3, initial_variance: 4, observation_noise: 1, process_noise: 0.5, horizon: 1 });
    const A = [0.5, 0, 0, 0.5];
    const first = infer(args, { A, precision: [1, 0, 0, 1] }, linearStateSpace.initialState(args), [0, 1]);
    // Scalar per component: prior N(3, 4), y ~ N(x, 1) → mean 3 + 4/5·(y − 3), variance 4/5.
    first.state!.mean.forEach((v, i) => expect(v).toBeCloseTo(3 + 0.8 * ([0, 1][i]! - 3), 14));
    expect(first.state!.covariance[0]).toBeCloseTo(0.8, 14);
    // Second call: predicted N(0.5 m, 0.25·0.8 + 0.5 = 0.7), then updated with y = 0.
    const second = infer(args, { A, precision: [1, 0, 0, 1] }, first.state!, [0, 0]);
    const m0 = 0.5 * first.state!.mean[0]!;
    expect(second.state!.mean[0]).toBeCloseTo(m0 - (0.7 / 1.7) * m0, 14);
    expect(second.state!.covariance[0]).toBeCloseTo(0.7 / 1.7, 14);
  });
});

describe("linear-state-space-model-v1 learning", () => {
  const trueA = rotation(Math.PI / 8);
  const { ys } = simulate(trueA, 300, [1, 1], 1, 1, normals(42));
  const events: Fields[] = ys.map((y) => ({ y: vec(y) }));

  it("learns a rotation within rtol 0.1, with a free energy that never increases over the EM iterations", () => {
    const args = withArgs();
    const { parameters, metrics } = learn(args, linearStateSpace.initialParameters(args, 0), events);
    const err = Math.hypot(...parameters.A.map((v, i) => v - trueA[i]!));
    expect(err / Math.hypot(...trueA)).toBeLessThan(0.1);
    expect(metrics.dataPoints).toBe(300);
    expect(metrics.freeEnergy).toHaveLength(50);
    const fe = metrics.freeEnergy!;
    for (let k = 1; k < fe.length; k++) expect(fe[k]!).toBeLessThanOrEqual(fe[k - 1]! + 1e-9 * Math.abs(fe[k - 1]!));
    // EM made real progress, not a flat trace.
    expect(fe[0]! - fe[fe.length - 1]!).toBeGreaterThan(1);
  });

  it("the EM fixed point is a stationary point of the log posterior (finite differences)", () => {
    const seq = { mean: Float64Array.from([1, 1]), covariance: Float64Array.from([1, 0, 0, 1]), ys: ys.slice(0, 60) };
    const m0 = new Float64Array(4);
    const l0 = Float64Array.from([1, 0, 0, 1]);
    const { A } = emLearn([seq], m0, l0, m0, 1, 1, 2, 2000);
    const objective = (a: Float64Array) => {
      let prior = 0;
      for (const v of a) prior += -0.5 * v * v;
      return smooth(seq, a, 1, 1, 2).logLikelihood + prior;
    };
    for (let k = 0; k < 4; k++) {
      const plus = Float64Array.from(A);
      const minus = Float64Array.from(A);
      plus[k] = plus[k]! + 1e-5;
      minus[k] = minus[k]! - 1e-5;
      expect(Math.abs((objective(plus) - objective(minus)) / 2e-5)).toBeLessThan(1e-4);
    }
  });

  it("keeps a Gaussian over vec(A) (row-major, rows independent) as the prior of the next learn", () => {
    const args = withArgs();
    const whole = learn(args, linearStateSpace.initialParameters(args, 0), events).parameters;
    const first = learn(args, linearStateSpace.initialParameters(args, 0), events.slice(0, 150)).parameters;
    const second = learn(args, first, [{ y: vec(ys[149]!), current_state: vec(ys[149]!) }, ...events.slice(150)]).parameters;
    // Streaming with the complete-data Gaussian is approximate but lands next to the batch answer.
    expect(Math.hypot(...second.A.map((v, i) => v - whole.A[i]!))).toBeLessThan(0.02);
    // The precision has accumulated both halves' information.
    expect(second.precision[0]).toBeGreaterThan(first.precision[0]! * 1.8);
    const { A } = linearStateSpace.parameterPosteriors(second);
    const { mean, covariance } = mvNormal(A);
    expect(mean).toEqual(second.A);
    const sigma = new Matrix([second.precision.slice(0, 2), second.precision.slice(2)]);
    const rowCov = inverse(sigma).to1DArray();
    // Cov(A_ij, A_kl) = δ_ik (Λ⁻¹)_jl with element index i·d + j.
    for (let i = 0; i < 2; i++)
      for (let j = 0; j < 2; j++)
        for (let k = 0; k < 2; k++)
          for (let l = 0; l < 2; l++) {
            const expected = i === k ? rowCov[j * 2 + l]! : 0;
            expect(covariance[(i * 2 + j) * 4 + k * 2 + l]).toBeCloseTo(expected, 14);
          }
  });

  it("an event with current_state starts a new sequence, so no transition links it to the previous event", () => {
    const args = withArgs({ iterations: 5 });
    const prior = linearStateSpace.initialParameters(args, 0);
    // Two copies of a short series: joined they would contain the spurious transition y_20 → y_1.
    const part = events.slice(0, 20);
    const split = learn(args, prior, [...part, { ...part[0]!, current_state: vec([1, 1]) }, ...part.slice(1)]);
    const joined = learn(args, prior, [...part, ...part]);
    expect(split.metrics.values?.sequences).toBe(2);
    expect(joined.metrics.values?.sequences).toBe(1);
    // Two identical independent sequences: the same as one sequence with both sequences' statistics.
    const m0 = new Float64Array(4);
    const l0 = Float64Array.from([1, 0, 0, 1]);
    const seq = { mean: Float64Array.from([1, 1]), covariance: Float64Array.from([1, 0, 0, 1]), ys: ys.slice(0, 20) };
    const twice = emLearn([seq, seq], m0, l0, m0, 1, 1, 2, 5);
    split.parameters.A.forEach((v, i) => expect(v).toBeCloseTo(twice.A[i]!, 12));
    expect(joined.parameters.A.some((v, i) => Math.abs(v - twice.A[i]!) > 1e-3)).toBe(true);
  });

  it("a learn without events returns the prior itself", () => {
    const args = withArgs();
    const prior = linearStateSpace.initialParameters(args, 0);
    const out = learn(args, prior, []);
    expect(out.parameters).toBe(prior);
    expect(out.metrics.dataPoints).toBe(0);
  });
});

describe("linear-state-space-model-v1 schema", () => {
  it("has defaults for every argument and examples valid under them", () => {
    const { arguments: args, violations } = resolveArguments(linearStateSpace.schema, {});
    expect(violations).toEqual([]);
    for (const kind of ["observation", "event"] as const) {
      const specs = linearStateSpace.schema[kind];
      const fields = Object.fromEntries(specs.map((s) => [s.name, { shape: [s.example.length], values: [...s.example] }]));
      expect(validateFields(specs, fields, args, kind)).toEqual([]);
    }
    const params = linearStateSpace.initialParameters(args as unknown as Args, 0);
    expect(JSON.parse(JSON.stringify(params))).toEqual(params);
    expect(JSON.parse(JSON.stringify(linearStateSpace.initialState(args as unknown as Args)))).toEqual(
      linearStateSpace.initialState(args as unknown as Args),
    );
  });
});
