// y = wᵀφ(x) + ε, ε ~ N(0, 1/τ), φ(x) = [x; 1] with an intercept, else x.
// Normal-Gamma prior w | τ ~ N(0, (τ·prior_precision·I)⁻¹), τ ~ Gamma(noise_shape, noise_rate); exact conjugate learning.
import type { Distribution } from "../../math/distribution.ts";
import {
  addObservation,
  emptyStats,
  type NormalGamma,
  normalGammaLogEvidence,
  normalGammaPredictive,
  normalGammaUpdate,
  weightMarginal,
} from "../../math/linear-gaussian.ts";
import { scalar } from "../../math/tensor.ts";
import type { ModelType } from "../types.ts";

interface Arguments {
  input_dim: number;
  intercept: boolean;
  prior_precision: number;
  noise_shape: number;
  noise_rate: number;
}

/** The Normal-Gamma posterior itself: mean, precision Λ (row-major), shape, rate. */
type Parameters = NormalGamma;

type State = Record<string, never>;

const featureCount = (args: Arguments): number => args.input_dim + (args.intercept ? 1 : 0);

function features(x: readonly number[], args: Arguments): number[] {
  return args.intercept ? [...x, 1] : [...x];
}

const X_DESCRIPTION = "Input vector x of input_dim numbers";

export const linearRegression: ModelType<Arguments, Parameters, State> = {
  schema: {
    name: "linear-regression-v1",
    description:
      "Bayesian linear regression with unknown noise: y = wᵀφ(x) + ε, ε ~ N(0, 1/τ), φ(x) = [x; 1] with intercept (w = [slopes…, intercept]), else x. " +
      "Normal-Gamma prior w | τ ~ N(0, (τ·prior_precision·I)⁻¹), τ ~ Gamma(noise_shape, noise_rate). Predicts y with the exact Student-t predictive.",
    category: "regression",
    arguments: [
      { name: "input_dim", type: "integer", description: "Number of elements of the input x", default: 1, minimum: 1 },
      { name: "intercept", type: "boolean", description: "Append a constant 1 to x, so the last weight is the intercept", default: true },
      {
        name: "prior_precision",
        type: "number",
        description:
          "Λ0 = prior_precision·I: prior precision of w relative to the noise precision τ (w | τ has variance 1/(τ·prior_precision)). " +
          "The default 1e-6 puts prior standard deviations a thousand times the noise level on the weights, so a handful of points dominates it, " +
          "while keeping the prior proper (finite evidence, defined predictive before any data).",
        default: 1e-6,
        minimum: 0,
        exclusiveMinimum: true,
      },
      {
        name: "noise_shape",
        type: "number",
        description:
          "Shape a0 of the Gamma prior on the noise precision τ. The default 1e-3 (with noise_rate 1e-3, the classic vague Gamma(0.001, 0.001)) " +
          "is worth 0.002 observations: proper, but negligible after a few data points.",
        default: 1e-3,
        minimum: 0,
        exclusiveMinimum: true,
      },
      {
        name: "noise_rate",
        type: "number",
        description: "Rate b0 of the Gamma prior on the noise precision τ (prior mean of τ is noise_shape/noise_rate); default 1e-3, see noise_shape",
        default: 1e-3,
        minimum: 0,
        exclusiveMinimum: true,
      },
    ],
    parameters: [
      {
        name: "w",
        description:
          "Weights (slopes in the order of x, then the intercept if any; input_dim + 1 or input_dim elements). The exact marginal is a multivariate " +
          "Student-t with 2·shape degrees of freedom; it is reported moment-matched: mean m and covariance rate/(shape − 1)·Λ⁻¹ when shape > 1, " +
          "otherwise (no finite covariance) the Student-t scale matrix rate/shape·Λ⁻¹.",
        family: "mvNormal",
        // input_dim + 1 with an intercept: a Dimension cannot express a sum, so the size is in the description (as logistic-regression-v1 does).
        shape: [],
      },
      { name: "noise_precision", description: "Noise precision τ = 1/σ² (exact Gamma marginal, shape/rate)", family: "gamma", shape: [] },
    ],
    observation: [{ name: "x", description: X_DESCRIPTION, shape: ["input_dim"], required: true, example: [0.5] }],
    goal: [],
    event: [
      { name: "x", description: X_DESCRIPTION, shape: ["input_dim"], required: true, example: [0.5] },
      {
        name: "y",
        description: "Observed target; events without y (e.g. stored inference observations) are skipped by learning",
        shape: [],
        example: [1.25],
      },
    ],
    outputs: [
      {
        name: "y",
        kind: "prediction",
        family: "studentT",
        description: "Exact posterior predictive of y at x: Student-t, ν = 2·shape, location φᵀm, scale² = rate/shape·(1 + φᵀΛ⁻¹φ)",
      },
      { name: "y_mean", kind: "value", description: "φᵀm, the predictive's location (its mean when ν > 1)" },
      {
        name: "y_variance",
        kind: "value",
        description: "Variance of the predictive, scale²·ν/(ν − 2); +Infinity while ν ≤ 2, i.e. until more than 2 − 2·noise_shape events have been learned (the Student-t has no finite variance then)",
      },
    ],
    learning:
      "Exact. Learning adds the events' sufficient statistics (ΦᵀΦ, Φᵀy, yᵀy, n) to the Normal-Gamma posterior, and the stored posterior is the " +
      "prior of the next learn, so incremental learning, several episodes and relearning all give the posterior of learning all events at once " +
      "(the reference server restarted from uninformative priors on every learn and so forgot earlier data; that is fixed here). " +
      "Events without y are skipped; a learn with none leaves the parameters unchanged. The free energy is the negative log evidence of the batch.",
  },

  initialParameters(args) {
    const d = featureCount(args);
    const precision = new Array<number>(d * d).fill(0);
    for (let i = 0; i < d; i++) precision[i * d + i] = args.prior_precision;
    return { mean: new Array<number>(d).fill(0), precision, shape: args.noise_shape, rate: args.noise_rate };
  },

  initialState: () => ({}),

  parameterPosteriors(parameters) {
    const { mean, covariance } = weightMarginal(parameters);
    return {
      w: { kind: "mvNormal", mean, covariance },
      noise_precision: { kind: "gamma", shape: parameters.shape, rate: parameters.rate },
    };
  },

  infer({ arguments: args, parameters, observation }) {
    const phi = features(observation.x!.values, args);
    const { location, scale, degreesOfFreedom } = normalGammaPredictive(parameters, phi);
    const nu = degreesOfFreedom;
    const variance = nu > 2 ? (scale * scale * nu) / (nu - 2) : Number.POSITIVE_INFINITY;
    const y: Distribution = { kind: "studentT", degreesOfFreedom: nu, location, scale };
    return { predictions: { y }, values: { y_mean: scalar(location), y_variance: scalar(variance) } };
  },

  learn({ arguments: args, prior, events }) {
    const stats = emptyStats(featureCount(args));
    for (const event of events) {
      const y = event.y?.values[0];
      if (y === undefined) continue;
      addObservation(stats, features(event.x!.values, args), y);
    }
    // Bit-identical parameters when nothing was learned: a solve would round the mean.
    if (stats.n === 0) return { parameters: prior, metrics: { dataPoints: 0, iterations: 0, freeEnergy: [0] } };
    const posterior = normalGammaUpdate(prior, stats);
    const logEvidence = normalGammaLogEvidence(prior, posterior, stats.n);
    return { parameters: posterior, metrics: { dataPoints: stats.n, iterations: 1, freeEnergy: [-logEvidence] } };
  },
};
