// Just-in-time adaptive intervention (JustIn / HeartSteps style): at each decision point, send (1) or
// don't send (0) an intervention, by clipped Thompson sampling on an action-centred Bayesian linear
// model of the proximal outcome (inference-math.md §3.3 (b)).
//
// Model, with state s ∈ R^state_dim, f(s) = g(s) = [1, s], action A ∈ {0, 1} and π the probability
// with which A was drawn (stored with the event at decision time, never recomputed when learning):
//   reward = g(s)ᵀα₀ + π·f(s)ᵀα₁ + (A − π)·f(s)ᵀβ + ε,  ε ~ N(0, 1/τ),
// i.e. a Bayesian linear regression on φ = [g(s); π f(s); (A − π) f(s)] (length 3(state_dim + 1)) with
// the Normal-Gamma prior τ ~ Gamma(noise_shape, noise_rate), w | τ ~ N(0, (τ·prior_precision·I)⁻¹)
// (unknown noise variance; exact conjugate learning, src/math/linear-gaussian.ts engine A).
// Action centring makes β, the treatment effect, identifiable even when the baseline g(s)ᵀα₀ is
// misspecified, because (A − π) has mean zero given s.
//
// Decision at state s: the advantage Δ = f(s)ᵀβ has the posterior Student-t(ν = 2a, location f(s)ᵀm_β,
// scale² = (b/a)·f(s)ᵀ(Λ⁻¹)_ββ f(s)) — the β block of the weights' multivariate-t marginal. Then
//   π = clip(P(Δ > 0), p_min, p_max), P(Δ > 0) = T_ν(location/scale)  (the Student-t analogue of Φ(μ_Δ/σ_Δ)),
// or π = warmup_probability while decision index ≤ warmup_decisions (warm-up off when warmup_decisions = 0);
//   A = 1 iff u < π, u = the first uniform (nextDouble) of new Random(seed). Nothing else is drawn.
// The seed is derived from (instance seed, episode, decision index), so the same decision index with the
// same parameters and state gives the same action, whether or not the observation is stored.
import type { Distribution } from "../../math/distribution.ts";
import {
  linearFormPosterior,
  addObservation,
  emptyStats,
  type NormalGamma,
  normalGammaLogEvidence,
  normalGammaUpdate,
  weightMarginal,
} from "../../math/linear-gaussian.ts";
import { Random } from "../../math/random.ts";
import { studentTCdf } from "../../math/special.ts";
import { scalar, vector } from "../../math/tensor.ts";
import type { DataProblem, Fields, ModelType } from "../types.ts";

interface Arguments {
  state_dim: number;
  prior_precision: number;
  noise_shape: number;
  noise_rate: number;
  p_min: number;
  p_max: number;
  warmup_decisions: number;
  warmup_probability: number;
}

/** The Normal-Gamma posterior over w = [α₀; α₁; β] and the noise precision. */
type Parameters = NormalGamma;

type State = Record<string, never>;

/** f(s) = g(s) = [1, s]. */
function baseFeatures(state: readonly number[]): Float64Array {
  const f = new Float64Array(state.length + 1);
  f[0] = 1;
  f.set(state, 1);
  return f;
}

/** φ = [g(s); π f(s); (A − π) f(s)]. */
function features(state: readonly number[], action: number, probability: number): Float64Array {
  const f = baseFeatures(state);
  const p = f.length;
  const phi = new Float64Array(3 * p);
  for (let i = 0; i < p; i++) {
    phi[i] = f[i]!;
    phi[p + i] = probability * f[i]!;
    phi[2 * p + i] = (action - probability) * f[i]!;
  }
  return phi;
}

/** The advantage Δ = f(s)ᵀβ under the posterior: Student-t over the β block of the weights. */
function advantagePosterior(post: Parameters, state: readonly number[]): Extract<Distribution, { kind: "studentT" }> {
  const f = baseFeatures(state);
  const x = new Float64Array(3 * f.length);
  x.set(f, 2 * f.length);
  return { kind: "studentT", ...linearFormPosterior(post, x) };
}

const clip = (x: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, x));

const OUTCOME_FIELDS = ["action", "action_probability", "reward"] as const;

function block(marginal: { mean: number[]; covariance: number[] }, from: number, size: number): Distribution {
  const d = marginal.mean.length;
  const covariance: number[] = [];
  for (let i = 0; i < size; i++) for (let j = 0; j < size; j++) covariance.push(marginal.covariance[(from + i) * d + from + j]!);
  return { kind: "mvNormal", mean: marginal.mean.slice(from, from + size), covariance };
}

const value = (fields: Fields, name: string): number | undefined => fields[name]?.values[0];

export const mhealthThompson: ModelType<Arguments, Parameters, State> = {
  schema: {
    name: "mhealth-thompson-v1",
    description:
      "Just-in-time adaptive intervention: decide whether to send an intervention (action 1) or not (0) by clipped Thompson " +
      "sampling on an action-centred Bayesian linear model of the outcome, reward = g(s)ᵀα₀ + π f(s)ᵀα₁ + (A − π) f(s)ᵀβ + ε, " +
      "with f(s) = g(s) = [1, s], π the action probability stored with the event, ε ~ N(0, 1/τ) and the Normal-Gamma prior " +
      "τ ~ Gamma(noise_shape, noise_rate), [α₀; α₁; β] | τ ~ N(0, (τ·prior_precision·I)⁻¹). The action probability is " +
      "π = clip(P(f(s)ᵀβ > 0), p_min, p_max), the posterior probability (Student-t) that sending helps, or warmup_probability " +
      "for decision indices ≤ warmup_decisions; the action is 1 iff the first uniform of the decision's random stream is below π.",
    category: "bandit",
    arguments: [
      { name: "state_dim", type: "integer", description: "Length of the state vector s", default: 2, minimum: 1, maximum: 50 },
      {
        name: "prior_precision",
        type: "number",
        description: "Prior precision λ0 of each coefficient relative to the noise precision: w | τ ~ N(0, (τ·λ0·I)⁻¹)",
        default: 1,
        minimum: 0,
        exclusiveMinimum: true,
      },
      {
        name: "noise_shape",
        type: "number",
        description: "Prior shape of the noise precision τ ~ Gamma(shape, rate)",
        default: 1,
        minimum: 0,
        exclusiveMinimum: true,
      },
      {
        name: "noise_rate",
        type: "number",
        description: "Prior rate of the noise precision τ ~ Gamma(shape, rate) (prior mean of τ = shape/rate)",
        default: 1,
        minimum: 0,
        exclusiveMinimum: true,
      },
      {
        name: "p_min",
        type: "number",
        description: "Lower clip of the action probability; at most 0.5, so that p_min < p_max always holds",
        default: 0.1,
        minimum: 0.01,
        maximum: 0.5,
      },
      {
        name: "p_max",
        type: "number",
        description: "Upper clip of the action probability; above 0.5, so that p_min < p_max always holds",
        default: 0.8,
        minimum: 0.5,
        exclusiveMinimum: true,
        maximum: 0.99,
      },
      {
        name: "warmup_decisions",
        type: "integer",
        description:
          "Decisions with index ≤ warmup_decisions use warmup_probability instead of the posterior (0: no warm-up). The server " +
          "numbers decisions from 1 when the client gives no decision index, so that is exactly warmup_decisions decisions",
        default: 0,
        minimum: 0,
      },
      {
        name: "warmup_probability",
        type: "number",
        description: "Fixed action probability during the warm-up",
        default: 0.5,
        minimum: 0.01,
        maximum: 0.99,
      },
    ],
    parameters: [
      {
        name: "alpha_0",
        description: "Baseline coefficients α₀ on g(s) = [1, s]: mvNormal with the mean and covariance of their Student-t marginal",
        family: "mvNormal",
        shape: ["state_dim"],
      },
      {
        name: "alpha_1",
        description: "Coefficients α₁ on π·f(s) (the outcome's dependence on the action probability): mvNormal, as alpha_0",
        family: "mvNormal",
        shape: ["state_dim"],
      },
      {
        name: "beta",
        description: "Treatment effect β on (A − π)·f(s); the advantage of sending at s is f(s)ᵀβ: mvNormal, as alpha_0",
        family: "mvNormal",
        shape: ["state_dim"],
      },
      { name: "noise_precision", description: "Noise precision τ (shape, rate)", family: "gamma", shape: [] },
    ],
    observation: [
      { name: "state", description: "The state s at this decision point", shape: ["state_dim"], required: true, example: [0.5, -1] },
    ],
    goal: [],
    event: [
      { name: "state", description: "The state s at the decision point", shape: ["state_dim"], required: true, example: [0.5, -1] },
      {
        name: "action",
        description: "The action taken, 0 (not sent) or 1 (sent); give it with action_probability and reward",
        shape: [],
        integer: true,
        minimum: 0,
        maximum: 1,
        example: [1],
      },
      {
        name: "action_probability",
        description: "The probability π of action 1 used at decision time, strictly between 0 and 1 (as returned by infer)",
        shape: [],
        minimum: 0,
        maximum: 1,
        example: [0.6],
      },
      { name: "reward", description: "The proximal outcome observed after the decision", shape: [], example: [1.5] },
    ],
    outputs: [
      { name: "action", kind: "action", description: "1 to send the intervention, 0 not to", shape: [] },
      { name: "action_probability", kind: "value", description: "The probability π of action 1; store it with the event", shape: [] },
      {
        name: "advantage_probability",
        kind: "value",
        description: "The posterior probability P(f(s)ᵀβ > 0) that sending helps, before clipping (and whatever the warm-up)",
        shape: [],
      },
      { name: "warmup", kind: "value", description: "1 when the warm-up probability was used, else 0", shape: [] },
      { name: "state", kind: "value", description: "The state vector the decision used", shape: ["state_dim"] },
      { name: "decision_index", kind: "value", description: "The decision's index within its episode", shape: [] },
      {
        name: "advantage",
        kind: "posterior",
        family: "studentT",
        description: "Posterior of the advantage f(s)ᵀβ at this state (ν = 2a)",
      },
    ],
    stochastic: true,
    learning:
      "Exact. Events with action, action_probability and reward add φ = [g(s); π f(s); (A − π) f(s)] and the reward to the " +
      "sufficient statistics, π being the stored action_probability; events with the state only (stored infer observations) " +
      "are skipped. The conjugate Normal-Gamma update uses the stored posterior as the prior, so incremental (e.g. nightly) " +
      "learning, relearning and learning several episodes together give the same posterior as learning all events at once. The " +
      "free energy is the negative log evidence of the batch's rewards.",
  },

  initialParameters(args) {
    const d = 3 * (args.state_dim + 1);
    const precision = new Array<number>(d * d).fill(0);
    for (let i = 0; i < d; i++) precision[i * d + i] = args.prior_precision;
    return { mean: new Array<number>(d).fill(0), precision, shape: args.noise_shape, rate: args.noise_rate };
  },

  initialState: () => ({}),

  parameterPosteriors(post) {
    const p = post.mean.length / 3;
    const marginal = weightMarginal(post);
    return {
      alpha_0: block(marginal, 0, p),
      alpha_1: block(marginal, p, p),
      beta: block(marginal, 2 * p, p),
      noise_precision: { kind: "gamma", shape: post.shape, rate: post.rate },
    };
  },

  checkData(kind, fields) {
    if (kind !== "event") return [];
    const problems: DataProblem[] = [];
    const given = OUTCOME_FIELDS.filter((name) => fields[name] !== undefined);
    if (given.length > 0) {
      for (const name of OUTCOME_FIELDS) {
        if (fields[name] === undefined) {
          problems.push({ field: name, description: `is required with ${given.join(", ")}`, reason: "DATA_INCOMPLETE" });
        }
      }
    }
    const probability = value(fields, "action_probability");
    if (probability !== undefined && !(probability > 0 && probability < 1)) {
      problems.push({ field: "action_probability", description: `must be strictly between 0 and 1, got ${probability}`, reason: "DATA_NOT_VALID" });
    }
    return problems;
  },

  infer({ arguments: args, parameters, observation, seed, decisionIndex }) {
    const state = observation.state!.values;
    const advantage = advantagePosterior(parameters, state);
    const advantageProbability = studentTCdf(advantage.location / advantage.scale, advantage.degreesOfFreedom);
    const warmup = args.warmup_decisions > 0 && decisionIndex <= args.warmup_decisions;
    const probability = warmup ? args.warmup_probability : clip(advantageProbability, args.p_min, args.p_max);
    const u = new Random(seed).nextDouble();
    return {
      actions: { action: scalar(u < probability ? 1 : 0) },
      values: {
        action_probability: scalar(probability),
        advantage_probability: scalar(advantageProbability),
        warmup: scalar(warmup ? 1 : 0),
        state: vector([...state]),
        decision_index: scalar(decisionIndex),
      },
      posteriors: { advantage },
    };
  },

  learn({ prior, events }) {
    const d = prior.mean.length;
    const stats = emptyStats(d);
    for (const event of events) {
      const action = value(event, "action");
      const probability = value(event, "action_probability");
      const reward = value(event, "reward");
      if (action === undefined || probability === undefined || reward === undefined) continue;
      addObservation(stats, features(event.state!.values, action, probability), reward);
    }
    const values = { skipped_events: events.length - stats.n };
    if (stats.n === 0) return { parameters: prior, metrics: { dataPoints: 0, iterations: 1, freeEnergy: [0], values } };
    const posterior = normalGammaUpdate(prior, stats);
    const freeEnergy = -normalGammaLogEvidence(prior, posterior, stats.n);
    return { parameters: posterior, metrics: { dataPoints: stats.n, iterations: 1, freeEnergy: [freeEnergy], values } };
  },
};
