// Bayesian linear regression y = wᵀφ + ε, ε ~ N(0, 1/τ), over sufficient statistics
// S = (n, ΦᵀΦ, Φᵀy, yᵀy), with two engines (inference-math.md §3.2):
//  (A) Normal-Gamma, exact: w | τ ~ N(m, (τΛ)⁻¹), τ ~ Gamma(a, b). Kept in precision form so that
//      vague priors (Λ0 = 1e-6·I) and the addition of data stay exact.
//  (B) Mean-field VB, RxInfer-compatible: q(w) q(τ) with w ~ N(m, S), τ ~ Gamma(a, b) independent
//      a priori. Approximate; its fixed point has the exact posterior mean of w given E[τ].
// Gamma is shape/rate throughout. Matrices are row-major d×d; every posterior covariance that
// leaves this module is exactly symmetric.
import {
  choleskyInverse,
  choleskySolve,
  choleskyWithJitter,
  logDetFromCholesky,
  matVec,
  quadForm,
  solveLower,
  solveLowerTransposed,
} from "./linalg.ts";
import type { Random } from "./random.ts";
import { digamma, gammaln } from "./special.ts";

const LN_2PI = Math.log(2 * Math.PI);

export interface SufficientStats {
  n: number;
  /** ΦᵀΦ, d×d row-major, exactly symmetric. */
  xtx: Float64Array;
  /** Φᵀy. */
  xty: Float64Array;
  /** yᵀy. */
  yty: number;
}

export function emptyStats(d: number): SufficientStats {
  return { n: 0, xtx: new Float64Array(d * d), xty: new Float64Array(d), yty: 0 };
}

/** Adds one feature vector x (length d) and its target y to the statistics in place. */
export function addObservation(stats: SufficientStats, x: ArrayLike<number>, y: number): void {
  const d = stats.xty.length;
  if (x.length !== d) throw new RangeError(`addObservation: x has ${x.length} elements, the statistics ${d}`);
  const { xtx, xty } = stats;
  // Each product x_i·x_j is computed once and written to both triangles, so ΦᵀΦ stays exactly symmetric.
  for (let i = 0; i < d; i++) {
    const xi = x[i]!;
    const row = i * d;
    xtx[row + i] = xtx[row + i]! + xi * xi;
    for (let j = i + 1; j < d; j++) {
      const term = xi * x[j]!;
      xtx[row + j] = xtx[row + j]! + term;
      xtx[j * d + i] = xtx[j * d + i]! + term;
    }
    xty[i] = xty[i]! + y * xi;
  }
  stats.yty += y * y;
  stats.n += 1;
}

const dimensionOf = (mean: ArrayLike<number>, matrix: ArrayLike<number>, what: string): number => {
  const d = mean.length;
  if (matrix.length !== d * d) throw new RangeError(`${what}: a ${d}-vector needs a ${d}×${d} matrix, got ${matrix.length} entries`);
  return d;
};

// ---------------------------------------------------------------------------------------------
// (A) Normal-Gamma, exact

/** w | τ ~ N(mean, (τ·precision)⁻¹), τ ~ Gamma(shape, rate). */
export interface NormalGamma {
  mean: number[];
  /** Λ, d×d row-major. */
  precision: number[];
  shape: number;
  rate: number;
}

/**
 * The exact posterior: Λn = Λ0 + ΦᵀΦ, Λn mn = Λ0 m0 + Φᵀy, an = a0 + n/2,
 * bn = b0 + ½(yᵀy + m0ᵀΛ0m0 − mnᵀΛn mn). The bracket equals Σ(y − Φmn)² + (mn − m0)ᵀΛ0(mn − m0) ≥ 0,
 * but from statistics alone it is a difference of large terms; rounding can push it below zero
 * when the fit is near exact, so bn is clamped to ≥ b0.
 */
export function normalGammaUpdate(prior: NormalGamma, stats: SufficientStats): NormalGamma {
  const d = dimensionOf(prior.mean, prior.precision, "normalGammaUpdate");
  if (stats.xty.length !== d) throw new RangeError(`normalGammaUpdate: statistics of dimension ${stats.xty.length}, prior ${d}`);
  const precision0 = Float64Array.from(prior.precision);
  const mean0 = Float64Array.from(prior.mean);
  const precision = new Float64Array(d * d);
  for (let i = 0; i < d * d; i++) precision[i] = precision0[i]! + stats.xtx[i]!;
  const h = matVec(precision0, mean0, d, d);
  const priorQuadratic = dotArrays(h, mean0);
  for (let i = 0; i < d; i++) h[i] = h[i]! + stats.xty[i]!;
  const { l } = choleskyWithJitter(precision, d);
  const mean = choleskySolve(l, d, h);
  // mnᵀΛn mn = mnᵀh because Λn mn = h.
  const bracket = stats.yty + priorQuadratic - dotArrays(mean, h);
  return {
    mean: Array.from(mean),
    precision: Array.from(precision),
    shape: prior.shape + stats.n / 2,
    rate: Math.max(prior.rate, prior.rate + 0.5 * bracket),
  };
}

/**
 * log p(y_1..n) of the batch that turned `prior` into `posterior`:
 * −(n/2) ln 2π + ½(ln|Λ0| − ln|Λn|) + a0 ln b0 − an ln bn + lnΓ(an) − lnΓ(a0).
 */
export function normalGammaLogEvidence(prior: NormalGamma, posterior: NormalGamma, n: number): number {
  const d = dimensionOf(prior.mean, prior.precision, "normalGammaLogEvidence");
  const logDet0 = logDetFromCholesky(choleskyWithJitter(Float64Array.from(prior.precision), d).l, d);
  const logDetN = logDetFromCholesky(choleskyWithJitter(Float64Array.from(posterior.precision), d).l, d);
  return (
    -0.5 * n * LN_2PI +
    0.5 * (logDet0 - logDetN) +
    prior.shape * Math.log(prior.rate) -
    posterior.shape * Math.log(posterior.rate) +
    gammaln(posterior.shape) -
    gammaln(prior.shape)
  );
}

/**
 * The exact predictive of y at features x: Student-t with ν = 2a, location xᵀm and
 * scale² = (b/a)(1 + xᵀΛ⁻¹x); xᵀΛ⁻¹x = ‖L⁻¹x‖² with L = chol(Λ), so Λ is never inverted.
 */
export function normalGammaPredictive(
  post: NormalGamma,
  x: ArrayLike<number>,
): { location: number; scale: number; degreesOfFreedom: number } {
  return studentTOfLinearForm(post, x, 1, "normalGammaPredictive");
}

/**
 * The posterior of the linear form xᵀw (no noise term): Student-t with ν = 2a, location xᵀm and
 * scale² = (b/a)·xᵀΛ⁻¹x — the belief about a mean response, e.g. an arm's expected reward.
 */
export function linearFormPosterior(
  post: NormalGamma,
  x: ArrayLike<number>,
): { location: number; scale: number; degreesOfFreedom: number } {
  return studentTOfLinearForm(post, x, 0, "linearFormPosterior");
}

/** Student-t of xᵀw + noise·ε: scale² = (b/a)(noise + xᵀΛ⁻¹x), with xᵀΛ⁻¹x = ‖L⁻¹x‖². */
function studentTOfLinearForm(post: NormalGamma, x: ArrayLike<number>, noise: 0 | 1, caller: string) {
  const d = dimensionOf(post.mean, post.precision, caller);
  if (x.length !== d) throw new RangeError(`${caller}: x has ${x.length} elements, the posterior ${d}`);
  const features = Float64Array.from(x);
  const { l } = choleskyWithJitter(Float64Array.from(post.precision), d);
  const whitened = solveLower(l, d, features);
  const leverage = dotArrays(whitened, whitened);
  return {
    location: dotArrays(features, post.mean),
    scale: Math.sqrt((post.rate / post.shape) * (noise + leverage)),
    degreesOfFreedom: 2 * post.shape,
  };
}

/**
 * One joint draw. Order of consumption (part of reproducibility): first τ ~ Gamma(shape, rate)
 * (`rng.gamma`), then z_0..z_{d−1} standard normals in index order (`rng.normal`); the draw is
 * w = m + L⁻ᵀz/√τ with L the lower Cholesky factor of Λ (precision form: no covariance is formed).
 */
export function sampleNormalGamma(post: NormalGamma, rng: Random): { weights: Float64Array; noisePrecision: number } {
  return normalGammaSampler(post)(rng);
}

/**
 * `sampleNormalGamma` with the Cholesky factor computed once, for many draws from one posterior
 * (Thompson propensities). Same draws, same order; each draw overwrites `out` when given.
 */
export function normalGammaSampler(post: NormalGamma) {
  const d = dimensionOf(post.mean, post.precision, "normalGammaSampler");
  const { l } = choleskyWithJitter(Float64Array.from(post.precision), d);
  return (rng: Random, out: Float64Array = new Float64Array(d)): { weights: Float64Array; noisePrecision: number } => {
    const noisePrecision = rng.gamma(post.shape, post.rate);
    for (let i = 0; i < d; i++) out[i] = rng.normal();
    const weights = solveLowerTransposed(l, d, out, out);
    const scale = 1 / Math.sqrt(noisePrecision);
    for (let i = 0; i < d; i++) weights[i] = post.mean[i]! + weights[i]! * scale;
    return { weights, noisePrecision };
  };
}

/**
 * The marginal of w is multivariate Student-t (ν = 2a, location m, scale matrix (b/a)Λ⁻¹). It is
 * reported as the Gaussian with the same mean and covariance (b/(a−1))Λ⁻¹ when a > 1; for a ≤ 1
 * the covariance does not exist and the scale matrix (b/a)Λ⁻¹ stands in for it.
 */
export function weightMarginal(post: NormalGamma): { mean: number[]; covariance: number[] } {
  const d = dimensionOf(post.mean, post.precision, "weightMarginal");
  const factor = post.shape > 1 ? post.rate / (post.shape - 1) : post.rate / post.shape;
  const { l } = choleskyWithJitter(Float64Array.from(post.precision), d);
  const inverse = choleskyInverse(l, d, l);
  return { mean: [...post.mean], covariance: Array.from(inverse, (v) => factor * v) };
}

// ---------------------------------------------------------------------------------------------
// (B) Mean-field variational Bayes

/** Independent w ~ N(mean, covariance) and τ ~ Gamma(shape, rate). */
export interface GaussianGamma {
  mean: number[];
  /** S, d×d row-major. */
  covariance: number[];
  shape: number;
  rate: number;
}

/**
 * Coordinate ascent on q(w) q(τ) for `iterations` rounds, starting from E[τ] = a0/b0 (as RxInfer
 * initialises q(τ) from the prior). Each round:
 *   q(w): P = S0⁻¹ + E[τ]ΦᵀΦ, S = P⁻¹, m = S(S0⁻¹m0 + E[τ]Φᵀy)   (solved through chol(P));
 *   q(τ): a = a0 + n/2, b = b0 + ½ESS, ESS = ‖y − Φm‖² + tr(ΦᵀΦ S);
 * then F = −ELBO of the pair. Each step maximises the ELBO in one factor, so F is non-increasing.
 * The residual ‖y − Φm‖² = yᵀy − 2mᵀΦᵀy + mᵀΦᵀΦm cancels catastrophically when the fit is near
 * exact; it is clamped at zero.
 */
export function meanFieldUpdate(
  prior: GaussianGamma,
  stats: SufficientStats,
  iterations: number,
  onIteration?: (iteration: number, total: number) => void,
): { posterior: GaussianGamma; freeEnergy: number[] } {
  const d = dimensionOf(prior.mean, prior.covariance, "meanFieldUpdate");
  if (stats.xty.length !== d) throw new RangeError(`meanFieldUpdate: statistics of dimension ${stats.xty.length}, prior ${d}`);
  const mean0 = Float64Array.from(prior.mean);
  const priorFactor = choleskyWithJitter(Float64Array.from(prior.covariance), d).l;
  const logDetS0 = logDetFromCholesky(priorFactor, d);
  const precision0 = choleskyInverse(priorFactor, d);
  const h0 = choleskySolve(priorFactor, d, mean0);
  const { xtx, xty, yty, n } = stats;
  const a0 = prior.shape;
  const b0 = prior.rate;
  const a = a0 + n / 2;
  // The parts of the KL terms that do not change between rounds.
  const gammaConstant = (a - a0) * digamma(a) - gammaln(a) + gammaln(a0);

  let expectedTau = a0 / b0;
  let mean: Float64Array = Float64Array.from(mean0);
  let covariance: Float64Array = Float64Array.from(prior.covariance);
  let b = b0;
  const freeEnergy: number[] = [];
  const precision = new Float64Array(d * d);
  const h = new Float64Array(d);
  const difference = new Float64Array(d);
  for (let iteration = 0; iteration < iterations; iteration++) {
    for (let i = 0; i < d * d; i++) precision[i] = precision0[i]! + expectedTau * xtx[i]!;
    for (let i = 0; i < d; i++) h[i] = h0[i]! + expectedTau * xty[i]!;
    const l = choleskyWithJitter(precision, d).l;
    const logDetP = logDetFromCholesky(l, d);
    mean = choleskySolve(l, d, h);
    covariance = choleskyInverse(l, d, l);

    const residual = Math.max(0, yty - 2 * dotArrays(mean, xty) + quadForm(xtx, mean, d));
    const trace = traceOfProduct(xtx, covariance, d);
    const ess = residual + trace;
    b = b0 + 0.5 * ess;
    expectedTau = a / b;

    const expectedLogTau = digamma(a) - Math.log(b);
    for (let i = 0; i < d; i++) difference[i] = mean[i]! - mean0[i]!;
    const klGaussian = 0.5 * (traceOfProduct(precision0, covariance, d) + quadForm(precision0, difference, d) - d + logDetS0 + logDetP);
    const klGamma = gammaConstant + a0 * (Math.log(b) - Math.log(b0)) + (a * (b0 - b)) / b;
    const elbo = 0.5 * n * (expectedLogTau - LN_2PI) - 0.5 * expectedTau * ess - klGaussian - klGamma;
    freeEnergy.push(-elbo);
    onIteration?.(iteration + 1, iterations);
  }
  return {
    // With no rounds nothing was updated: the prior comes back, shape included.
    posterior: { mean: Array.from(mean), covariance: Array.from(covariance), shape: iterations > 0 ? a : a0, rate: b },
    freeEnergy,
  };
}

function dotArrays(x: ArrayLike<number>, y: ArrayLike<number>): number {
  let sum = 0;
  for (let i = 0; i < x.length; i++) sum += x[i]! * y[i]!;
  return sum;
}

/** tr(AB) for symmetric A, B: Σ_ij A_ij B_ij. */
function traceOfProduct(a: Float64Array, b: Float64Array, d: number): number {
  let sum = 0;
  for (let i = 0; i < d * d; i++) sum += a[i]! * b[i]!;
  return sum;
}
