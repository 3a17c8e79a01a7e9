// Bayesian logistic regression for binary risk scoring: y ~ Bernoulli(σ(wᵀφ(x))), φ(x) = [x; 1] with an
// intercept, w ~ N(0, prior_variance·I). Learning is a Laplace approximation (Newton's method on the log
// posterior); prediction integrates the logistic over the Gaussian linear predictor by adaptive quadrature.
import type { Distribution } from "../../math/distribution.ts";
import { choleskyInverse, choleskySolve, choleskyWithJitter, logDetFromCholesky } from "../../math/linalg.ts";
import { expectedLogistic } from "../../math/quadrature.ts";
import { log1pExp, logistic, normalCdf, normalQuantile } from "../../math/special.ts";
import { scalar, vector } from "../../math/tensor.ts";
import type { ArgumentProblem, Fields, LearnOutput, ModelType } from "../types.ts";

export interface Arguments {
  input_dim: number;
  intercept: boolean;
  prior_variance: number;
  credible_level: number;
  risk_thresholds: number[];
  risk_labels: string[];
}

/** The Gaussian posterior of w: row-major d×d matrices, d = input_dim (+ 1 with an intercept). */
export interface Parameters {
  mean: number[];
  covariance: number[];
  /** The inverse of `covariance` (the Laplace Hessian), kept so the next learn's prior needs no inversion. */
  precision: number[];
}

type State = Record<string, never>;

const MAX_NEWTON_STEPS = 50;
const STEP_TOLERANCE = 1e-10;
const ARMIJO = 1e-4;
const MAX_HALVINGS = 60;
const LN_2PI = Math.log(2 * Math.PI);

export const dimension = (args: Pick<Arguments, "input_dim" | "intercept">): number => args.input_dim + (args.intercept ? 1 : 0);

/** φ(x) = [x; 1] with an intercept, x without. */
function features(x: readonly number[], args: Arguments, out: Float64Array = new Float64Array(dimension(args))): Float64Array {
  for (let i = 0; i < args.input_dim; i++) out[i] = x[i]!;
  if (args.intercept) out[args.input_dim] = 1;
  return out;
}

/**
 * The arguments' consistency, which the schema cannot express: thresholds strictly increasing inside
 * (0, 1), one label more than thresholds, labels non-empty and distinct.
 */
function checkArguments(args: Arguments): ArgumentProblem[] {
  const problems: ArgumentProblem[] = [];
  const bad = (argument: string, description: string) => problems.push({ argument, description });
  const t = args.risk_thresholds;
  if (t.some((v) => !(v > 0 && v < 1))) bad("risk_thresholds", "every threshold must lie strictly between 0 and 1");
  else if (t.some((v, i) => i > 0 && !(v > t[i - 1]!))) bad("risk_thresholds", "must be strictly increasing");
  const labels = args.risk_labels;
  if (labels.length !== t.length + 1) {
    bad("risk_labels", `must have one label more than risk_thresholds (${t.length + 1}), got ${labels.length}`);
  } else if (labels.some((l) => l.length === 0)) bad("risk_labels", "labels must not be empty");
  else if (new Set(labels).size !== labels.length) bad("risk_labels", "labels must be distinct");
  return problems;
}

/** The level of risk p: the number of thresholds at or below p (a risk equal to a threshold takes the higher level). */
export function riskLevelIndex(p: number, thresholds: readonly number[]): number {
  let level = 0;
  while (level < thresholds.length && p >= thresholds[level]!) level++;
  return level;
}

/** P(σ(z) ∈ [lo, hi)) for z ~ N(mu, sd²), lo/hi in [0, 1]; without cancellation in the upper tail. */
function bandProbability(lo: number, hi: number, mu: number, sd: number): number {
  const logit = (p: number) => (p <= 0 ? -Infinity : p >= 1 ? Infinity : Math.log(p / (1 - p)));
  const a = (logit(lo) - mu) / sd;
  const b = (logit(hi) - mu) / sd;
  return a > 0 ? normalCdf(-a) - normalCdf(-b) : normalCdf(b) - normalCdf(a);
}

// ---------------------------------------------------------------------------------------------------
// Learning: Laplace approximation by Newton's method.

interface Batch {
  /** n×d design matrix, row-major. */
  readonly phi: Float64Array;
  /** +1 for y = 0, −1 for y = 1, so that −log p(y | z) = log(1 + e^{s·z}). */
  readonly sign: Float64Array;
  readonly y: Float64Array;
  readonly n: number;
}

function batchOf(events: readonly Fields[], args: Arguments): Batch {
  const d = dimension(args);
  const usable = events.filter((e) => e.y !== undefined && e.x !== undefined);
  const n = usable.length;
  const phi = new Float64Array(n * d);
  const sign = new Float64Array(n);
  const y = new Float64Array(n);
  usable.forEach((e, i) => {
    features(e.x!.values, args, phi.subarray(i * d, (i + 1) * d));
    y[i] = e.y!.values[0]!;
    sign[i] = y[i] === 1 ? -1 : 1;
  });
  return { phi, sign, y, n };
}

/** Linear predictors z = Φ w. */
function predictors(batch: Batch, w: Float64Array, d: number, out: Float64Array = new Float64Array(batch.n)): Float64Array {
  for (let i = 0; i < batch.n; i++) {
    let z = 0;
    for (let j = 0; j < d; j++) z += batch.phi[i * d + j]! * w[j]!;
    out[i] = z;
  }
  return out;
}

/** ½ uᵀ P u. */
function halfQuad(p: Float64Array, u: Float64Array, d: number): number {
  let sum = 0;
  for (let i = 0; i < d; i++) {
    let row = 0;
    for (let j = 0; j < d; j++) row += p[i * d + j]! * u[j]!;
    sum += u[i]! * row;
  }
  return 0.5 * sum;
}

/**
 * softplus(u + δ) − softplus(u), accurate even when the change is far below softplus(u)'s rounding:
 * log((1 + e^{u+δ}) / (1 + e^u)) = log1p(σ(u)·expm1(δ)). Large changes subtract directly.
 */
function softplusChange(u: number, delta: number): number {
  if (Math.abs(delta) <= 1) return Math.log1p(logistic(u) * Math.expm1(delta));
  return log1pExp(u + delta) - log1pExp(u);
}

interface LaplaceFit {
  readonly mean: Float64Array;
  /** H = ΦᵀWΦ + P0 at the mean (plus any Cholesky jitter), and its inverse. */
  readonly precision: Float64Array;
  readonly covariance: Float64Array;
  readonly iterations: number;
  /** −log p(y, w) after each accepted step. */
  readonly trace: number[];
  readonly converged: boolean;
  readonly logEvidence: number;
}

/** The negative log joint −log p(y, w) with prior N(m0, P0⁻¹), given z = Φw and log|P0|. */
function negativeLogJoint(batch: Batch, z: Float64Array, w: Float64Array, m0: Float64Array, p0: Float64Array, logDetP0: number, d: number) {
  let loss = 0;
  for (let i = 0; i < batch.n; i++) loss += log1pExp(batch.sign[i]! * z[i]!);
  const u = new Float64Array(d);
  for (let j = 0; j < d; j++) u[j] = w[j]! - m0[j]!;
  return loss + halfQuad(p0, u, d) + 0.5 * d * LN_2PI - 0.5 * logDetP0;
}

/** Gradient of the log posterior and the negative Hessian H = ΦᵀWΦ + P0 at w. */
function gradientAndHessian(batch: Batch, z: Float64Array, w: Float64Array, m0: Float64Array, p0: Float64Array, d: number) {
  const g = new Float64Array(d);
  const h = Float64Array.from(p0);
  for (let j = 0; j < d; j++) {
    let prior = 0;
    for (let k = 0; k < d; k++) prior += p0[j * d + k]! * (w[k]! - m0[k]!);
    g[j] = -prior;
  }
  for (let i = 0; i < batch.n; i++) {
    const row = i * d;
    const zi = z[i]!;
    const residual = batch.y[i]! - logistic(zi);
    const weight = logistic(zi) * logistic(-zi);
    for (let j = 0; j < d; j++) {
      const pj = batch.phi[row + j]!;
      g[j] = g[j]! + residual * pj;
      const wpj = weight * pj;
      for (let k = 0; k <= j; k++) h[j * d + k] = h[j * d + k]! + wpj * batch.phi[row + k]!;
    }
  }
  for (let j = 0; j < d; j++) for (let k = 0; k < j; k++) h[k * d + j] = h[j * d + k]!;
  return { g, h };
}

/**
 * The Laplace approximation N(ŵ, H⁻¹) of the posterior of w given the batch and the Gaussian prior
 * N(m0, P0⁻¹): Newton's method from m0 with Armijo backtracking on the log posterior, stopping when a
 * step's ‖Δw‖∞ < 1e-10 or after 50 steps. The objective's change per trial step is computed term by term
 * (softplusChange), so the line search stays meaningful down to steps far below the objective's rounding.
 */
function laplaceFit(batch: Batch, m0In: readonly number[], p0In: readonly number[], d: number): LaplaceFit {
  const m0 = Float64Array.from(m0In);
  const p0 = Float64Array.from(p0In);
  const logDetP0 = logDetFromCholesky(choleskyWithJitter(p0, d).l, d);
  const w = Float64Array.from(m0);
  const z = predictors(batch, w, d);
  let objective = negativeLogJoint(batch, z, w, m0, p0, logDetP0, d);
  const trace: number[] = [];
  const dz = new Float64Array(batch.n);
  let converged = false;
  for (let step = 0; step < MAX_NEWTON_STEPS && !converged; step++) {
    const { g, h } = gradientAndHessian(batch, z, w, m0, p0, d);
    const direction = choleskySolve(choleskyWithJitter(h, d).l, d, g);
    const slope = g.reduce((s, gj, j) => s + gj * direction[j]!, 0); // −(directional derivative of the objective) ≥ 0
    predictors(batch, direction, d, dz);
    // Change of the prior term: ΔᵀP0(w − m0) + ½ΔᵀP0Δ, scaled by t and t².
    const offset = new Float64Array(d);
    for (let j = 0; j < d; j++) offset[j] = w[j]! - m0[j]!;
    let cross = 0;
    for (let j = 0; j < d; j++) for (let k = 0; k < d; k++) cross += direction[j]! * p0[j * d + k]! * offset[k]!;
    const curvature = halfQuad(p0, direction, d);
    let t = 1;
    let change = NaN;
    let accepted = false;
    for (let halving = 0; halving <= MAX_HALVINGS; halving++, t *= 0.5) {
      change = t * cross + t * t * curvature;
      for (let i = 0; i < batch.n; i++) change += softplusChange(batch.sign[i]! * z[i]!, batch.sign[i]! * t * dz[i]!);
      if (change <= -ARMIJO * t * slope) {
        accepted = true;
        break;
      }
    }
    if (!accepted) break;
    let largest = 0;
    for (let j = 0; j < d; j++) {
      w[j] = w[j]! + t * direction[j]!;
      largest = Math.max(largest, Math.abs(t * direction[j]!));
    }
    predictors(batch, w, d, z);
    objective += change;
    trace.push(objective);
    if (largest < STEP_TOLERANCE) converged = true;
  }
  const { h } = gradientAndHessian(batch, z, w, m0, p0, d);
  const { l, jitter } = choleskyWithJitter(h, d);
  for (let j = 0; j < d; j++) h[j * d + j] = h[j * d + j]! + jitter;
  const logJoint = -negativeLogJoint(batch, z, w, m0, p0, logDetP0, d);
  return {
    mean: w,
    precision: h,
    covariance: choleskyInverse(l, d),
    iterations: trace.length,
    trace,
    converged,
    // log p(y) ≈ log p(y, ŵ) + (d/2) log 2π − ½ log|H|.
    logEvidence: logJoint + 0.5 * d * LN_2PI - 0.5 * logDetFromCholesky(l, d),
  };
}

// ---------------------------------------------------------------------------------------------------

const mvNormal = ({ mean, covariance }: Parameters): Distribution => ({ kind: "mvNormal", mean, covariance });

export const logisticRegression: ModelType<Arguments, Parameters, State> = {
  schema: {
    name: "logistic-regression-v1",
    description:
      "Binary risk scoring by Bayesian logistic regression: y ~ Bernoulli(σ(wᵀφ(x))), φ(x) = [x; 1] with an intercept (x alone without), " +
      "prior w ~ N(0, prior_variance·I). Learning is a Laplace approximation. Inference scores one case x: the risk probability " +
      "E[σ(wᵀφ)] under the posterior (by adaptive quadrature, not the probit approximation), its credible interval, and a risk level " +
      "from risk_thresholds and risk_labels. risk_thresholds must be strictly increasing inside (0, 1) and risk_labels must hold one " +
      "distinct, non-empty label more than there are thresholds; this is checked at instance creation and for per-call overrides " +
      "(ARGUMENTS_NOT_VALID naming the argument).",
    category: "generalized-linear",
    arguments: [
      { name: "input_dim", type: "integer", description: "Number of elements of x (features per case)", default: 2, minimum: 1, maximum: 100 },
      { name: "intercept", type: "boolean", description: "Append a constant 1 to x, so w has input_dim + 1 elements, the last the intercept", default: true },
      {
        name: "prior_variance",
        type: "number",
        description: "Prior variance of every coefficient (w ~ N(0, prior_variance·I)); 10 is weakly informative for standardised features",
        default: 10,
        minimum: 0,
        exclusiveMinimum: true,
      },
      {
        name: "credible_level",
        type: "number",
        description: "Probability mass of the central credible interval of the risk (1 gives [0, 1] unless the risk is certain)",
        default: 0.95,
        minimum: 0,
        exclusiveMinimum: true,
        maximum: 1,
        overridable: true,
      },
      {
        name: "risk_thresholds",
        type: "number[]",
        description:
          "Strictly increasing risks in (0, 1) separating the risk levels; a risk equal to a threshold takes the higher level",
        default: [0.2, 0.5],
        minimum: 0,
        exclusiveMinimum: true,
        maximum: 1,
        overridable: true,
      },
      {
        name: "risk_labels",
        type: "string[]",
        description: "Names of the risk levels from lowest to highest: one more than risk_thresholds, distinct and non-empty",
        default: ["low", "medium", "high"],
        overridable: true,
      },
    ],
    parameters: [
      {
        name: "w",
        description: "Coefficients (Laplace posterior): input_dim elements, then the intercept when intercept is true",
        family: "mvNormal",
        shape: [],
      },
    ],
    observation: [{ name: "x", description: "Features of the case to score", shape: ["input_dim"], required: true, example: [0.5, -1.2] }],
    goal: [],
    event: [
      { name: "x", description: "Features of a case", shape: ["input_dim"], required: true, example: [0.5, -1.2] },
      {
        name: "y",
        description: "Observed outcome, 0 or 1; events without it (e.g. stored scoring requests) are skipped by learning",
        shape: [],
        integer: true,
        minimum: 0,
        maximum: 1,
        example: [1],
      },
    ],
    outputs: [
      { name: "y", kind: "prediction", family: "bernoulli", description: "Posterior predictive of the outcome: p = E[σ(wᵀφ(x))]" },
      {
        name: "risk_probability",
        kind: "value",
        shape: [],
        description: "The risk p = E[σ(z)], z = wᵀφ(x) ~ N(μ, v), by adaptive quadrature (not the probit approximation), absolute error below 1e-13",
      },
      {
        name: "risk_interval",
        kind: "value",
        shape: [2],
        description:
          "Central credible interval [σ(μ − q√v), σ(μ + q√v)] of the risk σ(z), q = Φ⁻¹((1 + credible_level)/2). It contains " +
          "risk_probability except at extreme log-odds, where σ(z) is so skewed that its mean leaves the interval (e.g. μ = −14641, √v = 2390)",
      },
      { name: "linear_predictor_mean", kind: "value", shape: [], description: "μ = φ(x)ᵀm, the posterior mean of the log-odds" },
      { name: "linear_predictor_sd", kind: "value", shape: [], description: "√v, v = φ(x)ᵀSφ(x), the posterior sd of the log-odds" },
      {
        name: "risk_level_probability",
        kind: "value",
        shape: [],
        description: "Posterior probability that the risk σ(z) lies in the band of the reported risk level (the level's confidence)",
      },
      { name: "risk_level", kind: "label", description: "The risk_labels entry for p: the number of risk_thresholds at or below p" },
    ],
    learning:
      "Approximate (Laplace). Newton's method with backtracking line search on the log posterior, from the prior mean, stopping when a " +
      "step's ‖Δw‖∞ < 1e-10 or after 50 steps; the posterior is N(ŵ, H⁻¹), H = ΦᵀWΦ + prior precision at ŵ. Incremental learning " +
      "uses the stored Gaussian posterior as the prior of the next batch (assumed-density filtering), so learning in several batches " +
      "only approximates learning all events at once (the gap shrinks as the batches grow); relearn on all events, from " +
      "N(0, prior_variance·I), is the reference. Learning several episodes processes all their new events together in one Newton " +
      "solve. Events without y are skipped; a learn without usable events leaves the parameters unchanged. Metrics: iterations = " +
      "accepted Newton steps; freeEnergy = the negative log joint −log p(y, w) after each step (non-increasing); values.logEvidence = " +
      "the Laplace approximation of log p(y) of the batch under the prior it started from; values.converged = 1 or 0; " +
      "values.skippedEvents = events without y.",
  },

  checkArguments,

  initialParameters(args) {
    const d = dimension(args);
    const covariance = new Array<number>(d * d).fill(0);
    const precision = new Array<number>(d * d).fill(0);
    for (let i = 0; i < d; i++) {
      covariance[i * d + i] = args.prior_variance;
      precision[i * d + i] = 1 / args.prior_variance;
    }
    return { mean: new Array<number>(d).fill(0), covariance, precision };
  },

  initialState: () => ({}),

  parameterPosteriors: (parameters) => ({ w: mvNormal(parameters) }),

  infer({ arguments: args, parameters, observation }) {
    const d = dimension(args);
    const phi = features(observation.x!.values, args);
    let mu = 0;
    for (let i = 0; i < d; i++) mu += phi[i]! * parameters.mean[i]!;
    let v = 0;
    for (let i = 0; i < d; i++) {
      let row = 0;
      for (let j = 0; j < d; j++) row += parameters.covariance[i * d + j]! * phi[j]!;
      v += phi[i]! * row;
    }
    const sd = Math.sqrt(Math.max(v, 0));
    const p = expectedLogistic(mu, sd);
    const q = normalQuantile((1 + args.credible_level) / 2);
    const halfWidth = sd > 0 ? q * sd : 0;
    const level = riskLevelIndex(p, args.risk_thresholds);
    const bandLow = level === 0 ? 0 : args.risk_thresholds[level - 1]!;
    const bandHigh = level === args.risk_thresholds.length ? 1 : args.risk_thresholds[level]!;
    return {
      predictions: { y: { kind: "bernoulli", p } },
      values: {
        risk_probability: scalar(p),
        risk_interval: vector([logistic(mu - halfWidth), logistic(mu + halfWidth)]),
        linear_predictor_mean: scalar(mu),
        linear_predictor_sd: scalar(sd),
        risk_level_probability: scalar(sd > 0 ? bandProbability(bandLow, bandHigh, mu, sd) : 1),
      },
      labels: { risk_level: args.risk_labels[level]! },
    };
  },

  learn({ arguments: args, prior, events }): LearnOutput<Parameters, State> {
    const batch = batchOf(events, args);
    const skippedEvents = events.length - batch.n;
    if (batch.n === 0) {
      return { parameters: prior, metrics: { dataPoints: 0, iterations: 0, freeEnergy: [], values: { skippedEvents } } };
    }
    const fit = laplaceFit(batch, prior.mean, prior.precision, dimension(args));
    return {
      parameters: { mean: Array.from(fit.mean), covariance: Array.from(fit.covariance), precision: Array.from(fit.precision) },
      metrics: {
        dataPoints: batch.n,
        iterations: fit.iterations,
        freeEnergy: fit.trace,
        values: { logEvidence: fit.logEvidence, converged: fit.converged ? 1 : 0, skippedEvents },
      },
    };
  },
};
