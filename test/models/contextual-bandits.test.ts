import { Matrix, inverse } from "ml-matrix";
import { describe, expect, it } from "vitest";
import type { Distribution } from "../../src/math/distribution.ts";
import { deriveSeed } from "../../src/math/random.ts";
import { normalCdf, normalQuantile } from "../../src/math/special.ts";
import { type Tensor, scalar, vector } from "../../src/math/tensor.ts";
import { contextualBandits as model } from "../../src/models/contextual-bandits/index.ts";
import type { Fields } from "../../src/models/types.ts";
import { validateData } from "../../src/models/validation.ts";
import { testRandom } from "../support/assertions.ts";

type Args = Parameters<typeof model.initialParameters>[0];
type Params = ReturnType<typeof model.initialParameters>;

const argsWith = (overrides: Partial<Args> = {}): Args => ({
  n_arms: 3,
  context_dim: 2,
  intercept: true,
  prior_precision: 1,
  noise_shape: 1,
  noise_rate: 1,
  propensity_draws: 1000,
  ...overrides,
});

const infer = (args: Args, parameters: Params, context: number[], seed: number) => {
  const out = model.infer({ arguments: args, parameters, state: {}, observation: { context: vector(context) }, goal: {}, seed, decisionIndex: 1 });
  return {
    arm: out.actions!.arm!.values[0]!,
    propensity: out.values!.propensity!.values[0]!,
    probabilities: [...out.values!.arm_probabilities!.values],
    rewards: [...out.values!.sampled_rewards!.values],
    expected: out.posteriors!.expected_reward!,
  };
};

const learn = (args: Args, prior: Params, events: Fields[]) => model.learn({ arguments: args, prior, state: {}, events, seed: 0, options: {} });

/** Standard normals from the test's own generator (Box–Muller), independent of the model's. */
function gaussian(rand: () => number): () => number {
  return () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
}

interface Simulation {
  events: Fields[];
  truth: number[][];
}

/** Events with uniformly random arms, contexts in [−1, 1]^d and rewards θ_kᵀ[1, c] + N(0, sd²). */
function simulate(seed: number, truth: number[][], n: number, sd: number): Simulation {
  const rand = testRandom(seed);
  const normal = gaussian(rand);
  const d = truth[0]!.length - 1;
  const events: Fields[] = [];
  for (let i = 0; i < n; i++) {
    const arm = Math.floor(rand() * truth.length);
    const context = Array.from({ length: d }, () => 2 * rand() - 1);
    const theta = truth[arm]!;
    const mean = theta[0]! + context.reduce((s, c, j) => s + c * theta[j + 1]!, 0);
    events.push({ context: vector(context), arm: scalar(arm), reward: scalar(mean + sd * normal()) });
  }
  return { events, truth };
}

const factors = (d: Distribution) => {
  if (d.kind !== "product") throw new Error(`expected a product, got ${d.kind}`);
  return d.factors;
};

/** The exact Normal-Gamma posterior of one arm, computed independently with ml-matrix. */
function referencePosterior(args: Args, events: Fields[], arm: number) {
  const rows = events.filter((e) => e.arm?.values[0] === arm);
  const x = new Matrix(rows.map((e) => [1, ...e.context!.values]));
  const y = Matrix.columnVector(rows.map((e) => e.reward!.values[0]!));
  const precision = x.transpose().mmul(x).add(Matrix.eye(x.columns).mul(args.prior_precision));
  const covarianceUnit = inverse(precision);
  const mean = covarianceUnit.mmul(x.transpose().mmul(y));
  const a = args.noise_shape + rows.length / 2;
  const b = args.noise_rate + 0.5 * (y.transpose().mmul(y).get(0, 0) - mean.transpose().mmul(precision).mmul(mean).get(0, 0));
  return { mean: mean.getColumn(0), covarianceUnit, a, b };
}

describe("contextual-bandits-v1 schema and prior", () => {
  it("starts every arm at the prior; examples are valid under the default arguments", () => {
    const args = argsWith();
    const params = model.initialParameters(args, 0);
    expect(params.arms).toHaveLength(3);
    for (const arm of params.arms) expect(arm).toEqual({ mean: [0, 0, 0], precision: [1, 0, 0, 0, 1, 0, 0, 0, 1], shape: 1, rate: 1 });
    const posteriors = model.parameterPosteriors(params);
    expect(factors(posteriors.weights!)).toHaveLength(3);
    expect(factors(posteriors.noise_precision!)).toEqual(Array(3).fill({ kind: "gamma", shape: 1, rate: 1 }));
    for (const kind of ["observation", "event"] as const) {
      const example: Record<string, Tensor> = {};
      for (const f of model.schema[kind]) example[f.name] = { shape: f.shape.length === 0 ? [] : [f.example.length], values: f.example };
      expect(validateData(model, kind, example, args as never, kind)).toEqual([]);
    }
    for (const a of model.schema.arguments) expect(a.default).toBeDefined();
    expect(model.schema.stochastic).toBe(true);
  });
});

describe("contextual-bandits-v1 Thompson sampling", () => {
  const args = argsWith();
  const truth = [
    [0.5, 1, -1],
    [0.2, -0.5, 0.8],
    [0.4, 0.3, 0.3],
  ];
  const trained = learn(args, model.initialParameters(args, 0), simulate(11, truth, 60, 0.5).events).parameters;

  it("is a function of the seed: the same seed gives the same decision, other seeds vary it", () => {
    const first = infer(args, trained, [0.3, 0.1], 12345);
    expect(infer(args, trained, [0.3, 0.1], 12345)).toEqual(first);
    const arms = new Set(Array.from({ length: 60 }, (_, i) => infer(argsWith({ propensity_draws: 100 }), trained, [0.3, 0.1], i + 1).arm));
    expect(arms.size).toBeGreaterThan(1);
  });

  it("plays the arm whose Thompson draw is largest, and the propensity is that arm's probability", () => {
    for (let seed = 1; seed <= 200; seed++) {
      const r = infer(argsWith({ propensity_draws: 100 }), trained, [seed / 100 - 1, 0.5], seed);
      expect(Number.isInteger(r.arm) && r.arm >= 0 && r.arm < 3).toBe(true);
      expect(r.rewards[r.arm]).toBe(Math.max(...r.rewards));
      expect(r.propensity).toBe(r.probabilities[r.arm]);
      expect(r.propensity).toBeGreaterThanOrEqual(1 / 101);
      expect(r.probabilities.reduce((s, p) => s + p, 0)).toBeCloseTo(1, 12);
    }
  });

  it("breaks ties towards the lowest index", () => {
    // Without an intercept and with a zero context every arm's draw is exactly 0.
    const noIntercept = argsWith({ intercept: false, n_arms: 4 });
    const r = infer(noIntercept, model.initialParameters(noIntercept, 0), [0, 0], 99);
    expect([r.arm, r.rewards, r.probabilities]).toEqual([0, [0, 0, 0, 0], [1, 0, 0, 0]]);
  });

  it("chooses the same arm whatever the number of propensity draws", () => {
    for (let seed = 1; seed <= 10; seed++) {
      const few = infer(argsWith({ propensity_draws: 100 }), trained, [0.2, -0.4], seed);
      const many = infer(argsWith({ propensity_draws: 2000 }), trained, [0.2, -0.4], seed);
      expect([many.arm, many.rewards]).toEqual([few.arm, few.rewards]);
    }
  });

  it("reports propensities that match the policy's choice frequency over many decisions", () => {
    // Decisions at one context, seeded as the server seeds decisions 1..N of one episode. The reported
    // probability of arm k estimates P(choose k) without bias; over N decisions, freq_k − mean p̂_k has
    // standard error √(p(1−p)·M/((M+1)N)) (the decision's own round is shared by both).
    const m = 100;
    const n = 2000;
    const few = argsWith({ propensity_draws: m });
    const context = [-0.3, -0.3]; // where the arms' probabilities are about 0.55, 0.22 and 0.23
    const chosen = new Array<number>(3).fill(0);
    const reported = new Array<number>(3).fill(0);
    for (let i = 1; i <= n; i++) {
      const r = infer(few, trained, context, deriveSeed(2024, "default", i));
      chosen[r.arm]! += 1;
      r.probabilities.forEach((p, k) => (reported[k]! += p / n));
    }
    expect(Math.max(...reported)).toBeGreaterThan(0.45); // far from uniform, so the comparison is informative
    for (let k = 0; k < 3; k++) {
      const p = reported[k]!;
      expect(p).toBeGreaterThan(0.1);
      const se = Math.sqrt((p * (1 - p) * m) / ((m + 1) * n));
      expect(Math.abs(chosen[k]! / n - p)).toBeLessThan(4 * se);
    }
    // Each decision's propensity is within its own Monte-Carlo error of a precise estimate.
    const reference = infer(argsWith({ propensity_draws: 100000 }), trained, context, 7).probabilities;
    for (let i = 1; i <= 20; i++) {
      const r = infer(args, trained, context, deriveSeed(2024, "default", i));
      const p = reference[r.arm]!;
      const se = Math.sqrt(p * (1 - p) * (1 / 1001 + 1 / 100001));
      expect(Math.abs(r.propensity - p)).toBeLessThan(4 * se + 1 / 1001);
    }
  });

  it("with two arms and tight posteriors, the propensity is the Gaussian closed form Φ((μ1 − μ0)/√(v0 + v1))", () => {
    const two = argsWith({ n_arms: 2, context_dim: 1, propensity_draws: 100000 });
    const { events } = simulate(5, [[0, 1], [0.3, 0.5]], 8000, 0.1);
    const posterior = learn(two, model.initialParameters(two, 0), events).parameters;
    const refs = [0, 1].map((k) => referencePosterior(two, events, k));
    // P(arm 1 beats arm 0) at c, from the reference posteriors (variance of φᵀθ = b/(a−1)·φᵀΛ⁻¹φ).
    const closedForm = (c: number) => {
      const phi = Matrix.columnVector([1, c]);
      const [mu0, mu1] = refs.map((r) => r.mean[0]! + c * r.mean[1]!);
      const [v0, v1] = refs.map((r) => (r.b / (r.a - 1)) * phi.transpose().mmul(r.covarianceUnit).mmul(phi).get(0, 0));
      return normalCdf((mu1! - mu0!) / Math.sqrt(v0! + v1!));
    };
    // The context where the closed form is 0.3, by bisection (arm 1 is better below c ≈ 0.6).
    let [lo, hi] = [0.4, 0.8];
    for (let i = 0; i < 60; i++) {
      const mid = (lo + hi) / 2;
      if (closedForm(mid) > 0.3) lo = mid;
      else hi = mid;
    }
    const c = (lo + hi) / 2;
    const p = closedForm(c);
    expect(p).toBeCloseTo(0.3, 6);
    expect(normalQuantile(p)).toBeCloseTo(normalQuantile(0.3), 4);
    const r = infer(two, posterior, [c], 31337);
    // Monte-Carlo error of M + 1 = 100001 rounds, plus < 1e-4 for Student-t (ν ≈ 8000) against normal.
    const se = Math.sqrt((p * (1 - p)) / 100001);
    expect(Math.abs(r.probabilities[1]! - p)).toBeLessThan(4 * se + 1e-4);
  });

  it("reports each arm's expected-reward posterior at the context", () => {
    const { events } = simulate(3, truth, 300, 0.1);
    const posterior = learn(args, model.initialParameters(args, 0), events).parameters;
    const context = [0.4, -0.7];
    const r = infer(args, posterior, context, 1);
    const phi = Matrix.columnVector([1, ...context]);
    factors(r.expected).forEach((f, k) => {
      const ref = referencePosterior(args, events, k);
      expect(f.kind).toBe("studentT");
      if (f.kind !== "studentT") return;
      expect(f.degreesOfFreedom).toBeCloseTo(2 * ref.a, 10);
      expect(f.location).toBeCloseTo(ref.mean[0]! + context[0]! * ref.mean[1]! + context[1]! * ref.mean[2]!, 10);
      const scale2 = (ref.b / ref.a) * phi.transpose().mmul(ref.covarianceUnit).mmul(phi).get(0, 0);
      expect(f.scale).toBeCloseTo(Math.sqrt(scale2), 10);
      // The draw of arm k lies within the bulk of its posterior.
      expect(Math.abs(r.rewards[k]! - f.location) / f.scale).toBeLessThan(6);
    });
  });
});

describe("contextual-bandits-v1 learning", () => {
  const args = argsWith();
  const truth = [
    [0.5, 1, -1],
    [-0.2, 0.3, 0.8],
    [1, -0.5, 0],
  ];

  it("recovers each arm's weights and the noise precision from simulated data (noise sd 0.1)", () => {
    // Vague priors: with the defaults, weights of size 1 are ~10 prior sds at τ = 100 (the Normal-Gamma prior scales the
    // weights' prior with the noise), which pulls the posterior of τ down until there is much more data.
    const vague = argsWith({ prior_precision: 1e-3, noise_rate: 1e-2 });
    const { events } = simulate(42, truth, 900, 0.1);
    const { parameters, metrics } = learn(vague, model.initialParameters(vague, 0), events);
    expect(metrics.dataPoints).toBe(900);
    const posteriors = model.parameterPosteriors(parameters);
    factors(posteriors.weights!).forEach((w, k) => {
      if (w.kind !== "mvNormal") throw new Error("expected mvNormal weights");
      w.mean.forEach((m, j) => {
        const sd = Math.sqrt(w.covariance[j * 3 + j]!);
        expect(sd).toBeLessThan(0.02);
        expect(Math.abs(m - truth[k]![j]!)).toBeLessThan(4 * sd);
      });
      const ref = referencePosterior(vague, events, k);
      w.mean.forEach((m, j) => expect(m).toBeCloseTo(ref.mean[j]!, 9));
    });
    factors(posteriors.noise_precision!).forEach((g) => {
      if (g.kind !== "gamma") throw new Error("expected gamma");
      const [mean, sd] = [g.shape / g.rate, Math.sqrt(g.shape) / g.rate];
      expect(Math.abs(mean - 100)).toBeLessThan(4 * sd);
    });
  });

  it("learns the same posterior incrementally, in one batch, or from several episodes' events", () => {
    const { events } = simulate(8, truth, 200, 0.3);
    const prior = model.initialParameters(args, 0);
    const once = learn(args, prior, events).parameters;
    let stepwise = prior;
    for (const chunk of [events.slice(0, 17), events.slice(17, 120), events.slice(120)]) stepwise = learn(args, stepwise, chunk).parameters;
    once.arms.forEach((arm, k) => {
      const other = stepwise.arms[k]!;
      arm.mean.forEach((m, j) => expect(other.mean[j]).toBeCloseTo(m, 9));
      arm.precision.forEach((p, j) => expect(other.precision[j]).toBeCloseTo(p, 9));
      expect(other.shape).toBe(arm.shape);
      expect(other.rate).toBeCloseTo(arm.rate, 8);
    });
  });

  it("skips events without arm and reward (stored infer observations); with none usable it returns the prior", () => {
    const { events } = simulate(9, truth, 50, 0.3);
    const observations = events.map((e) => ({ context: e.context! }));
    const mixed = events.flatMap((e, i) => [observations[i]!, e]);
    const prior = model.initialParameters(args, 0);
    const plain = learn(args, prior, events);
    const withSkips = learn(args, prior, mixed);
    expect(withSkips.parameters).toEqual(plain.parameters);
    expect(withSkips.metrics.dataPoints).toBe(50);
    expect(withSkips.metrics.values).toEqual({ skipped_events: 50 });
    const none = learn(args, plain.parameters, observations);
    expect(none.parameters).toBe(plain.parameters);
    expect(none.metrics.dataPoints).toBe(0);
  });

  it("leaves arms without data at their prior and reports the negative log evidence", () => {
    const { events } = simulate(10, truth, 40, 0.3);
    const onlyArm1 = events.filter((e) => e.arm!.values[0] === 1);
    const prior = model.initialParameters(args, 0);
    const { parameters, metrics } = learn(args, prior, onlyArm1);
    expect(parameters.arms[0]).toEqual(prior.arms[0]);
    expect(parameters.arms[2]).toEqual(prior.arms[2]);
    // −log p(rewards) = Σ of sequential predictive surprises (Student-t predictive of each reward).
    let surprise = 0;
    let current = prior;
    for (const e of onlyArm1) {
      const arm = current.arms[1]!;
      const r = infer(args, current, [...e.context!.values], 1).expected;
      const f = factors(r)[1]!;
      if (f.kind !== "studentT") throw new Error("expected studentT");
      // Predictive scale² = expected-reward scale² + b/a.
      const scale = Math.sqrt(f.scale * f.scale + arm.rate / arm.shape);
      const nu = f.degreesOfFreedom;
      const z = (e.reward!.values[0]! - f.location) / scale;
      const logPdf =
        lgamma((nu + 1) / 2) - lgamma(nu / 2) - 0.5 * Math.log(nu * Math.PI) - Math.log(scale) - ((nu + 1) / 2) * Math.log1p((z * z) / nu);
      surprise -= logPdf;
      current = learn(args, current, [e]).parameters;
    }
    expect(metrics.freeEnergy![0]).toBeCloseTo(surprise, 8);
  });
});

describe("contextual-bandits-v1 reference behaviour (RxInferServer ContextualBandits-v1 checks, 0-based arms)", () => {
  it("fresh instances (dims 1, 2, 5; arms 2, 5, 10) can infer before any learning", () => {
    for (const d of [1, 2, 5]) {
      for (const k of [2, 5, 10]) {
        const args = argsWith({ context_dim: d, n_arms: k, propensity_draws: 100 });
        const r = infer(args, model.initialParameters(args, 0), Array.from({ length: d }, (_, i) => i / d), d * 100 + k);
        expect(Number.isInteger(r.arm) && r.arm >= 0 && r.arm < k).toBe(true);
        expect(r.rewards).toHaveLength(k);
        expect(r.probabilities).toHaveLength(k);
        expect(factors(r.expected)).toHaveLength(k);
        expect(r.rewards[r.arm]).toBe(Math.max(...r.rewards));
      }
    }
  });

  it("learns from ε-greedy play (10% exploration, reward sd 0.1; dims 2, 3; arms 3, 4; 50, 100 rounds)", () => {
    for (const [d, k, rounds] of [
      [2, 3, 50],
      [3, 4, 100],
    ] as const) {
      const args = argsWith({ context_dim: d, n_arms: k, propensity_draws: 100 });
      const rand = testRandom(d * 10 + k);
      const normal = gaussian(rand);
      const theta = Array.from({ length: k }, () => Array.from({ length: d + 1 }, normal));
      const reward = (arm: number, c: number[]) => theta[arm]![0]! + c.reduce((s, x, j) => s + x * theta[arm]![j + 1]!, 0);
      let params = model.initialParameters(args, 0);
      const played = new Array<number>(k).fill(0);
      for (let round = 0; round < rounds; round++) {
        const c = Array.from({ length: d }, normal);
        const r = infer(args, params, c, deriveSeed(1, "default", round + 1));
        expect(Number.isInteger(r.arm) && r.arm >= 0 && r.arm < k).toBe(true);
        expect(r.rewards).toHaveLength(k);
        expect(r.rewards[r.arm]).toBe(Math.max(...r.rewards));
        const arm = rand() < 0.1 ? Math.floor(rand() * k) : r.arm;
        played[arm]! += 1;
        const event = { context: vector(c), arm: scalar(arm), reward: scalar(reward(arm, c) + 0.1 * normal()) };
        params = learn(args, params, [event]).parameters;
      }
      const posteriors = model.parameterPosteriors(params);
      expect(Object.keys(posteriors).sort()).toEqual(["noise_precision", "weights"]);
      // Every arm's posterior has absorbed exactly its own plays: shape = a0 + n_k/2.
      factors(posteriors.noise_precision!).forEach((g, arm) => expect(g.kind === "gamma" && g.shape).toBe(1 + played[arm]! / 2));
    }
  });
});

describe("contextual-bandits-v1 data checks", () => {
  const args = argsWith();
  const check = (kind: "observation" | "event", fields: Record<string, Tensor>) => validateData(model, kind, fields, args as never, "data");

  it("accepts context-only events and complete (context, arm, reward) events", () => {
    expect(check("event", { context: vector([0, 1]) })).toEqual([]);
    expect(check("event", { context: vector([0, 1]), arm: scalar(2), reward: scalar(-3) })).toEqual([]);
  });

  it("rejects an arm out of range, an arm without reward (and vice versa), a wrong context length, a missing context", () => {
    const reasons = (kind: "observation" | "event", fields: Record<string, Tensor>) => check(kind, fields).map((v) => [v.reason, v.field]);
    expect(reasons("event", { context: vector([0, 1]), arm: scalar(3), reward: scalar(1) })).toEqual([["DATA_NOT_VALID", "data.arm"]]);
    expect(reasons("event", { context: vector([0, 1]), arm: scalar(-1), reward: scalar(1) })).toEqual([["DATA_NOT_VALID", "data.arm"]]);
    expect(reasons("event", { context: vector([0, 1]), arm: scalar(0.5), reward: scalar(1) })).toEqual([["DATA_NOT_VALID", "data.arm"]]);
    expect(reasons("event", { context: vector([0, 1]), arm: scalar(1) })).toEqual([["DATA_INCOMPLETE", "data.reward"]]);
    expect(reasons("event", { context: vector([0, 1]), reward: scalar(1) })).toEqual([["DATA_INCOMPLETE", "data.arm"]]);
    expect(reasons("observation", { context: vector([0, 1, 2]) })).toEqual([["DATA_LAYOUT_NOT_COMPATIBLE", "data.context"]]);
    expect(reasons("event", { context: vector([0]), arm: scalar(0), reward: scalar(1) })).toEqual([["DATA_LAYOUT_NOT_COMPATIBLE", "data.context"]]);
    expect(reasons("observation", {})).toEqual([["DATA_INCOMPLETE", "data.context"]]);
    expect(reasons("observation", { context: vector([0, Number.NaN]) })).toEqual([["DATA_NOT_VALID", "data.context"]]);
  });
});

function lgamma(x: number): number {
  // Lanczos approximation (g = 7, n = 9), accurate to ~1e-15 relative for x > 0.5: independent of the model's gammaln.
  const c = [
    0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059, 12.507343278686905,
    -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
  ];
  const z = x - 1;
  let a = c[0]!;
  const t = z + 7.5;
  for (let i = 1; i < 9; i++) a += c[i]! / (z + i);
  return 0.5 * Math.log(2 * Math.PI) + (z + 0.5) * Math.log(t) - t + Math.log(a);
}
