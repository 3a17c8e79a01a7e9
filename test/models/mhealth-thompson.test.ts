import { Matrix, inverse } from "ml-matrix";
import { describe, expect, it } from "vitest";
import type { Distribution } from "../../src/math/distribution.ts";
import { deriveSeed, Random } from "../../src/math/random.ts";
import { normalCdf, studentTCdf } from "../../src/math/special.ts";
import { type Tensor, scalar, vector } from "../../src/math/tensor.ts";
import { mhealthThompson as model } from "../../src/models/mhealth-thompson/index.ts";
import type { Fields } from "../../src/models/types.ts";
import { validateData } from "../../src/models/validation.ts";
import { testRandom } from "../support/assertions.ts";

type Args = Parameters<typeof model.initialParameters>[0];
type Params = ReturnType<typeof model.initialParameters>;

const argsWith = (overrides: Partial<Args> = {}): Args => ({
  state_dim: 2,
  prior_precision: 1,
  noise_shape: 1,
  noise_rate: 1,
  p_min: 0.1,
  p_max: 0.8,
  warmup_decisions: 0,
  warmup_probability: 0.5,
  ...overrides,
});

const decide = (args: Args, parameters: Params, state: number[], seed: number, decisionIndex = 1) => {
  const out = model.infer({ arguments: args, parameters, state: {}, observation: { state: vector(state) }, goal: {}, seed, decisionIndex });
  const advantage = out.posteriors!.advantage!;
  if (advantage.kind !== "studentT") throw new Error(`expected a studentT advantage, got ${advantage.kind}`);
  return {
    action: out.actions!.action!.values[0]!,
    probability: out.values!.action_probability!.values[0]!,
    advantageProbability: out.values!.advantage_probability!.values[0]!,
    warmup: out.values!.warmup!.values[0]!,
    state: [...out.values!.state!.values],
    decisionIndex: out.values!.decision_index!.values[0]!,
    advantage,
  };
};

const learn = (args: Args, prior: Params, events: Fields[]) => model.learn({ arguments: args, prior, state: {}, events, seed: 0, options: {} });

const event = (state: number[], action: number, probability: number, reward: number): Fields => ({
  state: vector(state),
  action: scalar(action),
  action_probability: scalar(probability),
  reward: scalar(reward),
});

function gaussian(rand: () => number): () => number {
  return () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
}

/** A Normal-Gamma posterior with a random dense precision, for state_dim 2 (9 weights). */
function randomPosterior(seed: number, betaMean: number[], shape: number, rate: number): Params {
  const rand = testRandom(seed);
  const d = 9;
  const a = new Matrix(Array.from({ length: d }, () => Array.from({ length: d }, () => rand() - 0.5)));
  const precision = a.mmul(a.transpose()).add(Matrix.eye(d).mul(2));
  const mean = [rand() - 0.5, rand() - 0.5, rand() - 0.5, rand() - 0.5, rand() - 0.5, rand() - 0.5, ...betaMean];
  return { mean, precision: precision.to1DArray(), shape, rate };
}

/** The advantage's Student-t at s, computed independently (explicit inverse with ml-matrix). */
function referenceAdvantage(post: Params, state: number[]) {
  const d = post.mean.length;
  const covarianceUnit = inverse(new Matrix(Array.from({ length: d }, (_, i) => post.precision.slice(i * d, (i + 1) * d))));
  const f = [1, ...state];
  const p = f.length;
  let location = 0;
  let quadratic = 0;
  for (let i = 0; i < p; i++) {
    location += f[i]! * post.mean[2 * p + i]!;
    for (let j = 0; j < p; j++) quadratic += f[i]! * covarianceUnit.get(2 * p + i, 2 * p + j) * f[j]!;
  }
  return { nu: 2 * post.shape, location, scale: Math.sqrt((post.rate / post.shape) * quadratic) };
}

const block = (d: Distribution | undefined) => {
  if (d?.kind !== "mvNormal") throw new Error(`expected mvNormal, got ${d?.kind}`);
  return { mean: d.mean, sd: d.mean.map((_, i) => Math.sqrt(d.covariance[i * d.mean.length + i]!)) };
};

describe("mhealth-thompson-v1 schema and prior", () => {
  it("starts from the Normal-Gamma prior; examples are valid under the default arguments", () => {
    const args = argsWith();
    const prior = model.initialParameters(args, 0);
    expect(prior.mean).toEqual(new Array(9).fill(0));
    expect(prior.precision.filter((v, i) => v !== (i % 10 === 0 ? 1 : 0))).toEqual([]);
    expect([prior.shape, prior.rate]).toEqual([1, 1]);
    const posteriors = model.parameterPosteriors(prior);
    expect(Object.keys(posteriors).sort()).toEqual(["alpha_0", "alpha_1", "beta", "noise_precision"]);
    expect(block(posteriors.beta).mean).toHaveLength(3);
    for (const kind of ["observation", "event"] as const) {
      const example: Record<string, Tensor> = {};
      for (const f of model.schema[kind]) example[f.name] = { shape: f.shape.length === 0 ? [] : [f.example.length], values: f.example };
      expect(validateData(model, kind, example, args as never, kind)).toEqual([]);
    }
    for (const a of model.schema.arguments) expect(a.default).toBeDefined();
    expect(model.schema.stochastic).toBe(true);
  });

  it("a fresh instance sends with probability 1/2 (the prior is symmetric) and echoes state and decision index", () => {
    const r = decide(argsWith(), model.initialParameters(argsWith(), 0), [0.5, -1], 77, 12);
    expect([r.probability, r.advantageProbability, r.warmup, r.state, r.decisionIndex]).toEqual([0.5, 0.5, 0, [0.5, -1], 12]);
    // Prior: ν = 2, location 0, scale² = (b/a)·f(s)ᵀf(s) = 1 + 0.25 + 1.
    expect(r.advantage).toEqual({ kind: "studentT", degreesOfFreedom: 2, location: 0, scale: 1.5 });
  });
});

describe("mhealth-thompson-v1 action probability", () => {
  it("computes the Student-t CDF exactly (closed forms for ν = 1, 2, 3; Φ as ν → ∞)", () => {
    for (const t of [-1e6, -50, -3, -0.7, -1e-9, 0, 1e-9, 0.1, 1, 2.5, 30, 1e6]) {
      expect(studentTCdf(t, 1)).toBeCloseTo(0.5 + Math.atan(t) / Math.PI, 13);
      expect(studentTCdf(t, 2)).toBeCloseTo(0.5 + t / (2 * Math.sqrt(2 + t * t)), 13);
      const u = t / Math.sqrt(3);
      expect(studentTCdf(t, 3)).toBeCloseTo(0.5 + (u / (1 + u * u) + Math.atan(u)) / Math.PI, 13);
      expect(studentTCdf(t, 1e8)).toBeCloseTo(normalCdf(t), 7);
    }
    // Relative accuracy in the far tail (1 − F would lose it).
    expect(studentTCdf(-1e6, 1) / (1 / (Math.PI * 1e6))).toBeCloseTo(1, 6);
  });

  it("π = P(f(s)ᵀβ > 0) under the β block's Student-t marginal, for known posteriors", () => {
    const wide = argsWith({ p_min: 0.01, p_max: 0.99 });
    let interior = 0;
    for (let trial = 0; trial < 30; trial++) {
      const post = randomPosterior(trial, [0.3, -0.2, 0.1], 3 + trial, 2 + trial / 3);
      const rand = testRandom(1000 + trial);
      const state = [4 * rand() - 2, 4 * rand() - 2];
      const ref = referenceAdvantage(post, state);
      const r = decide(wide, post, state, trial + 1);
      expect(r.advantage.degreesOfFreedom).toBe(ref.nu);
      expect(r.advantage.location).toBeCloseTo(ref.location, 10);
      expect(r.advantage.scale).toBeCloseTo(ref.scale, 10);
      const exact = studentTCdf(ref.location / ref.scale, ref.nu);
      expect(r.advantageProbability).toBeCloseTo(exact, 12);
      expect(r.probability).toBe(Math.min(0.99, Math.max(0.01, r.advantageProbability)));
      if (r.probability > 0.01 && r.probability < 0.99) interior += 1;
    }
    expect(interior).toBeGreaterThan(20);
  });

  it("is Φ(μ_Δ/σ_Δ) with the Gaussian moments once the posterior is tight (large ν)", () => {
    const post = randomPosterior(3, [0.01, 0.004, -0.002], 20000, 1.5);
    for (const state of [[0.2, 0.1], [-1, 0.5], [0, 0]]) {
      const ref = referenceAdvantage(post, state);
      const sigma = ref.scale * Math.sqrt(ref.nu / (ref.nu - 2));
      const r = decide(argsWith(), post, state, 5);
      // Student-t (ν = 40000) against normal: |F_t − Φ| < 1e-5.
      expect(Math.abs(r.advantageProbability - normalCdf(ref.location / sigma))).toBeLessThan(1e-5);
    }
  });

  it("clips to [p_min, p_max] for extreme posteriors, and never leaves the bounds", () => {
    const sure = randomPosterior(1, [40, 0, 0], 50, 1);
    const hopeless = randomPosterior(1, [-40, 0, 0], 50, 1);
    for (const [p_min, p_max] of [[0.1, 0.8], [0.2, 0.8], [0.01, 0.99], [0.5, 0.51]] as const) {
      const args = argsWith({ p_min, p_max });
      const up = decide(args, sure, [0, 0], 3);
      const down = decide(args, hopeless, [0, 0], 3);
      expect(up.advantageProbability).toBeGreaterThan(0.999);
      expect(down.advantageProbability).toBeLessThan(0.001);
      expect([up.probability, down.probability]).toEqual([p_max, p_min]);
    }
    const args = argsWith();
    for (let trial = 0; trial < 100; trial++) {
      const rand = testRandom(trial);
      const post = randomPosterior(trial, [10 * rand() - 5, rand() - 0.5, rand() - 0.5], 2 + 10 * rand(), 0.1 + rand());
      const r = decide(args, post, [2 * rand() - 1, 2 * rand() - 1], trial);
      expect(r.probability).toBeGreaterThanOrEqual(0.1);
      expect(r.probability).toBeLessThanOrEqual(0.8);
    }
  });

  it("uses the warm-up probability for decision indices up to warmup_decisions, then the posterior", () => {
    const sure = randomPosterior(1, [40, 0, 0], 50, 1);
    const args = argsWith({ warmup_decisions: 3, warmup_probability: 0.3 });
    const at = (index: number) => decide(args, sure, [0, 0], 9, index);
    expect([1, 2, 3].map((i) => [at(i).probability, at(i).warmup])).toEqual([[0.3, 1], [0.3, 1], [0.3, 1]]);
    expect([at(4).probability, at(4).warmup]).toEqual([0.8, 0]);
    expect([at(0).probability, at(0).warmup]).toEqual([0.3, 1]); // a client's index 0 is inside the warm-up too
    // The default warmup_decisions = 0 turns it off, index 0 included.
    expect(decide(argsWith(), sure, [0, 0], 9, 0).probability).toBe(0.8);
  });

  it("sends iff the first uniform of the seed's stream is below π", () => {
    const post = randomPosterior(4, [0.2, 0.1, 0], 5, 2);
    for (let seed = 1; seed <= 300; seed++) {
      const r = decide(argsWith(), post, [0.3, -0.3], seed);
      expect(r.action).toBe(new Random(seed).nextDouble() < r.probability ? 1 : 0);
    }
  });

  it("sends with frequency π over many decisions (and with the warm-up probability during warm-up)", () => {
    const post = randomPosterior(4, [0.2, 0.1, 0], 5, 2);
    const n = 20000;
    const args = argsWith({ warmup_decisions: n / 2, warmup_probability: 0.3 });
    let warmSends = 0;
    let sends = 0;
    let pi = Number.NaN;
    for (let i = 1; i <= n; i++) {
      const r = decide(args, post, [0.3, -0.3], deriveSeed(31, "user-7", i), i);
      if (r.warmup) warmSends += r.action;
      else {
        sends += r.action;
        pi = r.probability;
      }
    }
    expect(pi).toBeGreaterThan(0.1);
    expect(pi).toBeLessThan(0.8);
    const half = n / 2;
    expect(Math.abs(sends / half - pi)).toBeLessThan(4 * Math.sqrt((pi * (1 - pi)) / half));
    expect(Math.abs(warmSends / half - 0.3)).toBeLessThan(4 * Math.sqrt((0.3 * 0.7) / half));
  });
});

describe("mhealth-thompson-v1 learning", () => {
  it("is the exact Bayesian linear regression on φ = [g(s); π f(s); (A − π) f(s)] with the stored π", () => {
    const args = argsWith();
    const rand = testRandom(17);
    const normal = gaussian(rand);
    const events = Array.from({ length: 40 }, () => {
      const s = [normal(), normal()];
      const pi = 0.1 + 0.7 * rand();
      const a = rand() < pi ? 1 : 0;
      return event(s, a, pi, 1 + s[0]! + a * 0.5 + normal());
    });
    const { parameters } = learn(args, model.initialParameters(args, 0), events);
    // Reference: Λ = I + ΦᵀΦ, m = Λ⁻¹Φᵀy, with φ built here from the events.
    const phi = new Matrix(
      events.map((e) => {
        const f = [1, ...e.state!.values];
        const pi = e.action_probability!.values[0]!;
        const a = e.action!.values[0]!;
        return [...f, ...f.map((v) => pi * v), ...f.map((v) => (a - pi) * v)];
      }),
    );
    const y = Matrix.columnVector(events.map((e) => e.reward!.values[0]!));
    const precision = phi.transpose().mmul(phi).add(Matrix.eye(9));
    const mean = inverse(precision).mmul(phi.transpose().mmul(y)).getColumn(0);
    parameters.mean.forEach((m, i) => expect(m).toBeCloseTo(mean[i]!, 10));
    expect(parameters.shape).toBe(1 + 20);
    // The stored π is what counts: the same events with other probabilities give another posterior.
    const shifted = events.map((e) => ({ ...e, action_probability: scalar(0.5) }));
    expect(learn(args, model.initialParameters(args, 0), shifted).parameters.mean).not.toEqual(parameters.mean);
  });

  it("learns the same posterior incrementally or in one batch, and skips state-only events", () => {
    const args = argsWith();
    const rand = testRandom(5);
    const normal = gaussian(rand);
    const complete = Array.from({ length: 120 }, () => event([normal(), normal()], rand() < 0.5 ? 1 : 0, 0.5, normal()));
    const withObservations = complete.flatMap((e) => [{ state: e.state! }, e]);
    const prior = model.initialParameters(args, 0);
    const once = learn(args, prior, withObservations);
    expect(once.metrics.dataPoints).toBe(120);
    expect(once.metrics.values).toEqual({ skipped_events: 120 });
    let stepwise = prior;
    for (const chunk of [withObservations.slice(0, 31), withObservations.slice(31, 150), withObservations.slice(150)]) {
      stepwise = learn(args, stepwise, chunk).parameters;
    }
    once.parameters.mean.forEach((m, i) => expect(stepwise.mean[i]).toBeCloseTo(m, 9));
    expect(stepwise.shape).toBe(once.parameters.shape);
    expect(stepwise.rate).toBeCloseTo(once.parameters.rate, 8);
    const none = learn(args, once.parameters, [{ state: vector([1, 2]) }]);
    expect(none.parameters).toBe(once.parameters);
    expect(none.metrics.dataPoints).toBe(0);
  });

  it("recovers the treatment effect β from its own decisions (infer → outcome → nightly learn, noise sd 0.5)", () => {
    const args = argsWith();
    const rand = testRandom(2025);
    const normal = gaussian(rand);
    const gamma = [1, 0.5, -0.3]; // baseline
    const beta = [0.6, 0.8, -0.5]; // treatment effect on [1, s]
    const linear = (w: number[], s: number[]) => w[0]! + w[1]! * s[0]! + w[2]! * s[1]!;
    let params = model.initialParameters(args, 0);
    let pending: Fields[] = [];
    const probabilities: number[] = [];
    for (let i = 1; i <= 2000; i++) {
      const s = [normal(), normal()];
      const r = decide(args, params, s, deriveSeed(8, "participant", i), i);
      probabilities.push(r.probability);
      const reward = linear(gamma, s) + r.action * linear(beta, s) + 0.5 * normal();
      pending.push({ state: vector(s) }, event(s, r.action, r.probability, reward));
      if (i % 50 === 0) {
        params = learn(args, params, pending).parameters;
        pending = [];
      }
    }
    // The policy adapted: late decisions are at the clip bounds far more often than early ones.
    const atBounds = (ps: number[]) => ps.filter((p) => p === 0.1 || p === 0.8).length / ps.length;
    expect(atBounds(probabilities.slice(1500))).toBeGreaterThan(atBounds(probabilities.slice(0, 50)) + 0.3);
    const posteriors = model.parameterPosteriors(params);
    const b = block(posteriors.beta);
    b.mean.forEach((m, j) => expect(Math.abs(m - beta[j]!)).toBeLessThan(4 * b.sd[j]!));
    expect(Math.max(...b.sd)).toBeLessThan(0.1);
    // With r = g(s)ᵀγ + A f(s)ᵀβ + ε the action-centred model has α₀ = γ and α₁ = β.
    const a0 = block(posteriors.alpha_0);
    a0.mean.forEach((m, j) => expect(Math.abs(m - gamma[j]!)).toBeLessThan(4 * a0.sd[j]!));
    const tau = posteriors.noise_precision!;
    if (tau.kind !== "gamma") throw new Error("expected gamma");
    expect(Math.abs(tau.shape / tau.rate - 4)).toBeLessThan(4 * (Math.sqrt(tau.shape) / tau.rate));
    // And it now sends where sending helps.
    expect(decide(args, params, [1.5, -1], 1).probability).toBe(0.8);
    expect(decide(args, params, [-1.5, 1], 1).probability).toBe(0.1);
  });

  it("recovers β under a fixed randomisation π = 0.5, with a misspecified (nonlinear) baseline", () => {
    // Action centring: (A − π) has mean zero given s, so β stays identified even though sin and the square are not in g(s).
    const args = argsWith();
    const rand = testRandom(99);
    const normal = gaussian(rand);
    const beta = [-0.4, 0.3, 0.7];
    const events = Array.from({ length: 4000 }, () => {
      const s = [normal(), normal()];
      const a = rand() < 0.5 ? 1 : 0;
      const baseline = 2 * Math.sin(2 * s[0]!) + s[1]! * s[1]!;
      return event(s, a, 0.5, baseline + a * (beta[0]! + beta[1]! * s[0]! + beta[2]! * s[1]!) + 0.5 * normal());
    });
    const { parameters } = learn(args, model.initialParameters(args, 0), events);
    const b = block(model.parameterPosteriors(parameters).beta);
    // The posterior sd assumes homoscedastic noise, but the baseline's misfit varies with s; the tolerance uses the
    // sandwich (heteroscedasticity-robust) standard error (ΦᵀΦ)⁻¹ Σ e_i² φ_i φ_iᵀ (ΦᵀΦ)⁻¹ instead.
    const phi = new Matrix(
      events.map((e) => {
        const f = [1, ...e.state!.values];
        const a = e.action!.values[0]!;
        return [...f, ...f.map((v) => 0.5 * v), ...f.map((v) => (a - 0.5) * v)];
      }),
    );
    const residuals = events.map((e, i) => e.reward!.values[0]! - phi.getRow(i).reduce((sum, v, j) => sum + v * parameters.mean[j]!, 0));
    const bread = inverse(phi.transpose().mmul(phi).add(Matrix.eye(9)));
    const weighted = new Matrix(phi.to2DArray().map((row, i) => row.map((v) => v * residuals[i]! * residuals[i]!)));
    const meat = phi.transpose().mmul(weighted);
    const robust = bread.mmul(meat).mmul(bread);
    b.mean.forEach((m, j) => {
      const sd = Math.sqrt(robust.get(6 + j, 6 + j));
      expect(sd).toBeLessThan(0.15);
      expect(Math.abs(m - beta[j]!)).toBeLessThan(4 * sd);
    });
  });
});

describe("mhealth-thompson-v1 data checks", () => {
  const args = argsWith();
  const reasons = (kind: "observation" | "event", fields: Record<string, Tensor>) =>
    validateData(model, kind, fields, args as never, "data").map((v) => [v.reason, v.field]);

  it("accepts state-only events and complete outcome events", () => {
    expect(reasons("event", { state: vector([0, 1]) })).toEqual([]);
    expect(reasons("event", event([0, 1], 1, 0.8, 2.5))).toEqual([]);
  });

  it("rejects incomplete outcomes, probabilities outside (0, 1), non-binary actions and wrong states", () => {
    expect(reasons("event", { state: vector([0, 1]), action: scalar(1), reward: scalar(1) })).toEqual([
      ["DATA_INCOMPLETE", "data.action_probability"],
    ]);
    expect(reasons("event", { state: vector([0, 1]), reward: scalar(1) })).toEqual([
      ["DATA_INCOMPLETE", "data.action"],
      ["DATA_INCOMPLETE", "data.action_probability"],
    ]);
    expect(reasons("event", event([0, 1], 1, 0, 1))).toEqual([["DATA_NOT_VALID", "data.action_probability"]]);
    expect(reasons("event", event([0, 1], 1, 1, 1))).toEqual([["DATA_NOT_VALID", "data.action_probability"]]);
    expect(reasons("event", event([0, 1], 1, 1.2, 1))).toEqual([["DATA_NOT_VALID", "data.action_probability"]]);
    expect(reasons("event", event([0, 1], 2, 0.5, 1))).toEqual([["DATA_NOT_VALID", "data.action"]]);
    expect(reasons("event", event([0, 1], 0.5, 0.5, 1))).toEqual([["DATA_NOT_VALID", "data.action"]]);
    expect(reasons("event", { action: scalar(1), action_probability: scalar(0.5), reward: scalar(1) })).toEqual([
      ["DATA_INCOMPLETE", "data.state"],
    ]);
    expect(reasons("observation", { state: vector([0, 1, 2]) })).toEqual([["DATA_LAYOUT_NOT_COMPATIBLE", "data.state"]]);
    expect(reasons("observation", { state: vector([0, Number.POSITIVE_INFINITY]) })).toEqual([["DATA_NOT_VALID", "data.state"]]);
    expect(reasons("observation", {})).toEqual([["DATA_INCOMPLETE", "data.state"]]);
  });
});
