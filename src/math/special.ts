// Typed wrappers around the special functions the models need. The heavy lifting is @stdlib's;
// this module fixes the argument orders and parameterisations in one place.
import { createRequire } from "node:module";

// Required on first use rather than imported: together these are some 450 small CommonJS modules,
// about 0.15 s of every server start, most of which never evaluates a special function.
const require = createRequire(import.meta.url);
const load = () => ({
  betainc: require("@stdlib/math-base-special-betainc") as typeof import("@stdlib/math-base-special-betainc"),
  betaincinv: require("@stdlib/math-base-special-betaincinv") as typeof import("@stdlib/math-base-special-betaincinv"),
  betaln: require("@stdlib/math-base-special-betaln") as typeof import("@stdlib/math-base-special-betaln"),
  digamma: require("@stdlib/math-base-special-digamma") as typeof import("@stdlib/math-base-special-digamma"),
  erf: require("@stdlib/math-base-special-erf") as typeof import("@stdlib/math-base-special-erf"),
  erfc: require("@stdlib/math-base-special-erfc") as typeof import("@stdlib/math-base-special-erfc"),
  erfcinv: require("@stdlib/math-base-special-erfcinv") as typeof import("@stdlib/math-base-special-erfcinv"),
  gammainc: require("@stdlib/math-base-special-gammainc") as typeof import("@stdlib/math-base-special-gammainc"),
  gammaincinv: require("@stdlib/math-base-special-gammaincinv") as typeof import("@stdlib/math-base-special-gammaincinv"),
  gammaln: require("@stdlib/math-base-special-gammaln") as typeof import("@stdlib/math-base-special-gammaln"),
  trigamma: require("@stdlib/math-base-special-trigamma") as typeof import("@stdlib/math-base-special-trigamma"),
});
let loaded: ReturnType<typeof load> | undefined;
const stdlib = () => (loaded ??= load());

/** Loads them now: for a thread that will need them, while it would otherwise wait. */
export function loadSpecialFunctions(): void {
  stdlib();
}

const LN_PI = Math.log(Math.PI);
const HALF_LN_2PI = 0.5 * Math.log(2 * Math.PI);

/** ln|Γ(x)|. */
export function gammaln(x: number): number {
  return stdlib().gammaln(x);
}

/** ψ(x) = d/dx ln Γ(x). */
export function digamma(x: number): number {
  return stdlib().digamma(x);
}

/** ψ′(x). */
export function trigamma(x: number): number {
  return stdlib().trigamma(x);
}

/** ln B(a, b) = ln Γ(a) + ln Γ(b) − ln Γ(a + b). */
export function betaln(a: number, b: number): number {
  return stdlib().betaln(a, b);
}

/**
 * The regularized incomplete beta function I_x(a, b) = P(X ≤ x) for X ~ Beta(a, b).
 * Note the order: x first, then the shapes. Clamped to 0 below the support and 1 above it.
 */
export function regularizedBetaInc(x: number, a: number, b: number): number {
  if (Number.isNaN(x)) return NaN;
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  return stdlib().betainc(x, a, b, true, false);
}

/** The p-quantile of Beta(a, b): the x with I_x(a, b) = p. */
export function betaQuantile(p: number, a: number, b: number): number {
  return stdlib().betaincinv(p, a, b, false);
}

/**
 * The regularized lower incomplete gamma function P(a, x) = γ(a, x) / Γ(a) = P(X ≤ x) for
 * X ~ Gamma(shape a, rate 1). Note the order: x first, then the shape. 0 for x ≤ 0.
 */
export function regularizedGammaP(x: number, a: number): number {
  if (Number.isNaN(x)) return NaN;
  if (x <= 0) return 0;
  return stdlib().gammainc(x, a, true, false);
}

/** The p-quantile of Gamma(shape, rate) — rate, not scale: the result is the rate-1 quantile divided by `rate`. */
export function gammaQuantile(p: number, shape: number, rate: number): number {
  return stdlib().gammaincinv(p, shape, false) / rate;
}

export function erf(x: number): number {
  return stdlib().erf(x);
}

/** 1 − erf(x), without cancellation for large x. */
export function erfc(x: number): number {
  return stdlib().erfc(x);
}

/** Φ(z), the standard normal CDF. */
export function normalCdf(z: number): number {
  return 0.5 * stdlib().erfc(-z / Math.SQRT2);
}

// Below this, Φ(z) is computed from the asymptotic (Mills ratio) series; erfc would underflow near z ≈ −38.
const LOG_NORMAL_CDF_ASYMPTOTIC_BELOW = -20;

/**
 * ln Φ(z), accurate in both tails: ln Φ(−40) ≈ −804.608 is finite, and ln Φ(z) ≈ −Φ(−z) for large z.
 */
export function logNormalCdf(z: number): number {
  if (Number.isNaN(z)) return NaN;
  if (z === -Infinity) return -Infinity;
  if (z > 0) return Math.log1p(-0.5 * stdlib().erfc(z / Math.SQRT2));
  if (z >= LOG_NORMAL_CDF_ASYMPTOTIC_BELOW) return Math.log(0.5 * stdlib().erfc(-z / Math.SQRT2));
  // Φ(z) = φ(z)/|z| · Σ_k (−1)^k (2k−1)!! / z^{2k}; for z ≤ −20 the terms shrink below 1e-16 well before diverging.
  const w = 1 / (z * z);
  let term = 1;
  let sum = 1;
  for (let k = 1; k <= 12; k++) {
    term *= -(2 * k - 1) * w;
    sum += term;
  }
  return -0.5 * z * z - HALF_LN_2PI - Math.log(-z) + Math.log(sum);
}

/** Φ⁻¹(p): −∞ at 0, +∞ at 1, NaN outside [0, 1]. */
export function normalQuantile(p: number): number {
  if (!(p >= 0 && p <= 1)) return NaN;
  return -Math.SQRT2 * stdlib().erfcinv(2 * p);
}

/** ln Γ_p(a) = p(p−1)/4 · ln π + Σ_{j=1..p} ln Γ(a + (1 − j)/2), the multivariate gamma function. */
export function multivariateGammaLn(a: number, p: number): number {
  let sum = (p * (p - 1) * LN_PI) / 4;
  for (let j = 1; j <= p; j++) sum += stdlib().gammaln(a + (1 - j) / 2);
  return sum;
}

/** ψ_p(a) = Σ_{j=1..p} ψ(a + (1 − j)/2), the derivative of ln Γ_p(a). */
export function multivariateDigamma(a: number, p: number): number {
  let sum = 0;
  for (let j = 1; j <= p; j++) sum += stdlib().digamma(a + (1 - j) / 2);
  return sum;
}

/** ln Σ exp(vᵢ) without overflow; −∞ for an empty list. */
export function logSumExp(values: ArrayLike<number>): number {
  let max = -Infinity;
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (Number.isNaN(v)) return NaN;
    if (v > max) max = v;
  }
  if (max === -Infinity || max === Infinity) return max;
  let sum = 0;
  for (let i = 0; i < values.length; i++) sum += Math.exp(values[i]! - max);
  return max + Math.log(sum);
}

/** ln(1 + eˣ) (softplus) without overflow. */
export function log1pExp(x: number): number {
  return x > 0 ? x + Math.log1p(Math.exp(-x)) : Math.log1p(Math.exp(x));
}

/** 1 / (1 + e⁻ˣ) without overflow in either tail. */
export function logistic(x: number): number {
  if (x >= 0) return 1 / (1 + Math.exp(-x));
  const e = Math.exp(x);
  return e / (1 + e);
}

/** P(T ≤ t) for Student-t with ν degrees of freedom, through the regularized incomplete beta function. */
export function studentTCdf(t: number, nu: number): number {
  if (Number.isNaN(t)) return NaN;
  const t2 = t * t;
  // Two equivalent forms; each is used where its argument does not lose digits to rounding.
  if (t2 < nu) {
    const central = regularizedBetaInc(t2 / (nu + t2), 0.5, nu / 2); // P(|T| ≤ |t|)
    return t >= 0 ? 0.5 + 0.5 * central : 0.5 - 0.5 * central;
  }
  const tail = 0.5 * regularizedBetaInc(nu / (nu + t2), nu / 2, 0.5); // P(T > |t|)
  return t >= 0 ? 1 - tail : tail;
}
