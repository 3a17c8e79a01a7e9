// Linear Gaussian state-space model (RxInferServer's LinearStateSpaceModel-v1), C = I:
// x_t = A x_{t−1} + w, w ~ N(0, q·I); y_t = x_t + v, v ~ N(0, r·I). infer is one Kalman step plus an
// H-step prediction; learn is MAP-EM for A (RTS smoother E-step) under a Gaussian prior on A's rows.
import type { Distribution } from "../../math/distribution.ts";
import { choleskySolve, choleskyWithJitter, logDetFromCholesky, matMul, matVec, symmetrize, toArray, transpose } from "../../math/linalg.ts";
import type { Tensor } from "../../math/tensor.ts";
import type { Fields, ModelType } from "../types.ts";
import { kalmanUpdate, propagate, type Sequence, smooth, Workspace } from "./kalman.ts";

interface Arguments {
  state_dimension: number;
  horizon: number;
  process_noise: number;
  observation_noise: number;
  initial_mean: number;
  initial_variance: number;
  prior_variance: number;
  iterations: number;
}

/**
 * A: the MAP estimate (row-major d×d). precision: the d×d precision Λ shared by every row of A in the
 * Gaussian approximation of A's posterior (rows independent, a_i ~ N(A[i,:], Λ⁻¹)); it is the prior of the next learn.
 */
interface Parameters {
  A: number[];
  precision: number[];
}

/** The filter belief about the latest state x_t; `steps` counts the observations absorbed (0: the prior). */
interface State {
  mean: number[];
  covariance: number[];
  steps: number;
}

const LN_2PI = Math.log(2 * Math.PI);

const eye = (d: number, scale: number): Float64Array => {
  const out = new Float64Array(d * d);
  for (let i = 0; i < d; i++) out[i * d + i] = scale;
  return out;
};

/** log p(A) under independent rows a_i ~ N(m0_i, Λ0⁻¹). */
function logPrior(a: Float64Array, m0: Float64Array, l0: Float64Array, d: number): number {
  const { l } = choleskyWithJitter(l0, d);
  let sum = 0;
  const diff = new Float64Array(d);
  for (let i = 0; i < d; i++) {
    for (let j = 0; j < d; j++) diff[j] = a[i * d + j]! - m0[i * d + j]!;
    const ld = matVec(l0, diff, d, d);
    let quad = 0;
    for (let j = 0; j < d; j++) quad += diff[j]! * ld[j]!;
    sum += -0.5 * (d * LN_2PI - logDetFromCholesky(l, d) + quad);
  }
  return sum;
}

export interface EmResult {
  readonly A: Float64Array;
  /** Λ0 + S00/q at the final A. */
  readonly precision: Float64Array;
  /** −(log p(Y | A) + log p(A)) after each iteration; never increases. */
  readonly freeEnergy: number[];
  readonly logLikelihood: number;
}

/** MAP-EM for A with q, r known: each M-step solves A (S00/q + Λ0) = S10/q + M0 Λ0. */
export function emLearn(
  sequences: readonly Sequence[],
  priorMean: Float64Array,
  priorPrecision: Float64Array,
  start: Float64Array,
  q: number,
  r: number,
  d: number,
  iterations: number,
  onIteration?: (iteration: number, total: number) => void,
): EmResult {
  // One buffer per sequence for its smoothed means and one workspace, reused by every E-step.
  const meansOf = sequences.map((seq) => new Float64Array(seq.observations.length));
  const workspace = new Workspace(d);
  const estep = (a: Float64Array) => {
    const s00 = new Float64Array(d * d);
    const s10 = new Float64Array(d * d);
    let ll = 0;
    sequences.forEach((seq, k) => {
      const sm = smooth(seq, a, q, r, d, meansOf[k], workspace);
      ll += sm.logLikelihood;
      for (let i = 0; i < d * d; i++) {
        s00[i] = s00[i]! + sm.secondMoment[i]!;
        s10[i] = s10[i]! + sm.crossMoment[i]!;
      }
    });
    return { s00, s10, ll };
  };
  const m0l0 = matMul(priorMean, priorPrecision, d, d, d);
  let a = Float64Array.from(start);
  let stats = estep(a);
  const freeEnergy: number[] = [];
  for (let k = 0; k < iterations; k++) {
    const lhs = new Float64Array(d * d);
    const rhs = new Float64Array(d * d);
    for (let i = 0; i < d * d; i++) {
      lhs[i] = stats.s00[i]! / q + priorPrecision[i]!;
      rhs[i] = stats.s10[i]! / q + m0l0[i]!;
    }
    symmetrize(lhs, d);
    // A·lhs = rhs with lhs symmetric: row i of A is lhs⁻¹ applied to row i of rhs.
    const { l } = choleskyWithJitter(lhs, d);
    const next = new Float64Array(d * d);
    for (let i = 0; i < d; i++) next.set(choleskySolve(l, d, rhs.subarray(i * d, (i + 1) * d)), i * d);
    a = next;
    stats = estep(a);
    freeEnergy.push(-(stats.ll + logPrior(a, priorMean, priorPrecision, d)));
    onIteration?.(k + 1, iterations);
  }
  const precision = new Float64Array(d * d);
  for (let i = 0; i < d * d; i++) precision[i] = priorPrecision[i]! + stats.s00[i]! / q;
  symmetrize(precision, d);
  return { A: a, precision, freeEnergy, logLikelihood: stats.ll };
}

/** The H predictive state distributions N(A^t m, A^t P A^tᵀ + Σ_{s<t} A^s q A^sᵀ), t = 1..H. */
export function predictStates(a: Float64Array, m: Float64Array, p: Float64Array, q: number, d: number, horizon: number): Distribution[] {
  const out: Distribution[] = [];
  const aTransposed = transpose(a, d, d);
  const scratch = new Float64Array(d * d);
  let mean = m;
  let cov = p;
  for (let t = 0; t < horizon; t++) {
    mean = matVec(a, mean, d, d);
    cov = propagate(a, cov, q, d, new Float64Array(d * d), aTransposed, scratch);
    out.push({ kind: "mvNormal", mean: toArray(mean), covariance: toArray(cov) });
  }
  return out;
}

const initialBelief = (args: Arguments, center?: readonly number[]) => ({
  mean: Float64Array.from(center ?? new Array<number>(args.state_dimension).fill(args.initial_mean)),
  covariance: eye(args.state_dimension, args.initial_variance),
});

/**
 * The events as sequences: an event carrying `current_state` starts a new sequence whose x_1 prior is
 * N(current_state, initial_variance·I); the batch's first sequence starts from N(initial_mean·1, initial_variance·I).
 */
function sequencesOf(events: readonly Fields[], args: Arguments, episodeStarts: readonly number[] = []): Sequence[] {
  const d = args.state_dimension;
  const starts = new Set(episodeStarts);
  // Every sequence is a view into one array of all observations, each starting at its `from`.
  const ys = new Float64Array(events.length * d);
  let end = 0;
  const out: { mean: Float64Array; covariance: Float64Array; from: number }[] = [];
  events.forEach((event, i) => {
    const y = event.y?.values;
    if (y === undefined) return;
    const reset = event.current_state?.values;
    if (out.length === 0 || reset !== undefined || starts.has(i)) out.push({ ...initialBelief(args, reset), from: end });
    ys.set(y, end);
    end += d;
  });
  return out.map(({ mean, covariance, from }, k) => ({ mean, covariance, observations: ys.subarray(from, out[k + 1]?.from ?? end) }));
}

const Y_DESCRIPTION = "Observation y_t = x_t + v of the current state (state_dimension numbers)";
const CURRENT_STATE_DESCRIPTION =
  "Optional: restarts the filter from the belief N(current_state, initial_variance·I) about the current state before y is absorbed " +
  "(RxInferServer's current_state); in learning, an event carrying it starts a new sequence with that prior on its first state";

export const linearStateSpace: ModelType<Arguments, Parameters, State> = {
  schema: {
    name: "linear-state-space-model-v1",
    description:
      "Linear Gaussian state-space model x_t = A x_{t−1} + w, w ~ N(0, process_noise·I); y_t = x_t + v, v ~ N(0, observation_noise·I) " +
      "(observation matrix C = I, as RxInferServer's LinearStateSpaceModel-v1). Inference is an exact Kalman step on the instance's filter " +
      "belief followed by an H-step state prediction with the posterior mean of A; learning is MAP-EM for A with an RTS smoother.",
    category: "time-series",
    arguments: [
      { name: "state_dimension", type: "integer", description: "Dimension d of the state x and the observation y", default: 2, minimum: 1, maximum: 50 },
      {
        name: "horizon",
        type: "integer",
        description: "Number H of future states predicted by inference (s_1 … s_H after the current state)",
        default: 10,
        minimum: 1,
        maximum: 10_000,
        overridable: true,
      },
      { name: "process_noise", type: "number", description: "Variance q of each process-noise component (Q = q·I, known)", default: 1, minimum: 0, exclusiveMinimum: true },
      {
        name: "observation_noise",
        type: "number",
        description: "Variance r of each observation-noise component (R = r·I, known)",
        default: 1,
        minimum: 0,
        exclusiveMinimum: true,
      },
      {
        name: "initial_mean",
        type: "number",
        description: "Every component of the prior mean of the first state (a fresh instance's belief, and each learned sequence's x_1); the reference uses 1",
        default: 1,
      },
      {
        name: "initial_variance",
        type: "number",
        description: "Variance of each component of the first-state prior, and of the belief set by current_state (reference: 1)",
        default: 1,
        minimum: 0,
        exclusiveMinimum: true,
      },
      {
        name: "prior_variance",
        type: "number",
        description: "Initial prior of A: every element independent N(0, prior_variance) (reference: vec(A) ~ N(0, I))",
        default: 1,
        minimum: 0,
        exclusiveMinimum: true,
      },
      { name: "iterations", type: "integer", description: "EM iterations per learn (a fixed count)", default: 50, minimum: 1, maximum: 10_000, overridable: true },
    ],
    parameters: [
      {
        name: "A",
        description:
          "Transition matrix A as a Gaussian over vec(A) in row-major order (element i·d + j is A_ij; d² values): mean = the MAP estimate, " +
          "covariance = I_d ⊗ Λ⁻¹ (rows independent, each with covariance Λ⁻¹, Λ = prior precision + Σ E[x_{t−1}x_{t−1}ᵀ]/q at the MAP). " +
          "The covariance is the complete-data (Laplace-style) approximation: it ignores the extra uncertainty from the latent states being unobserved.",
        family: "mvNormal",
        // d² elements: a Dimension cannot express a square, so the size is in the description.
        shape: [],
      },
    ],
    observation: [
      { name: "y", description: Y_DESCRIPTION, shape: ["state_dimension"], required: true, example: [0.4, 1.3] },
      { name: "current_state", description: CURRENT_STATE_DESCRIPTION, shape: ["state_dimension"], example: [0.5, 1.1] },
    ],
    goal: [],
    event: [
      { name: "y", description: `${Y_DESCRIPTION}; events in sequence order form the time series`, shape: ["state_dimension"], required: true, example: [0.4, 1.3] },
      { name: "current_state", description: CURRENT_STATE_DESCRIPTION, shape: ["state_dimension"], example: [0.5, 1.1] },
    ],
    outputs: [
      {
        name: "states",
        kind: "prediction",
        family: "product",
        description:
          "H multivariate normals, the predictive distributions of the next H states s_t = A s_{t−1} + w (s_0 = the updated current state), " +
          "with A fixed at its posterior mean: mean A^t m, covariance A P Aᵀ + q·I recursively. For orthogonal A and the reference set-up " +
          "(current_state given, unit variances) the covariances are (t + 0.5)·I.",
      },
      { name: "state", kind: "posterior", family: "mvNormal", description: "The filter belief about the current state after absorbing y (the new instance state)" },
    ],
    learning:
      "Approximate (point estimate with a Laplace-style covariance). MAP-EM for A with q and r known: the E-step runs a Kalman filter and " +
      "RTS smoother per sequence, the M-step solves A(Σ E[x_{t−1}x_{t−1}ᵀ]/q + Λ0) = Σ E[x_t x_{t−1}ᵀ]/q + M0Λ0 (rows of A share the " +
      "prior precision Λ0). EM starts from the stored A and runs `iterations` steps; the free energy after each, −(log p(y | A) + log p(A)), " +
      "never increases. Incremental: the stored Gaussian over A (mean and Λ = Λ0 + Σ E[x_{t−1}x_{t−1}ᵀ]/q) is the prior of the next learn, " +
      "so earlier data count through that approximation (assumed-density streaming, close to but not equal to learning everything at once); " +
      "relearn restarts from the initial prior on all selected events. Each episode's events form its own time series whose first state has the " +
      "prior N(initial_mean·1, initial_variance·I); an event with current_state starts a new series. Learning leaves the instance's filter belief unchanged. A learn without events leaves the parameters bit-identical.",
  },

  initialParameters(args) {
    const d = args.state_dimension;
    return { A: new Array<number>(d * d).fill(0), precision: [...eye(d, 1 / args.prior_variance)] };
  },

  initialState(args) {
    const { mean, covariance } = initialBelief(args);
    return { mean: [...mean], covariance: [...covariance], steps: 0 };
  },

  parameterPosteriors({ A, precision }) {
    const d = Math.round(Math.sqrt(A.length));
    const rowCov = choleskyWithJitter(Float64Array.from(precision), d);
    const sigma = new Float64Array(d * d);
    // Inverse through the Cholesky factor: Σ = Λ⁻¹ column by column.
    for (let j = 0; j < d; j++) {
      const e = new Float64Array(d);
      e[j] = 1;
      const col = choleskySolve(rowCov.l, d, e);
      for (let i = 0; i < d; i++) sigma[i * d + j] = col[i]!;
    }
    symmetrize(sigma, d);
    const n = d * d;
    const covariance = new Array<number>(n * n).fill(0);
    for (let i = 0; i < d; i++) {
      for (let j = 0; j < d; j++) {
        for (let k = 0; k < d; k++) covariance[(i * d + j) * n + (i * d + k)] = sigma[j * d + k]!;
      }
    }
    return { A: { kind: "mvNormal", mean: [...A], covariance } };
  },

  infer({ arguments: args, parameters, state, observation }) {
    const d = args.state_dimension;
    const a = Float64Array.from(parameters.A);
    const reset: readonly number[] | undefined = observation.current_state?.values;
    let prior: { mean: Float64Array; covariance: Float64Array };
    if (reset !== undefined) prior = initialBelief(args, reset);
    else if (state.steps === 0) prior = { mean: Float64Array.from(state.mean), covariance: Float64Array.from(state.covariance) };
    else {
      // The belief is about the previous call's state; this observation is of the next one.
      prior = {
        mean: matVec(a, Float64Array.from(state.mean), d, d),
        covariance: propagate(a, Float64Array.from(state.covariance), args.process_noise, d),
      };
    }
    const y: Tensor = observation.y!;
    const updated = kalmanUpdate(prior.mean, prior.covariance, y.values, args.observation_noise, d);
    const factors = predictStates(a, updated.mean, updated.covariance, args.process_noise, d, args.horizon);
    return {
      predictions: { states: { kind: "product", factors } },
      posteriors: { state: { kind: "mvNormal", mean: toArray(updated.mean), covariance: toArray(updated.covariance) } },
      state: { mean: toArray(updated.mean), covariance: toArray(updated.covariance), steps: (reset !== undefined ? 0 : state.steps) + 1 },
    };
  },

  learn({ arguments: args, prior, events, sequenceStarts, onIteration }) {
    const d = args.state_dimension;
    const sequences = sequencesOf(events, args, sequenceStarts);
    const dataPoints = sequences.reduce((n, s) => n + s.observations.length / d, 0);
    if (dataPoints === 0) return { parameters: prior, metrics: { dataPoints: 0, iterations: 0, freeEnergy: [] } };
    const priorMean = Float64Array.from(prior.A);
    const priorPrecision = Float64Array.from(prior.precision);
    const result = emLearn(sequences, priorMean, priorPrecision, priorMean, args.process_noise, args.observation_noise, d, args.iterations, onIteration);
    return {
      parameters: { A: [...result.A], precision: [...result.precision] },
      metrics: {
        dataPoints,
        iterations: args.iterations,
        freeEnergy: result.freeEnergy,
        values: { logLikelihood: result.logLikelihood, sequences: sequences.length },
      },
    };
  },
};
