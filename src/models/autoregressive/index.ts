// AR(k) with unknown coefficients and noise (RxInferServer's Autoregressive-v1, inference-math.md §3.4):
// y_t = θᵀ[y_{t−1}, …, y_{t−k}] + ε_t, ε_t ~ N(0, 1/τ), learned by mean-field VB q(θ)q(τ).
// Observations are noise-free, so once k values are known the lag vectors are observed and learning is
// Bayesian linear regression of y_t on its lags (conditional likelihood: a sequence's first k values
// only serve as lags).
import type { Distribution } from "../../math/distribution.ts";
import { addObservation, emptyStats, type GaussianGamma, meanFieldUpdate, type SufficientStats } from "../../math/linear-gaussian.ts";
import type { Tensor } from "../../math/tensor.ts";
import type { FieldSpec, ModelType } from "../types.ts";

interface Arguments {
  order: number;
  horizon: number;
  observation_count: number;
  iterations: number;
  prior_precision: number;
  noise_shape: number;
  noise_rate: number;
  initial_variance: number;
}

/** q(θ) = N(mean, covariance) and q(τ) = Gamma(shape, rate), stored as they are. */
type Parameters = GaussianGamma;

/**
 * The filter's belief about the lag vector x = [y_t, y_{t−1}, …, y_{t−k+1}] (newest first):
 * N(mean, covariance), covariance k×k row-major. Observed lags have zero variance.
 */
interface State {
  mean: number[];
  covariance: number[];
}

const START: FieldSpec = {
  name: "start",
  description:
    "1: the first value of y begins a new sequence (inference forgets the lags and restarts from the initial lag belief; learning starts new lags here). " +
    "Default 0: it continues the previous sequence",
  shape: [],
  integer: true,
  minimum: 0,
  maximum: 1,
  example: [0],
};

function initialLags(args: Arguments): State {
  const k = args.order;
  const covariance = new Array<number>(k * k).fill(0);
  for (let i = 0; i < k; i++) covariance[i * k + i] = args.initial_variance;
  return { mean: new Array<number>(k).fill(0), covariance };
}

/**
 * The moments of the next value y = θᵀx + ε under q(θ) q(τ) and the lag belief N(x̄, P), with θ and
 * x independent (as the factorised posterior has them): mean mᵀx̄, variance
 * mᵀPm + tr(ΣP) + x̄ᵀΣx̄ + b/a, and Cov(y, x) = Pm. The noise enters at 1/E[τ] = b/a, the value
 * variational message passing uses (E[1/τ] = b/(a−1) would be infinite until a > 1).
 */
function oneStep(parameters: Parameters, lags: State, k: number) {
  const m = parameters.mean;
  const s = parameters.covariance;
  const { mean: x, covariance: p } = lags;
  const pm = new Array<number>(k).fill(0);
  let mean = 0;
  let variance = parameters.rate / parameters.shape;
  for (let i = 0; i < k; i++) {
    mean += m[i]! * x[i]!;
    let sx = 0;
    for (let j = 0; j < k; j++) {
      pm[i] = pm[i]! + p[i * k + j]! * m[j]!;
      sx += s[i * k + j]! * x[j]!;
      variance += s[i * k + j]! * p[j * k + i]!;
    }
    variance += x[i]! * sx + m[i]! * pm[i]!;
  }
  return { mean, variance, pm };
}

/** Shifts a new value (with its variance and covariance c with the old lags) into the lag vector. */
function shift(lags: State, k: number, value: number, variance: number, c: readonly number[]): State {
  const mean = [value, ...lags.mean.slice(0, k - 1)];
  const covariance = new Array<number>(k * k).fill(0);
  covariance[0] = variance;
  for (let i = 1; i < k; i++) {
    covariance[i] = c[i - 1]!;
    covariance[i * k] = c[i - 1]!;
    for (let j = 1; j < k; j++) covariance[i * k + j] = lags.covariance[(i - 1) * k + (j - 1)]!;
  }
  return { mean, covariance };
}

/**
 * Absorbs an observed value: conditions the lag belief on y (Gaussian conditioning with the moments of
 * `oneStep`), then shifts y in with zero variance. With known lags this is a plain shift; with unknown
 * initial lags y also informs the older lags through the current coefficient estimate.
 */
function absorb(parameters: Parameters, lags: State, k: number, y: number): State {
  const { mean, variance, pm } = oneStep(parameters, lags, k);
  const conditioned: State = { mean: [...lags.mean], covariance: [...lags.covariance] };
  if (variance > 0 && Number.isFinite(variance)) {
    const innovation = y - mean;
    for (let i = 0; i < k; i++) {
      conditioned.mean[i] = lags.mean[i]! + (pm[i]! * innovation) / variance;
      for (let j = 0; j < k; j++) conditioned.covariance[i * k + j] = lags.covariance[i * k + j]! - (pm[i]! * pm[j]!) / variance;
    }
    // Exact symmetry and non-negative variances despite the subtraction's round-off.
    for (let i = 0; i < k; i++) {
      conditioned.covariance[i * k + i] = Math.max(0, conditioned.covariance[i * k + i]!);
      for (let j = i + 1; j < k; j++) {
        const v = 0.5 * (conditioned.covariance[i * k + j]! + conditioned.covariance[j * k + i]!);
        conditioned.covariance[i * k + j] = v;
        conditioned.covariance[j * k + i] = v;
      }
    }
  }
  return shift(conditioned, k, y, 0, new Array<number>(k).fill(0));
}

/** The h-step predictive moments for h = 1..horizon by moment propagation (θ drawn afresh each step). */
export function forecast(parameters: Parameters, lags: State, k: number, horizon: number): { mean: number[]; variance: number[] } {
  const means: number[] = [];
  const variances: number[] = [];
  let current = lags;
  for (let h = 0; h < horizon; h++) {
    const { mean, variance, pm } = oneStep(parameters, current, k);
    means.push(mean);
    variances.push(variance);
    current = shift(current, k, mean, variance, pm);
  }
  return { mean: means, variance: variances };
}

/** Runs the filter over a sequence of values (the model's inference without the forecast), for tests and reuse. */
export function filterLags(parameters: Parameters, lags: State, k: number, ys: readonly number[]): State {
  let current = lags;
  for (const y of ys) current = absorb(parameters, current, k, y);
  return current;
}

/** The values of an event or observation in order, and whether the first starts a new sequence. */
function valuesOf(fields: Readonly<Record<string, Tensor>>): { ys: readonly number[]; start: boolean } {
  return { ys: fields.y?.values ?? [], start: fields.start?.values[0] === 1 };
}

/** Regression rows (lags → next value) of a learn's events; lags restart at the batch's and each episode's start and at start = 1. */
export function laggedStatistics(
  events: readonly Readonly<Record<string, Tensor>>[],
  k: number,
  episodeStarts: readonly number[] = [],
): { stats: SufficientStats; observations: number } {
  const starts = new Set(episodeStarts);
  const stats = emptyStats(k);
  let history: number[] = [];
  let observations = 0;
  for (const [i, event] of events.entries()) {
    const { ys, start } = valuesOf(event);
    if (start || starts.has(i)) history = [];
    for (const y of ys) {
      observations += 1;
      if (history.length === k) addObservation(stats, history, y);
      history = [y, ...history].slice(0, k);
    }
  }
  return { stats, observations };
}

const Y_DESCRIPTION = "Observed value(s) of the series";

export const autoregressive: ModelType<Arguments, Parameters, State> = {
  schema: {
    name: "autoregressive-v1",
    description:
      "Autoregressive AR(order) time series with unknown coefficients and noise: y_t = θᵀ[y_{t−1}, …, y_{t−order}] + ε_t, ε_t ~ N(0, 1/τ). " +
      "Prior θ ~ N(0, prior_precision⁻¹·I), τ ~ Gamma(noise_shape, noise_rate) (shape/rate; the reference's τ_α = τ_β = 1). Inference filters new " +
      "observations into the instance's lag vector and forecasts `horizon` steps; learning is mean-field variational Bayes, as RxInferServer's Autoregressive-v1.",
    category: "time series",
    arguments: [
      { name: "order", type: "integer", description: "Number of lags k (the length of θ)", default: 2, minimum: 1 },
      { name: "horizon", type: "integer", description: "Number of future steps inference predicts", default: 5, minimum: 1, overridable: true },
      {
        name: "observation_count",
        type: "integer",
        description:
          "Number of values in an inference call's y (default 1). Override it per call to filter several values at once, e.g. arguments {observation_count: 3} with y = [y1, y2, y3]",
        default: 1,
        minimum: 1,
        overridable: true,
      },
      { name: "iterations", type: "integer", description: "Rounds of mean-field coordinate ascent per learn (fixed count, as the reference's 20)", default: 20, minimum: 1, overridable: true },
      {
        name: "prior_precision",
        type: "number",
        description:
          "Prior precision of each coefficient, θ ~ N(0, prior_precision⁻¹·I). The default 1e-6 (prior sd 1000) is negligible after a few observations " +
          "yet keeps the prior proper; the reference uses 1e-10",
        default: 1e-6,
        minimum: 0,
        exclusiveMinimum: true,
      },
      { name: "noise_shape", type: "number", description: "Shape of the Gamma prior on τ (reference τ_α = 1)", default: 1, minimum: 0, exclusiveMinimum: true },
      { name: "noise_rate", type: "number", description: "Rate of the Gamma prior on τ (reference τ_β = 1)", default: 1, minimum: 0, exclusiveMinimum: true },
      {
        name: "initial_variance",
        type: "number",
        description:
          "Variance of the lags not yet observed (mean 0), when an instance starts or an inference observation has start = 1; the reference's x_Λ = I gives 1. " +
          "Only matters for the first `order` − 1 values of a sequence",
        default: 1,
        minimum: 0,
        exclusiveMinimum: true,
      },
    ],
    parameters: [
      { name: "theta", description: "AR coefficients θ (order elements; θ_1 multiplies y_{t−1}): the Gaussian factor q(θ)", family: "mvNormal", shape: ["order"] },
      { name: "noise_precision", description: "Noise precision τ: the Gamma factor q(τ) (shape/rate)", family: "gamma", shape: [] },
    ],
    observation: [
      {
        name: "y",
        description: `${Y_DESCRIPTION}: observation_count values in time order (one by default), filtered into the lag vector before forecasting`,
        shape: ["observation_count"],
        required: true,
        example: [0.4],
      },
      START,
    ],
    goal: [],
    event: [
      {
        name: "y",
        description: `${Y_DESCRIPTION}, one per event; events in sequence order form the series (stored inference observations, which may hold several values, count too)`,
        shape: [],
        required: true,
        example: [0.4],
      },
      START,
    ],
    outputs: [
      {
        name: "y",
        kind: "prediction",
        family: "product",
        shape: ["horizon"],
        description:
          "One normal per future step h = 1..horizon: the predictive moments under q(θ)q(τ), propagated through the lag vector with θ independent of the lags " +
          "(mean mᵀx̄_h, variance mᵀP_h m + tr(ΣP_h) + x̄_hᵀΣx̄_h + b/a). h = 1 is exact under q with known lags (apart from the noise entering at 1/E[τ]); " +
          "for h > 1 coefficient uncertainty is approximated: each step treats θ as a fresh draw, ignoring that the same θ acts at every step. " +
          "With the noise at b/a rather than the Student-t's heavier tails, the spread is that of variational message passing",
      },
      { name: "y_mean", kind: "value", shape: ["horizon"], description: "The predictive means, one per future step" },
      { name: "y_variance", kind: "value", shape: ["horizon"], description: "The predictive variances, one per future step" },
      {
        name: "lags",
        kind: "posterior",
        family: "mvNormal",
        shape: ["order"],
        description: "The filter belief about [y_t, …, y_{t−order+1}] after absorbing y (the new instance state); observed lags have zero variance",
      },
    ],
    learning:
      "Approximate: mean-field variational Bayes q(θ)q(τ) on the regression of each value on its `order` predecessors (exact lags: the observations are " +
      "noise-free), `iterations` rounds from E[τ] of the prior; the free energy (−ELBO) after each round is reported and never increases. The fixed point " +
      "has the exact Normal-Gamma posterior mean of θ given E[τ]. A learn's events (stored inference observations included, each value in order) form " +
      "one sequence per episode, split further where an event has start = 1; the first `order` values of each sequence only provide lags. Each learn starts new lags: no lag " +
      "is carried over from an earlier learn, so splitting one series over several learns loses `order` regression rows per split (O(order/n)). " +
      "The stored posterior is the prior of the next learn (streaming VB: close to, not equal to, learning everything at once); relearn " +
      "starts from the initial prior. A learn without a complete lag vector leaves the parameters bit-identical. Learning does not change the filter's lags.",
  },

  initialParameters(args) {
    const k = args.order;
    const covariance = new Array<number>(k * k).fill(0);
    for (let i = 0; i < k; i++) covariance[i * k + i] = 1 / args.prior_precision;
    return { mean: new Array<number>(k).fill(0), covariance, shape: args.noise_shape, rate: args.noise_rate };
  },

  initialState: (args) => initialLags(args),

  parameterPosteriors: ({ mean, covariance, shape, rate }) => ({
    theta: { kind: "mvNormal", mean: [...mean], covariance: [...covariance] },
    noise_precision: { kind: "gamma", shape, rate },
  }),

  infer({ arguments: args, parameters, state, observation }) {
    const k = args.order;
    const { ys, start } = valuesOf(observation);
    const lags = filterLags(parameters, start ? initialLags(args) : state, k, ys);
    const { mean, variance } = forecast(parameters, lags, k, args.horizon);
    const factors: Distribution[] = mean.map((m, h) => ({ kind: "normal", mean: m, variance: variance[h]! }));
    return {
      predictions: { y: { kind: "product", factors } },
      values: { y_mean: { shape: [args.horizon], values: mean }, y_variance: { shape: [args.horizon], values: variance } },
      posteriors: { lags: { kind: "mvNormal", mean: [...lags.mean], covariance: [...lags.covariance] } },
      state: lags,
    };
  },

  learn({ arguments: args, prior, events, sequenceStarts, onIteration }) {
    const { stats, observations } = laggedStatistics(events, args.order, sequenceStarts);
    if (stats.n === 0) {
      return { parameters: prior, metrics: { dataPoints: 0, iterations: 0, freeEnergy: [], values: { observations } } };
    }
    const { posterior, freeEnergy } = meanFieldUpdate(prior, stats, args.iterations, onIteration);
    return { parameters: posterior, metrics: { dataPoints: stats.n, iterations: args.iterations, freeEnergy, values: { observations } } };
  },
};
