// Kalman filter and Rauch–Tung–Striebel smoother for x_t = A x_{t−1} + w, w ~ N(0, q·I); y_t = x_t + v, v ~ N(0, r·I).
//
// The model is time-invariant and its covariance recursions do not depend on the data, so after a transient
// the predicted and filtered covariances, the Kalman gain and the smoother gain stop changing, and so does the
// smoothed covariance some steps before the end of the sequence. `smooth` detects both fixed points and from
// there on updates only the means with the fixed gains: O(d²) per step and no allocation instead of O(d³) and
// a dozen small arrays. Every step it does compute runs the same operations in the same order as the plain
// recursion, so up to the fixed point its means, covariances and log-likelihood are bit-identical to that
// recursion's; only EM's statistics are summed in another order.
import { cholesky, choleskySolve, choleskyWithJitter, logDetFromCholesky, matMul, symmetrize, transpose } from "../../math/linalg.ts";

const LN_2PI = Math.log(2 * Math.PI);

/**
 * Successive covariances whose largest entry-wise difference is at most this fraction of their largest entry are
 * taken as the fixed point. A few units of rounding (ε ≈ 2.2e-16): the recursion no longer makes progress there,
 * and it may never become bitwise stationary because rounding keeps it moving in the last bits.
 */
const STEADY_TOLERANCE = 1e-15;

function isSteady(previous: Float64Array, next: Float64Array): boolean {
  let difference = 0;
  let scale = 0;
  for (let i = 0; i < next.length; i++) {
    difference = Math.max(difference, Math.abs(next[i]! - previous[i]!));
    scale = Math.max(scale, Math.abs(next[i]!));
  }
  return difference <= STEADY_TOLERANCE * scale;
}

/**
 * Buffers for the gains and the O(d³) steps, so that those allocate nothing. Nothing in them outlives a call, so one
 * instance can serve every call at one dimension d: EM passes one to all its sequences, which may be many short ones.
 */
export class Workspace {
  readonly aTransposed: Float64Array;
  readonly gain: Float64Array;
  readonly factor: Float64Array;
  readonly steadySmootherGain: Float64Array;
  readonly transientSmootherGain: Float64Array;
  readonly matrices: [Float64Array, Float64Array, Float64Array, Float64Array];
  readonly vectors: [Float64Array, Float64Array, Float64Array];
  constructor(d: number) {
    const matrix = () => new Float64Array(d * d);
    this.aTransposed = matrix();
    this.gain = matrix();
    this.factor = matrix();
    this.steadySmootherGain = matrix();
    this.transientSmootherGain = matrix();
    this.matrices = [matrix(), matrix(), matrix(), matrix()];
    this.vectors = [new Float64Array(d), new Float64Array(d), new Float64Array(d)];
  }
}

/** Cholesky factor of `a` into `out`; the jittered fallback (which allocates) only when `a` is not numerically positive definite. */
function factorInto(a: Float64Array, d: number, out: Float64Array): void {
  if (cholesky(a, d, out) === null) out.set(choleskyWithJitter(a, d).l);
}

/** X = B M⁻¹ for symmetric M with factor L: as Xᵀ = M⁻¹ Bᵀ, row i of X is M⁻¹ applied to row i of B. */
function solveRowsInto(l: Float64Array, b: Float64Array, d: number, out: Float64Array, workspace: Workspace): void {
  const [row, solved] = workspace.vectors;
  for (let i = 0; i < d; i++) {
    for (let j = 0; j < d; j++) row[j] = b[i * d + j]!;
    choleskySolve(l, d, row, solved);
    out.set(solved, i * d);
  }
}

/** A P Aᵀ + q·I, symmetrised. */
export function propagate(
  a: Float64Array,
  p: Float64Array,
  q: number,
  d: number,
  out: Float64Array = new Float64Array(d * d),
  aTransposed: Float64Array = transpose(a, d, d),
  scratch: Float64Array = new Float64Array(d * d),
): Float64Array {
  matMul(matMul(a, p, d, d, d, scratch), aTransposed, d, d, d, out);
  for (let i = 0; i < d; i++) out[i * d + i] = out[i * d + i]! + q;
  symmetrize(out, d);
  return out;
}

/**
 * The data-independent half of the measurement update of N(m, P) with y = x + v, v ~ N(0, r·I): the gain
 * K = P S⁻¹, the factor L Lᵀ = S = P + r·I, and the updated covariance in Joseph form, (I − K) P (I − K)ᵀ + r K Kᵀ.
 * Returns d·ln 2π + ln|S|, the constant part of −2 log N(y; m, S).
 */
function updateCovariance(
  p: Float64Array,
  r: number,
  d: number,
  gain: Float64Array,
  factor: Float64Array,
  updated: Float64Array,
  workspace: Workspace,
): number {
  const [s, iMinusK, product, transposed] = workspace.matrices;
  s.set(p);
  for (let i = 0; i < d; i++) s[i * d + i] = s[i * d + i]! + r;
  factorInto(s, d, factor);
  solveRowsInto(factor, p, d, gain, workspace);
  for (let i = 0; i < d * d; i++) iMinusK[i] = -gain[i]!;
  for (let i = 0; i < d; i++) iMinusK[i * d + i] = iMinusK[i * d + i]! + 1;
  matMul(iMinusK, p, d, d, d, product);
  matMul(product, transpose(iMinusK, d, d, transposed), d, d, d, updated);
  const kkt = matMul(gain, transpose(gain, d, d, transposed), d, d, d, s);
  for (let i = 0; i < d * d; i++) updated[i] = updated[i]! + r * kkt[i]!;
  symmetrize(updated, d);
  return d * LN_2PI + logDetFromCholesky(factor, d);
}

// The mean passes below run once per step of every sequence and E-step. At the usual small d, loops over the
// dimension cost several times the arithmetic (≈ 8× measured at d = 2), so d = 2, the default, has straight-line
// versions. They compute the means and log-likelihood terms with the same operations in the same order as the
// loops (the same bits); only the moment sums are accumulated in a different order.

/**
 * Filtered means m_{t|t} of steps from..to−1 under one gain, into `means` (row t at t·d); step 0 is predicted by the
 * prior mean, later ones by A m_{t−1|t−1}. Returns `logLikelihood` plus log N(y_t; m_{t|t−1}, S) of each step, where
 * logNormalizer = d·ln 2π + ln|S| and S = L Lᵀ.
 */
function filterMeans(
  observations: Float64Array,
  priorMean: Float64Array,
  a: Float64Array,
  gain: Float64Array,
  factor: Float64Array,
  logNormalizer: number,
  d: number,
  from: number,
  to: number,
  means: Float64Array,
  logLikelihood: number,
  workspace: Workspace,
): number {
  if (d === 2) return filterMeansTwo(observations, priorMean, a, gain, factor, logNormalizer, from, to, means, logLikelihood);
  const [predicted, innovation, whitened] = workspace.vectors;
  for (let t = from; t < to; t++) {
    const row = t * d;
    if (t === 0) predicted.set(priorMean);
    else {
      for (let i = 0; i < d; i++) {
        let sum = 0;
        for (let j = 0; j < d; j++) sum += a[i * d + j]! * means[row - d + j]!;
        predicted[i] = sum;
      }
    }
    for (let i = 0; i < d; i++) innovation[i] = observations[row + i]! - predicted[i]!;
    for (let i = 0; i < d; i++) {
      let sum = 0;
      for (let j = 0; j < d; j++) sum += gain[i * d + j]! * innovation[j]!;
      means[row + i] = predicted[i]! + sum;
    }
    // ‖L⁻¹e‖² by forward substitution.
    let squaredNorm = 0;
    for (let i = 0; i < d; i++) {
      let sum = innovation[i]!;
      for (let k = 0; k < i; k++) sum -= factor[i * d + k]! * whitened[k]!;
      const z = sum / factor[i * d + i]!;
      whitened[i] = z;
      squaredNorm += z * z;
    }
    logLikelihood += -0.5 * (logNormalizer + squaredNorm);
  }
  return logLikelihood;
}

function filterMeansTwo(
  observations: Float64Array,
  priorMean: Float64Array,
  a: Float64Array,
  gain: Float64Array,
  factor: Float64Array,
  logNormalizer: number,
  from: number,
  to: number,
  means: Float64Array,
  logLikelihood: number,
): number {
  const a00 = a[0]!;
  const a01 = a[1]!;
  const a10 = a[2]!;
  const a11 = a[3]!;
  const k00 = gain[0]!;
  const k01 = gain[1]!;
  const k10 = gain[2]!;
  const k11 = gain[3]!;
  const l00 = factor[0]!;
  const l10 = factor[2]!;
  const l11 = factor[3]!;
  for (let t = from; t < to; t++) {
    const row = 2 * t;
    let predicted0 = priorMean[0]!;
    let predicted1 = priorMean[1]!;
    if (t > 0) {
      const m0 = means[row - 2]!;
      const m1 = means[row - 1]!;
      predicted0 = a00 * m0 + a01 * m1;
      predicted1 = a10 * m0 + a11 * m1;
    }
    const e0 = observations[row]! - predicted0;
    const e1 = observations[row + 1]! - predicted1;
    means[row] = predicted0 + (k00 * e0 + k01 * e1);
    means[row + 1] = predicted1 + (k10 * e0 + k11 * e1);
    const z0 = e0 / l00;
    const z1 = (e1 - l10 * z0) / l11;
    logLikelihood += -0.5 * (logNormalizer + (z0 * z0 + z1 * z1));
  }
  return logLikelihood;
}

/**
 * m_{t|T} = m_{t|t} + G (m_{t+1|T} − A m_{t|t}) for t = from down to to, in place over the filtered means (row t
 * still holds m_{t|t}, so the prediction it was compared with is recomputed rather than stored), adding
 * m_{t|T} m_{t|T}ᵀ to `secondMoment` and m_{t+1|T} m_{t|T}ᵀ to `crossMoment`.
 */
function smoothMeans(
  a: Float64Array,
  g: Float64Array,
  d: number,
  from: number,
  to: number,
  means: Float64Array,
  secondMoment: Float64Array,
  crossMoment: Float64Array,
  workspace: Workspace,
): void {
  if (d === 2) return smoothMeansTwo(a, g, from, to, means, secondMoment, crossMoment);
  const [predicted, difference] = workspace.vectors;
  for (let t = from; t >= to; t--) {
    const row = t * d;
    for (let i = 0; i < d; i++) {
      let sum = 0;
      for (let j = 0; j < d; j++) sum += a[i * d + j]! * means[row + j]!;
      predicted[i] = sum;
    }
    for (let i = 0; i < d; i++) difference[i] = means[row + d + i]! - predicted[i]!;
    for (let i = 0; i < d; i++) {
      let sum = 0;
      for (let j = 0; j < d; j++) sum += g[i * d + j]! * difference[j]!;
      means[row + i] = means[row + i]! + sum;
    }
    for (let i = 0; i < d; i++) {
      const atI = means[row + i]!;
      const nextI = means[row + d + i]!;
      for (let j = 0; j < d; j++) {
        const atJ = means[row + j]!;
        secondMoment[i * d + j] = secondMoment[i * d + j]! + atI * atJ;
        crossMoment[i * d + j] = crossMoment[i * d + j]! + nextI * atJ;
      }
    }
  }
}

function smoothMeansTwo(
  a: Float64Array,
  g: Float64Array,
  from: number,
  to: number,
  means: Float64Array,
  secondMoment: Float64Array,
  crossMoment: Float64Array,
): void {
  const a00 = a[0]!;
  const a01 = a[1]!;
  const a10 = a[2]!;
  const a11 = a[3]!;
  const g00 = g[0]!;
  const g01 = g[1]!;
  const g10 = g[2]!;
  const g11 = g[3]!;
  let next0 = means[2 * from + 2]!;
  let next1 = means[2 * from + 3]!;
  let second00 = 0;
  let second01 = 0;
  let second11 = 0;
  let cross00 = 0;
  let cross01 = 0;
  let cross10 = 0;
  let cross11 = 0;
  for (let t = from; t >= to; t--) {
    const row = 2 * t;
    const filtered0 = means[row]!;
    const filtered1 = means[row + 1]!;
    const difference0 = next0 - (a00 * filtered0 + a01 * filtered1);
    const difference1 = next1 - (a10 * filtered0 + a11 * filtered1);
    const m0 = filtered0 + (g00 * difference0 + g01 * difference1);
    const m1 = filtered1 + (g10 * difference0 + g11 * difference1);
    means[row] = m0;
    means[row + 1] = m1;
    second00 += m0 * m0;
    second01 += m0 * m1;
    second11 += m1 * m1;
    cross00 += next0 * m0;
    cross01 += next0 * m1;
    cross10 += next1 * m0;
    cross11 += next1 * m1;
    next0 = m0;
    next1 = m1;
  }
  secondMoment[0] = secondMoment[0]! + second00;
  secondMoment[1] = secondMoment[1]! + second01;
  secondMoment[2] = secondMoment[2]! + second01;
  secondMoment[3] = secondMoment[3]! + second11;
  crossMoment[0] = crossMoment[0]! + cross00;
  crossMoment[1] = crossMoment[1]! + cross01;
  crossMoment[2] = crossMoment[2]! + cross10;
  crossMoment[3] = crossMoment[3]! + cross11;
}

/** G = P_{t|t} Aᵀ P_{t+1|t}⁻¹. */
function smootherGain(
  filtered: Float64Array,
  aTransposed: Float64Array,
  predictedNext: Float64Array,
  d: number,
  out: Float64Array,
  workspace: Workspace,
): void {
  const [factor, pat] = workspace.matrices;
  factorInto(predictedNext, d, factor);
  matMul(filtered, aTransposed, d, d, d, pat);
  solveRowsInto(factor, pat, d, out, workspace);
}

/** P_{t|T} = P_{t|t} + G (P_{t+1|T} − P_{t+1|t}) Gᵀ, symmetrised, and Cov(x_{t+1}, x_t | y) = P_{t+1|T} Gᵀ. */
function smoothCovariance(
  filtered: Float64Array,
  g: Float64Array,
  smoothedNext: Float64Array,
  predictedNext: Float64Array,
  d: number,
  smoothed: Float64Array,
  lagOne: Float64Array,
  workspace: Workspace,
): void {
  const [difference, gTransposed, product] = workspace.matrices;
  transpose(g, d, d, gTransposed);
  for (let i = 0; i < d * d; i++) difference[i] = smoothedNext[i]! - predictedNext[i]!;
  matMul(matMul(g, difference, d, d, d, product), gTransposed, d, d, d, smoothed);
  for (let i = 0; i < d * d; i++) smoothed[i] = filtered[i]! + smoothed[i]!;
  symmetrize(smoothed, d);
  matMul(smoothedNext, gTransposed, d, d, d, lagOne);
}

function addScaled(sum: Float64Array, matrix: Float64Array, count: number): void {
  for (let i = 0; i < sum.length; i++) sum[i] = sum[i]! + count * matrix[i]!;
}

export interface Sequence {
  /** Prior of x_1 (no transition before the first observation). */
  readonly mean: Float64Array;
  readonly covariance: Float64Array;
  /** y_1 … y_n, y_t in row t − 1 (n·d numbers): one contiguous array, which a pass over the sequence reads much faster than n small ones. */
  readonly observations: Float64Array;
}

export interface Smoothed {
  readonly logLikelihood: number;
  /** m_{t|T} for t = 0..n−1, row t at t·d. */
  readonly means: Float64Array;
  /** P_{t|T}. Steps in the stationary stretch share one array: read, do not modify. */
  covariance(t: number): Float64Array;
  /** Cov(x_{t+1}, x_t | y_{1:T}) for t = 0..n−2, shared like `covariance`. */
  lagOne(t: number): Float64Array;
  /** Σ_{t<n−1} E[x_t x_tᵀ | y_{1:T}] and Σ_{t<n−1} E[x_{t+1} x_tᵀ | y_{1:T}]: EM's sufficient statistics. */
  readonly secondMoment: Float64Array;
  readonly crossMoment: Float64Array;
}

/**
 * Kalman filter and Rauch–Tung–Striebel smoother of one sequence under transition matrix A. The smoothed means are
 * written to `means` (n·d), which a caller smoothing the same sequence repeatedly can pass to reuse it, as it can
 * pass one `workspace` to every call.
 */
export function smooth(
  seq: Sequence,
  a: Float64Array,
  q: number,
  r: number,
  d: number,
  means: Float64Array = new Float64Array(seq.observations.length),
  workspace: Workspace = new Workspace(d),
): Smoothed {
  const n = seq.observations.length / d;
  const size = d * d;
  const { aTransposed, gain, factor, steadySmootherGain, transientSmootherGain } = workspace;
  transpose(a, d, d, aTransposed);

  // P_{t|t−1} and P_{t|t} for t ≤ steadyFrom; every later step shares those of steadyFrom.
  const predicted: Float64Array[] = [];
  const filtered: Float64Array[] = [];
  let steadyFrom = n;
  let logLikelihood = 0;
  for (let t = 0; t < n; t++) {
    const p = t === 0 ? seq.covariance : propagate(a, filtered[t - 1]!, q, d, new Float64Array(size), aTransposed, workspace.matrices[0]);
    const stationary = t > 0 && isSteady(predicted[t - 1]!, p);
    predicted.push(p);
    const updated = new Float64Array(size);
    const logNormalizer = updateCovariance(p, r, d, gain, factor, updated, workspace);
    filtered.push(updated);
    logLikelihood = filterMeans(seq.observations, seq.mean, a, gain, factor, logNormalizer, d, t, stationary ? n : t + 1, means, logLikelihood, workspace);
    if (stationary) {
      steadyFrom = t;
      break;
    }
  }

  // Explicit covariances: early[t] for t < steadyFrom, late[n−1−t] (lag-one: lateLagOne[n−2−t]) for t ≥ steadyUntil;
  // in between, the smoothed and lag-one covariances are stationary.
  const early = new Array<Float64Array>(steadyFrom);
  const earlyLagOne = new Array<Float64Array>(Math.max(0, Math.min(steadyFrom, n - 1)));
  const late: Float64Array[] = [];
  const lateLagOne: Float64Array[] = [];
  const steadySmoothed = new Float64Array(size);
  const steadyLagOne = new Float64Array(size);
  let steadyUntil = steadyFrom;
  const secondMoment = new Float64Array(size);
  const crossMoment = new Float64Array(size);
  if (n > 0) {
    // P_{t+1|T} of the step being smoothed.
    let next = filtered[Math.min(n - 1, steadyFrom)]!;
    if (n - 1 < steadyFrom) early[n - 1] = next;
    else late[0] = next;
    if (steadyFrom < n - 1) smootherGain(filtered[steadyFrom]!, aTransposed, predicted[steadyFrom]!, d, steadySmootherGain, workspace);
    for (let t = n - 2; t >= 0; t--) {
      const stationaryFilter = t >= steadyFrom;
      const g = stationaryFilter ? steadySmootherGain : transientSmootherGain;
      if (!stationaryFilter) smootherGain(filtered[t]!, aTransposed, predicted[t + 1]!, d, g, workspace);
      const smoothed = new Float64Array(size);
      const lagOne = new Float64Array(size);
      smoothCovariance(filtered[Math.min(t, steadyFrom)]!, g, next, predicted[Math.min(t + 1, steadyFrom)]!, d, smoothed, lagOne, workspace);
      smoothMeans(a, g, d, t, t, means, secondMoment, crossMoment, workspace);
      addScaled(secondMoment, smoothed, 1);
      addScaled(crossMoment, lagOne, 1);
      if (stationaryFilter) {
        late[n - 1 - t] = smoothed;
        lateLagOne[n - 2 - t] = lagOne;
      } else {
        early[t] = smoothed;
        earlyLagOne[t] = lagOne;
      }
      if (stationaryFilter && t > steadyFrom && isSteady(next, smoothed)) {
        // For steadyFrom ≤ s < t, P_{s|T} = P_{t|T} and Cov(x_{s+1}, x_s | y) = P_{t|T} Gᵀ: those steps only move
        // their means, and the loop resumes below steadyFrom.
        steadyUntil = t;
        steadySmoothed.set(smoothed);
        matMul(smoothed, transpose(g, d, d, workspace.matrices[0]), d, d, d, steadyLagOne);
        addScaled(secondMoment, steadySmoothed, t - steadyFrom);
        addScaled(crossMoment, steadyLagOne, t - steadyFrom);
        smoothMeans(a, g, d, t - 1, steadyFrom, means, secondMoment, crossMoment, workspace);
        next = steadySmoothed;
        t = steadyFrom;
      } else {
        next = smoothed;
      }
    }
  }
  const pick = (t: number, earlyValues: Float64Array[], steady: Float64Array, lateValues: Float64Array[], lastIndex: number) =>
    t < steadyFrom ? earlyValues[t]! : t < steadyUntil ? steady : lateValues[lastIndex - t]!;
  return {
    logLikelihood,
    means,
    covariance: (t) => pick(t, early, steadySmoothed, late, n - 1),
    lagOne: (t) => pick(t, earlyLagOne, steadyLagOne, lateLagOne, n - 2),
    secondMoment,
    crossMoment,
  };
}

/**
 * Measurement update of N(m, P) with y = x + v, v ~ N(0, r·I), in Joseph form; returns the updated
 * belief and log N(y; m, P + r·I).
 */
export function kalmanUpdate(
  m: Float64Array,
  p: Float64Array,
  y: ArrayLike<number>,
  r: number,
  d: number,
): { mean: Float64Array; covariance: Float64Array; logLikelihood: number } {
  const workspace = new Workspace(d);
  const { gain, factor } = workspace;
  const covariance = new Float64Array(d * d);
  const logNormalizer = updateCovariance(p, r, d, gain, factor, covariance, workspace);
  const mean = new Float64Array(d);
  // A single step from the prior: no transition, so A is never read.
  const logLikelihood = filterMeans(Float64Array.from(y), m, new Float64Array(0), gain, factor, logNormalizer, d, 0, 1, mean, 0, workspace);
  return { mean, covariance, logLikelihood };
}
