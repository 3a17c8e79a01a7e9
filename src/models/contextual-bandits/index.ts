// K-armed contextual bandit: one exact Normal-Gamma Bayesian linear regression of the reward on the
// context per arm, decisions by Thompson sampling, with a Monte-Carlo propensity for each decision.
//
// Model, for arm k = 0..K−1 and feature vector φ(c) = [1, c] (or c when `intercept` is false):
//   τ_k ~ Gamma(noise_shape, noise_rate),  θ_k | τ_k ~ N(0, (τ_k·prior_precision·I)⁻¹),
//   reward | arm = k, c ~ N(θ_kᵀφ(c), 1/τ_k).
// Arms are independent a priori and given the data, so each arm's posterior is the exact conjugate
// update of its own (context, reward) pairs (src/math/linear-gaussian.ts, engine A).
//
// Draw order of one decision, from `new Random(seed)` (part of reproducibility):
//   1. the decision: for k = 0..K−1 in order, one joint draw (τ_k, θ_k) of arm k's posterior
//      (`sampleNormalGamma`: τ_k first, then the normals of θ_k); sampled_rewards[k] = θ_kᵀφ(c);
//      chosen arm = argmax, ties to the lowest index.
//   2. the propensity: M = propensity_draws further rounds of step 1 continuing the same stream, each
//      giving the arm that round would have chosen. arm_probabilities[k] = (count_k + [k = chosen]) / (M + 1):
//      the decision's own draw is one more independent draw of the same policy, so the estimate is
//      unbiased and the chosen arm's propensity is never 0 (at least 1/(M+1)); its standard error is
//      √(p(1−p)/(M+1)).
// Changing propensity_draws changes the propensity estimate but never the chosen arm.
import type { Distribution } from "../../math/distribution.ts";
import {
  linearFormPosterior,
  addObservation,
  emptyStats,
  type NormalGamma,
  normalGammaLogEvidence,
  normalGammaUpdate,
  type SufficientStats,
  normalGammaSampler,
  weightMarginal,
} from "../../math/linear-gaussian.ts";
import { Random } from "../../math/random.ts";
import { scalar, vector } from "../../math/tensor.ts";
import type { DataProblem, Fields, ModelType } from "../types.ts";

interface Arguments {
  n_arms: number;
  context_dim: number;
  intercept: boolean;
  prior_precision: number;
  noise_shape: number;
  noise_rate: number;
  propensity_draws: number;
}

interface Parameters {
  /** Each arm's Normal-Gamma posterior over its weights (intercept first) and noise precision. */
  arms: NormalGamma[];
}

type State = Record<string, never>;

const featureCount = (args: Arguments): number => args.context_dim + (args.intercept ? 1 : 0);

function features(context: readonly number[], intercept: boolean): Float64Array {
  if (!intercept) return Float64Array.from(context);
  const phi = new Float64Array(context.length + 1);
  phi[0] = 1;
  phi.set(context, 1);
  return phi;
}

function dot(x: ArrayLike<number>, y: ArrayLike<number>): number {
  let sum = 0;
  for (let i = 0; i < x.length; i++) sum += x[i]! * y[i]!;
  return sum;
}

/** The posterior of an arm's expected reward θᵀφ at φ: what the Thompson draw samples (no noise term). */
function expectedRewardPosterior(post: NormalGamma, phi: Float64Array): Distribution {
  return { kind: "studentT", ...linearFormPosterior(post, phi) };
}

type ArmSampler = ReturnType<typeof normalGammaSampler>;

/** One Thompson round: a draw of every arm in index order; returns the argmax (ties to the lowest index). */
function thompsonRound(
  arms: readonly ArmSampler[],
  phi: Float64Array,
  rng: Random,
  rewards: Float64Array,
  weights = new Float64Array(phi.length),
): number {
  let best = 0;
  for (let k = 0; k < arms.length; k++) {
    rewards[k] = dot(arms[k]!(rng, weights).weights, phi);
    if (rewards[k]! > rewards[best]!) best = k;
  }
  return best;
}

const armOf = (fields: Fields): number | undefined => fields.arm?.values[0];
const rewardOf = (fields: Fields): number | undefined => fields.reward?.values[0];

const ARM_DESCRIPTION = "The arm played, 0..n_arms-1; give it together with reward";
const REWARD_DESCRIPTION = "The reward observed after playing arm; give it together with arm";

export const contextualBandits: ModelType<Arguments, Parameters, State> = {
  schema: {
    name: "contextual-bandits-v1",
    description:
      "K-armed contextual bandit by Thompson sampling. Each arm k has its own Bayesian linear regression of the reward on " +
      "φ(c) = [1, c] (intercept first; c alone when intercept is false): τ_k ~ Gamma(noise_shape, noise_rate) (shape, rate), " +
      "θ_k | τ_k ~ N(0, (τ_k·prior_precision·I)⁻¹), reward ~ N(θ_kᵀφ(c), 1/τ_k). infer draws (τ_k, θ_k) from every arm's posterior " +
      "(arms in index order, τ before θ), plays the arm with the largest θ_kᵀφ(c) (ties to the lowest index) and estimates the " +
      "probability of that choice under the policy from propensity_draws further Thompson rounds of the same random stream " +
      "together with the decision's own round: arm_probabilities[k] = (rounds choosing k) / (propensity_draws + 1).",
    category: "bandit",
    arguments: [
      { name: "n_arms", type: "integer", description: "Number of arms K", default: 3, minimum: 2, maximum: 100 },
      { name: "context_dim", type: "integer", description: "Length of the context vector", default: 2, minimum: 1, maximum: 100 },
      {
        name: "intercept",
        type: "boolean",
        description: "Prepend a constant 1 to the context, so each arm has a baseline reward (weight 0 of each arm)",
        default: true,
      },
      {
        name: "prior_precision",
        type: "number",
        description: "Prior precision λ0 of each weight relative to the noise precision: θ_k | τ_k ~ N(0, (τ_k·λ0·I)⁻¹)",
        default: 1,
        minimum: 0,
        exclusiveMinimum: true,
      },
      {
        name: "noise_shape",
        type: "number",
        description: "Prior shape of each arm's noise precision τ_k ~ Gamma(shape, rate)",
        default: 1,
        minimum: 0,
        exclusiveMinimum: true,
      },
      {
        name: "noise_rate",
        type: "number",
        description: "Prior rate of each arm's noise precision τ_k ~ Gamma(shape, rate) (prior mean of τ_k = shape/rate)",
        default: 1,
        minimum: 0,
        exclusiveMinimum: true,
      },
      {
        name: "propensity_draws",
        type: "integer",
        description:
          "Monte-Carlo rounds M for the propensity (standard error √(p(1−p)/(M+1))); changing it never changes the chosen arm",
        default: 1000,
        minimum: 100,
        maximum: 100000,
        overridable: true,
      },
    ],
    parameters: [
      {
        name: "weights",
        description:
          "Per arm, the marginal of its weights (intercept first, then one per context element): a product of n_arms mvNormal " +
          "factors with the multivariate Student-t marginal's mean and covariance (b/(a−1))Λ⁻¹ (scale matrix (b/a)Λ⁻¹ while a ≤ 1)",
        family: "product",
        shape: ["n_arms"],
      },
      {
        name: "noise_precision",
        description: "Per arm, the posterior of its noise precision τ_k: a product of n_arms gamma (shape, rate) factors",
        family: "product",
        shape: ["n_arms"],
      },
    ],
    observation: [
      { name: "context", description: "The context of this decision", shape: ["context_dim"], required: true, example: [0.2, -1] },
    ],
    goal: [],
    event: [
      { name: "context", description: "The context the arm was played in", shape: ["context_dim"], required: true, example: [0.2, -1] },
      { name: "arm", description: ARM_DESCRIPTION, shape: [], integer: true, minimum: 0, example: [1] },
      { name: "reward", description: REWARD_DESCRIPTION, shape: [], example: [0.5] },
    ],
    outputs: [
      { name: "arm", kind: "action", description: "The arm to play, 0-based", shape: [] },
      {
        name: "propensity",
        kind: "value",
        description: "Estimated probability that the policy plays the chosen arm at this context (never 0)",
        shape: [],
      },
      {
        name: "arm_probabilities",
        kind: "value",
        description: "Estimated probability of each arm under the policy at this context; sums to 1",
        shape: ["n_arms"],
      },
      {
        name: "sampled_rewards",
        kind: "value",
        description: "The decision's Thompson draws θ_kᵀφ(c) of each arm's expected reward; largest at the chosen arm",
        shape: ["n_arms"],
      },
      {
        name: "expected_reward",
        kind: "posterior",
        family: "product",
        description:
          "Posterior of each arm's expected reward θ_kᵀφ(c) at this context: n_arms Student-t factors (ν = 2a_k, location φᵀm_k, " +
          "scale √((b_k/a_k)·φᵀΛ_k⁻¹φ))",
        shape: ["n_arms"],
      },
    ],
    stochastic: true,
    learning:
      "Exact. Events with both arm and reward add (φ(context), reward) to that arm's sufficient statistics; the others (e.g. " +
      "stored infer observations, which carry only the context) are skipped. The conjugate Normal-Gamma update of each arm uses " +
      "the stored posterior as the prior, so incremental learning, relearning and learning several episodes together give the " +
      "same posterior as learning all events at once. The free energy is the negative log evidence of the batch's rewards.",
  },

  initialParameters(args) {
    const d = featureCount(args);
    const precision = new Array<number>(d * d).fill(0);
    for (let i = 0; i < d; i++) precision[i * d + i] = args.prior_precision;
    const prior: NormalGamma = { mean: new Array<number>(d).fill(0), precision, shape: args.noise_shape, rate: args.noise_rate };
    return { arms: Array.from({ length: args.n_arms }, () => ({ ...prior, mean: [...prior.mean], precision: [...precision] })) };
  },

  initialState: () => ({}),

  parameterPosteriors: ({ arms }) => ({
    weights: { kind: "product", factors: arms.map((arm) => ({ kind: "mvNormal", ...weightMarginal(arm) })) },
    noise_precision: { kind: "product", factors: arms.map((arm) => ({ kind: "gamma", shape: arm.shape, rate: arm.rate })) },
  }),

  checkData(kind, fields, args) {
    if (kind !== "event") return [];
    const problems: DataProblem[] = [];
    const arm = armOf(fields);
    if (arm !== undefined && arm > args.n_arms - 1) {
      problems.push({ field: "arm", description: `must be an arm from 0 to ${args.n_arms - 1}, got ${arm}`, reason: "DATA_NOT_VALID" });
    }
    if (arm !== undefined && rewardOf(fields) === undefined) {
      problems.push({ field: "reward", description: "is required when arm is given", reason: "DATA_INCOMPLETE" });
    }
    if (arm === undefined && rewardOf(fields) !== undefined) {
      problems.push({ field: "arm", description: "is required when reward is given", reason: "DATA_INCOMPLETE" });
    }
    return problems;
  },

  infer({ arguments: args, parameters, observation, seed }) {
    const { arms } = parameters;
    const k = arms.length;
    const phi = features(observation.context!.values, args.intercept);
    const rng = new Random(seed);
    const samplers = arms.map(normalGammaSampler);
    const sampled = new Float64Array(k);
    const chosen = thompsonRound(samplers, phi, rng, sampled);

    const draws = args.propensity_draws;
    const counts = new Array<number>(k).fill(0);
    counts[chosen] = 1;
    const scratch = new Float64Array(k);
    const weights = new Float64Array(phi.length);
    for (let m = 0; m < draws; m++) counts[thompsonRound(samplers, phi, rng, scratch, weights)]! += 1;
    const probabilities = counts.map((c) => c / (draws + 1));

    return {
      actions: { arm: scalar(chosen) },
      values: {
        propensity: scalar(probabilities[chosen]!),
        arm_probabilities: vector(probabilities),
        sampled_rewards: vector(Array.from(sampled)),
      },
      posteriors: { expected_reward: { kind: "product", factors: arms.map((arm) => expectedRewardPosterior(arm, phi)) } },
    };
  },

  learn({ arguments: args, prior, events }) {
    const d = featureCount(args);
    const stats: SufficientStats[] = prior.arms.map(() => emptyStats(d));
    let used = 0;
    for (const event of events) {
      const arm = armOf(event);
      const reward = rewardOf(event);
      if (arm === undefined || reward === undefined) continue;
      addObservation(stats[arm]!, features(event.context!.values, args.intercept), reward);
      used += 1;
    }
    const values = { skipped_events: events.length - used };
    if (used === 0) return { parameters: prior, metrics: { dataPoints: 0, iterations: 1, freeEnergy: [0], values } };

    let logEvidence = 0;
    const arms = prior.arms.map((armPrior, k) => {
      const s = stats[k]!;
      if (s.n === 0) return armPrior;
      const posterior = normalGammaUpdate(armPrior, s);
      logEvidence += normalGammaLogEvidence(armPrior, posterior, s.n);
      return posterior;
    });
    return { parameters: { arms }, metrics: { dataPoints: used, iterations: 1, freeEnergy: [-logEvidence], values } };
  },
};
