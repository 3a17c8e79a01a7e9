// Moments, log-densities, entropies and sampling for the `Distribution` union.
//
// Conventions:
// - Matrices (mvNormal covariance, Wishart scale and values, covariances returned here) are row-major.
// - Categorical values are category indices 0..K−1 (what `sample` returns and `logpdf` takes), but its
//   `mean`/`variance`/`covariance` are those of the one-hot encoding.
// - Student-t is location-scale: location + scale·T(ν).
// - Undefined moments are NaN (Student-t mean for ν ≤ 1), infinite ones Infinity (Student-t variance for
//   1 < ν ≤ 2). Operations a family does not support throw an Error naming the family and the operation.
import type { Distribution } from "./distribution.ts";
import { cholesky, choleskyInverse, choleskyWithJitter, logDetFromCholesky, lowerTimesVector, solveLower } from "./linalg.ts";
import type { Random } from "./random.ts";
import { betaln, digamma, gammaln, multivariateDigamma, multivariateGammaLn } from "./special.ts";
import { effectiveShape, elementCount } from "./tensor.ts";

const LN_2 = Math.LN2;
const LN_2PI = Math.log(2 * Math.PI);
const SIMPLEX_TOLERANCE = 1e-9;
const SYMMETRY_TOLERANCE = 1e-9;

function unsupported(d: Distribution, operation: string): never {
  throw new Error(`${operation} is not supported for a ${d.kind} distribution`);
}

/** The side n of a row-major n×n matrix stored in `length` values. */
function side(length: number, what: string): number {
  const n = Math.round(Math.sqrt(length));
  if (n * n !== length || n === 0) throw new Error(`${what} must be a non-empty square matrix, got ${length} values`);
  return n;
}

function mvNormalDimension(d: Extract<Distribution, { kind: "mvNormal" }>): number {
  const n = d.mean.length;
  if (d.covariance.length !== n * n) {
    throw new Error(`an mvNormal of dimension ${n} needs ${n * n} covariance values, got ${d.covariance.length}`);
  }
  return n;
}

function lowerCholesky(a: ArrayLike<number>, n: number, what: string): Float64Array {
  const l = cholesky(Float64Array.from(a), n);
  if (!l) throw new Error(`${what} is not positive definite`);
  return l;
}

/** y·ln x with 0·ln 0 = 0 (and 0·ln x = 0 generally), as in densities with exponent y. */
function xlogy(y: number, x: number): number {
  return y === 0 ? 0 : y * Math.log(x);
}

/** x as one number: a number, or an array holding exactly one. */
function scalarOf(d: Distribution, x: number | ArrayLike<number>): number {
  if (typeof x === "number") return x;
  if (x.length !== 1) throw new Error(`a ${d.kind} value is a single number, got ${x.length} values`);
  return x[0]!;
}

function vectorOf(d: Distribution, x: number | ArrayLike<number>, n: number): ArrayLike<number> {
  const v = typeof x === "number" ? [x] : x;
  if (v.length !== n) throw new Error(`a ${d.kind} value has ${n} elements, got ${v.length}`);
  return v;
}

function sum(v: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i]!;
  return s;
}

// ---------------------------------------------------------------------------------------------
// Sample lists

interface Empirical {
  n: number;
  /** Elements per sample. */
  size: number;
  scalarEvents: boolean;
  values: readonly number[];
  /** Normalised weights. */
  weights: Float64Array;
}

function empirical(d: Extract<Distribution, { kind: "sampleList" }>): Empirical {
  const shape = effectiveShape(d.samples);
  const n = shape.length === 0 ? 1 : shape[0]!;
  const size = shape.length <= 1 ? 1 : elementCount(shape.slice(1));
  if (n === 0) throw new Error("a sampleList needs at least one sample");
  if (d.samples.values.length !== n * size) {
    throw new Error(`sampleList samples of shape [${shape.join(", ")}] need ${n * size} values, got ${d.samples.values.length}`);
  }
  const weights = new Float64Array(n);
  if (d.weights.length === 0) {
    weights.fill(1 / n);
  } else {
    if (d.weights.length !== n) throw new Error(`a sampleList of ${n} samples needs ${n} weights, got ${d.weights.length}`);
    const total = sum(d.weights);
    if (!(total > 0) || d.weights.some((w) => !(w >= 0))) throw new Error("sampleList weights must be non-negative with a positive sum");
    for (let i = 0; i < n; i++) weights[i] = d.weights[i]! / total;
  }
  return { n, size, scalarEvents: shape.length <= 1, values: d.samples.values, weights };
}

function empiricalMean(e: Empirical): Float64Array {
  const m = new Float64Array(e.size);
  for (let s = 0; s < e.n; s++) {
    const w = e.weights[s]!;
    for (let j = 0; j < e.size; j++) m[j]! += w * e.values[s * e.size + j]!;
  }
  return m;
}

/** Weighted covariance of the empirical distribution (normalised weights, no Bessel correction). */
function empiricalCovariance(e: Empirical): number[] {
  const m = empiricalMean(e);
  const k = e.size;
  const c = new Array<number>(k * k).fill(0);
  for (let s = 0; s < e.n; s++) {
    const w = e.weights[s]!;
    const base = s * k;
    for (let i = 0; i < k; i++) {
      const di = e.values[base + i]! - m[i]!;
      for (let j = 0; j <= i; j++) c[i * k + j]! += w * di * (e.values[base + j]! - m[j]!);
    }
  }
  for (let i = 0; i < k; i++) for (let j = 0; j < i; j++) c[j * k + i] = c[i * k + j]!;
  return c;
}

// ---------------------------------------------------------------------------------------------
// Moments

/**
 * E[X]: a number for univariate families, otherwise a flat array — the mean vector (mvNormal, dirichlet),
 * the one-hot mean (categorical), the row-major mean matrix ν·S (wishart), the weighted mean of each event
 * element (sampleList) or the factors' means concatenated (product).
 */
export function mean(d: Distribution): number | number[] {
  switch (d.kind) {
    case "pointMass":
      return effectiveShape(d.value).length === 0 ? d.value.values[0]! : [...d.value.values];
    case "normal":
      return d.mean;
    case "mvNormal":
      return [...d.mean];
    case "gamma":
      return d.shape / d.rate;
    case "beta":
      return d.alpha / (d.alpha + d.beta);
    case "dirichlet": {
      const total = sum(d.alpha);
      return d.alpha.map((a) => a / total);
    }
    case "categorical":
      return [...d.probabilities];
    case "bernoulli":
      return d.p;
    case "wishart":
      side(d.scale.length, "wishart scale");
      return d.scale.map((s) => d.degreesOfFreedom * s);
    case "studentT":
      return d.degreesOfFreedom > 1 ? d.location : NaN;
    case "sampleList": {
      const e = empirical(d);
      const m = empiricalMean(e);
      return e.scalarEvents ? m[0]! : Array.from(m);
    }
    case "product":
      return d.factors.flatMap((f) => mean(f));
  }
}

/**
 * Var[X] for univariate families; for the others the variance of each element, laid out as `mean`
 * (the covariance's diagonal; for wishart Var(W_ij) = ν(S_ij² + S_ii·S_jj)).
 */
export function variance(d: Distribution): number | number[] {
  switch (d.kind) {
    case "pointMass":
      return effectiveShape(d.value).length === 0 ? 0 : d.value.values.map(() => 0);
    case "normal":
      return d.variance;
    case "mvNormal": {
      const n = mvNormalDimension(d);
      return d.mean.map((_, i) => d.covariance[i * n + i]!);
    }
    case "gamma":
      return d.shape / (d.rate * d.rate);
    case "beta": {
      const s = d.alpha + d.beta;
      return (d.alpha * d.beta) / (s * s * (s + 1));
    }
    case "dirichlet": {
      const a0 = sum(d.alpha);
      return d.alpha.map((a) => (a * (a0 - a)) / (a0 * a0 * (a0 + 1)));
    }
    case "categorical":
      return d.probabilities.map((p) => p * (1 - p));
    case "bernoulli":
      return d.p * (1 - d.p);
    case "wishart": {
      const p = side(d.scale.length, "wishart scale");
      const nu = d.degreesOfFreedom;
      const s = d.scale;
      return s.map((sij, k) => {
        const i = Math.floor(k / p);
        const j = k % p;
        return nu * (sij * sij + s[i * p + i]! * s[j * p + j]!);
      });
    }
    case "studentT": {
      const nu = d.degreesOfFreedom;
      if (nu > 2) return (d.scale * d.scale * nu) / (nu - 2);
      return nu > 1 ? Infinity : NaN;
    }
    case "sampleList": {
      const e = empirical(d);
      const c = empiricalCovariance(e);
      const v = Array.from({ length: e.size }, (_, i) => c[i * e.size + i]!);
      return e.scalarEvents ? v[0]! : v;
    }
    case "product":
      return d.factors.flatMap((f) => variance(f));
  }
}

/**
 * Cov[X], row-major k×k over the elements laid out as `mean` (so 1×1 for univariate families,
 * p²×p² for wishart, block-diagonal for product).
 */
export function covariance(d: Distribution): number[] {
  switch (d.kind) {
    case "pointMass": {
      const k = d.value.values.length;
      return new Array<number>(k * k).fill(0);
    }
    case "mvNormal": {
      mvNormalDimension(d);
      return [...d.covariance];
    }
    case "dirichlet": {
      const k = d.alpha.length;
      const a0 = sum(d.alpha);
      const m = d.alpha.map((a) => a / a0);
      const c = new Array<number>(k * k);
      for (let i = 0; i < k; i++) {
        for (let j = 0; j < k; j++) c[i * k + j] = ((i === j ? m[i]! : 0) - m[i]! * m[j]!) / (a0 + 1);
      }
      return c;
    }
    case "categorical": {
      const p = d.probabilities;
      const k = p.length;
      const c = new Array<number>(k * k);
      for (let i = 0; i < k; i++) {
        for (let j = 0; j < k; j++) c[i * k + j] = (i === j ? p[i]! : 0) - p[i]! * p[j]!;
      }
      return c;
    }
    case "wishart": {
      // Cov(W_ij, W_kl) = ν(S_ik·S_jl + S_il·S_jk).
      const p = side(d.scale.length, "wishart scale");
      const s = d.scale;
      const q = p * p;
      const c = new Array<number>(q * q);
      for (let a = 0; a < q; a++) {
        const i = Math.floor(a / p);
        const j = a % p;
        for (let b = 0; b < q; b++) {
          const k = Math.floor(b / p);
          const l = b % p;
          c[a * q + b] = d.degreesOfFreedom * (s[i * p + k]! * s[j * p + l]! + s[i * p + l]! * s[j * p + k]!);
        }
      }
      return c;
    }
    case "normal":
    case "gamma":
    case "beta":
    case "bernoulli":
    case "studentT":
      return [variance(d) as number];
    case "sampleList":
      return empiricalCovariance(empirical(d));
    case "product": {
      const blocks = d.factors.map(covariance);
      const sizes = blocks.map((b) => Math.round(Math.sqrt(b.length)));
      const k = sum(sizes);
      const c = new Array<number>(k * k).fill(0);
      let offset = 0;
      blocks.forEach((b, f) => {
        const m = sizes[f]!;
        for (let i = 0; i < m; i++) for (let j = 0; j < m; j++) c[(offset + i) * k + offset + j] = b[i * m + j]!;
        offset += m;
      });
      return c;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Densities

/** How many numbers one value (as taken by `logpdf`, returned by `sample`) of `d` has. */
export function valueSize(d: Distribution): number {
  switch (d.kind) {
    case "pointMass":
      return d.value.values.length;
    case "mvNormal":
      return d.mean.length;
    case "dirichlet":
      return d.alpha.length;
    case "wishart":
      return d.scale.length;
    case "sampleList":
      return empirical(d).size;
    case "product":
      return sum(d.factors.map(valueSize));
    case "normal":
    case "gamma":
    case "beta":
    case "categorical":
    case "bernoulli":
    case "studentT":
      return 1;
  }
}

/**
 * ln p(x): the log density (continuous families) or log mass (categorical, bernoulli), −∞ outside the
 * support. Dirichlet densities are with respect to Lebesgue measure on the first K−1 coordinates; matrices
 * are row-major; a product takes its factors' values concatenated. A point mass has log mass 0 at its value
 * and −∞ elsewhere.
 */
export function logpdf(d: Distribution, x: number | ArrayLike<number>): number {
  switch (d.kind) {
    case "pointMass": {
      const v = vectorOf(d, x, d.value.values.length);
      for (let i = 0; i < v.length; i++) if (v[i] !== d.value.values[i]) return -Infinity;
      return 0;
    }
    case "normal": {
      const z = scalarOf(d, x) - d.mean;
      return -0.5 * (LN_2PI + Math.log(d.variance) + (z * z) / d.variance);
    }
    case "mvNormal": {
      const n = mvNormalDimension(d);
      const v = vectorOf(d, x, n);
      const l = lowerCholesky(d.covariance, n, "the mvNormal covariance");
      const r = new Float64Array(n);
      for (let i = 0; i < n; i++) r[i] = v[i]! - d.mean[i]!;
      const w = solveLower(l, n, r);
      let q = 0;
      for (let i = 0; i < n; i++) q += w[i]! * w[i]!;
      return -0.5 * (n * LN_2PI + logDetFromCholesky(l, n) + q);
    }
    case "gamma": {
      const v = scalarOf(d, x);
      if (!(v >= 0)) return -Infinity;
      return d.shape * Math.log(d.rate) - gammaln(d.shape) + xlogy(d.shape - 1, v) - d.rate * v;
    }
    case "beta": {
      const v = scalarOf(d, x);
      if (!(v >= 0 && v <= 1)) return -Infinity;
      return xlogy(d.alpha - 1, v) + (d.beta === 1 ? 0 : (d.beta - 1) * Math.log1p(-v)) - betaln(d.alpha, d.beta);
    }
    case "dirichlet": {
      const k = d.alpha.length;
      const v = vectorOf(d, x, k);
      if (!Array.prototype.every.call(v, (vi: number) => vi >= 0) || Math.abs(sum(v) - 1) > SIMPLEX_TOLERANCE) return -Infinity;
      let lp = gammaln(sum(d.alpha));
      for (let i = 0; i < k; i++) lp += xlogy(d.alpha[i]! - 1, v[i]!) - gammaln(d.alpha[i]!);
      return lp;
    }
    case "categorical": {
      const i = scalarOf(d, x);
      if (!Number.isInteger(i) || i < 0 || i >= d.probabilities.length) return -Infinity;
      return Math.log(d.probabilities[i]!);
    }
    case "bernoulli": {
      const v = scalarOf(d, x);
      if (v === 1) return Math.log(d.p);
      if (v === 0) return Math.log1p(-d.p);
      return -Infinity;
    }
    case "wishart": {
      const p = side(d.scale.length, "wishart scale");
      const v = vectorOf(d, x, p * p);
      for (let i = 0; i < p; i++) {
        for (let j = 0; j < i; j++) {
          const a = v[i * p + j]!;
          const b = v[j * p + i]!;
          if (Math.abs(a - b) > SYMMETRY_TOLERANCE * Math.max(1, Math.abs(a), Math.abs(b))) return -Infinity;
        }
      }
      const lx = cholesky(Float64Array.from(v), p);
      if (!lx) return -Infinity;
      const nu = d.degreesOfFreedom;
      const ls = lowerCholesky(d.scale, p, "the wishart scale");
      const sInv = choleskyInverse(ls, p);
      let trace = 0;
      for (let i = 0; i < p * p; i++) trace += sInv[i]! * v[i]!;
      return (
        0.5 * (nu - p - 1) * logDetFromCholesky(lx, p) -
        0.5 * trace -
        0.5 * nu * p * LN_2 -
        0.5 * nu * logDetFromCholesky(ls, p) -
        multivariateGammaLn(nu / 2, p)
      );
    }
    case "studentT": {
      const nu = d.degreesOfFreedom;
      const z = (scalarOf(d, x) - d.location) / d.scale;
      // lnΓ((ν+1)/2) − lnΓ(ν/2) − ½ln(νπ) = −ln B(ν/2, ½) − ½ln ν; betaln avoids the cancellation at large ν.
      return -betaln(nu / 2, 0.5) - 0.5 * Math.log(nu) - Math.log(d.scale) - ((nu + 1) / 2) * Math.log1p((z * z) / nu);
    }
    case "product": {
      const total = valueSize(d);
      const v = vectorOf(d, x, total);
      let lp = 0;
      let offset = 0;
      for (const f of d.factors) {
        const m = valueSize(f);
        lp += logpdf(f, Array.prototype.slice.call(v, offset, offset + m) as number[]);
        offset += m;
      }
      return lp;
    }
    case "sampleList":
      return unsupported(d, "logpdf");
  }
}

/** Differential entropy in nats (Shannon entropy for categorical and bernoulli); a product's is its factors' sum. */
export function entropy(d: Distribution): number {
  switch (d.kind) {
    case "normal":
      return 0.5 * (1 + LN_2PI + Math.log(d.variance));
    case "mvNormal": {
      const n = mvNormalDimension(d);
      const l = lowerCholesky(d.covariance, n, "the mvNormal covariance");
      return 0.5 * (n * (1 + LN_2PI) + logDetFromCholesky(l, n));
    }
    case "gamma":
      return d.shape - Math.log(d.rate) + gammaln(d.shape) + (1 - d.shape) * digamma(d.shape);
    case "beta": {
      const { alpha: a, beta: b } = d;
      return betaln(a, b) - (a - 1) * digamma(a) - (b - 1) * digamma(b) + (a + b - 2) * digamma(a + b);
    }
    case "dirichlet": {
      const k = d.alpha.length;
      const a0 = sum(d.alpha);
      let h = -gammaln(a0) + (a0 - k) * digamma(a0);
      for (const a of d.alpha) h += gammaln(a) - (a - 1) * digamma(a);
      return h;
    }
    case "categorical":
      return -d.probabilities.reduce((h, p) => h + xlogy(p, p), 0);
    case "bernoulli":
      return -(xlogy(d.p, d.p) + xlogy(1 - d.p, 1 - d.p));
    case "studentT": {
      const nu = d.degreesOfFreedom;
      return (
        ((nu + 1) / 2) * (digamma((nu + 1) / 2) - digamma(nu / 2)) +
        0.5 * Math.log(nu) +
        betaln(nu / 2, 0.5) +
        Math.log(d.scale)
      );
    }
    case "wishart": {
      // H = (p+1)/2·ln|S| + p(p+1)/2·ln 2 + ln Γ_p(ν/2) − (ν−p−1)/2·ψ_p(ν/2) + νp/2.
      const p = side(d.scale.length, "wishart scale");
      const nu = d.degreesOfFreedom;
      const ls = lowerCholesky(d.scale, p, "the wishart scale");
      return (
        ((p + 1) / 2) * logDetFromCholesky(ls, p) +
        ((p * (p + 1)) / 2) * LN_2 +
        multivariateGammaLn(nu / 2, p) -
        ((nu - p - 1) / 2) * multivariateDigamma(nu / 2, p) +
        (nu * p) / 2
      );
    }
    case "product":
      return d.factors.reduce((h, f) => h + entropy(f), 0);
    case "pointMass":
    case "sampleList":
      return unsupported(d, "entropy");
  }
}

// ---------------------------------------------------------------------------------------------
// Sampling

/**
 * One draw from `d`, as a number for univariate families (categorical: the index; bernoulli: 0 or 1) and a
 * row-major Float64Array otherwise. The order in which random numbers are consumed is part of the
 * reproducibility contract (same seed → same draw), so it is fixed here:
 * - mvNormal: n standard normals in coordinate order (`rng.normals`), x = m + L z with L the lower Cholesky
 *   factor of the covariance (a tiny diagonal jitter is added only if the covariance is merely semidefinite).
 * - wishart (Bartlett): first the p diagonal entries c_i = √χ²_{ν−i}, i = 0..p−1, each as
 *   √Gamma((ν−i)/2, rate ½); then the p(p−1)/2 below-diagonal standard normals, row by row (row-major);
 *   W = (L A)(L A)ᵀ with A lower triangular and L the lower Cholesky factor of the scale.
 * - studentT: first z ~ N(0, 1), then g ~ χ²_ν = Gamma(ν/2, rate ½); x = location + scale·z/√(g/ν).
 * - sampleList: one categorical draw over the normalised weights picks the sample returned.
 * - product: the factors in order, their values concatenated.
 * A point mass consumes nothing.
 */
export function sample(d: Distribution, rng: Random): number | Float64Array {
  switch (d.kind) {
    case "pointMass":
      return effectiveShape(d.value).length === 0 ? d.value.values[0]! : Float64Array.from(d.value.values);
    case "normal":
      return d.mean + Math.sqrt(d.variance) * rng.normal();
    case "mvNormal": {
      const n = mvNormalDimension(d);
      const l = choleskyWithJitter(Float64Array.from(d.covariance), n).l;
      const z = new Float64Array(n);
      rng.normals(z);
      const x = lowerTimesVector(l, n, z);
      for (let i = 0; i < n; i++) x[i]! += d.mean[i]!;
      return x;
    }
    case "gamma":
      return rng.gamma(d.shape, d.rate);
    case "beta":
      return rng.beta(d.alpha, d.beta);
    case "dirichlet":
      return rng.dirichlet(d.alpha);
    case "categorical":
      return rng.categorical(d.probabilities);
    case "bernoulli":
      return rng.bernoulli(d.p);
    case "wishart":
      return sampleWishart(d.degreesOfFreedom, d.scale, rng);
    case "studentT": {
      const nu = d.degreesOfFreedom;
      const z = rng.normal();
      const g = rng.gamma(nu / 2, 0.5);
      return d.location + (d.scale * z) / Math.sqrt(g / nu);
    }
    case "sampleList": {
      const e = empirical(d);
      const s = rng.categorical(e.weights);
      if (e.scalarEvents) return e.values[s]!;
      return Float64Array.from(e.values.slice(s * e.size, (s + 1) * e.size));
    }
    case "product": {
      const out = new Float64Array(valueSize(d));
      let offset = 0;
      for (const f of d.factors) {
        const v = sample(f, rng);
        if (typeof v === "number") out[offset++] = v;
        else {
          out.set(v, offset);
          offset += v.length;
        }
      }
      return out;
    }
  }
}


function sampleWishart(nu: number, scale: readonly number[], rng: Random): Float64Array {
  const p = side(scale.length, "wishart scale");
  if (!(nu > p - 1)) throw new Error(`a ${p}×${p} wishart needs more than ${p - 1} degrees of freedom, got ${nu}`);
  const l = lowerCholesky(scale, p, "the wishart scale");
  const a = new Float64Array(p * p);
  for (let i = 0; i < p; i++) a[i * p + i] = Math.sqrt(rng.gamma((nu - i) / 2, 0.5));
  for (let i = 1; i < p; i++) for (let j = 0; j < i; j++) a[i * p + j] = rng.normal();
  // B = L A (lower triangular times lower triangular is lower triangular), then W = B Bᵀ.
  const b = new Float64Array(p * p);
  for (let i = 0; i < p; i++) {
    for (let j = 0; j <= i; j++) {
      let s = 0;
      for (let k = j; k <= i; k++) s += l[i * p + k]! * a[k * p + j]!;
      b[i * p + j] = s;
    }
  }
  const w = new Float64Array(p * p);
  for (let i = 0; i < p; i++) {
    for (let j = 0; j <= i; j++) {
      let s = 0;
      for (let k = 0; k <= j; k++) s += b[i * p + k]! * b[j * p + k]!;
      w[i * p + j] = s;
      w[j * p + i] = s;
    }
  }
  return w;
}
