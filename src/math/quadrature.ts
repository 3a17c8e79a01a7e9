// Numerical integration: adaptive Gauss–Kronrod, and Gaussian expectations built on it.
import { logistic } from "./special.ts";

// Gauss–Kronrod 15-point rule on [−1, 1] (QUADPACK qk15): Kronrod nodes ±XK[i] with weights WK[i]; the
// 7-point Gauss rule uses the odd-indexed nodes XK[1], XK[3], XK[5], XK[7] = 0 with weights WG.
const XK = [
  0.991455371120812639206854697526329, 0.949107912342758524526189684047851, 0.864864423359769072789712788640926,
  0.741531185599394439863864773280788, 0.586087235467691130294144845693013, 0.405845151377397166906606412076961,
  0.207784955007898467600689403773245, 0,
];
const WK = [
  0.02293532201052922496373200805897, 0.063092092629978553290700663189204, 0.104790010322250183839876322541518,
  0.140653259715525918745189590510238, 0.16900472663926790282658342659855, 0.190350578064785409913256402421014,
  0.204432940075298892414161999234649, 0.209482141084727828012999174891714,
];
const WG = [
  0.129484966168869693270611432679082, 0.27970539148927666790146777142378, 0.381830050505118944950369775488975,
  0.417959183673469387755102040816327,
];

/** The 15-point Kronrod estimate of ∫_a^b f and its difference from the embedded 7-point Gauss estimate. */
export function gaussKronrod15(f: (x: number) => number, a: number, b: number): { value: number; error: number } {
  const center = 0.5 * (a + b);
  const half = 0.5 * (b - a);
  const fc = f(center);
  let kronrod = WK[7]! * fc;
  let gauss = WG[3]! * fc;
  for (let i = 0; i < 7; i++) {
    const dx = half * XK[i]!;
    const sum = f(center - dx) + f(center + dx);
    kronrod += WK[i]! * sum;
    if (i % 2 === 1) gauss += WG[(i - 1) / 2]! * sum;
  }
  return { value: kronrod * half, error: Math.abs((kronrod - gauss) * half) };
}

const QUADRATURE_TOLERANCE = 1e-14;
const QUADRATURE_MAX_DEPTH = 50;
/** The standard normal mass beyond ±10 is 1.5e-23: the truncation error of the risk integral is below that. */
const NORMAL_RANGE = 10;
const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);

function adaptive(f: (x: number) => number, a: number, b: number, tolerance: number, depth: number): number {
  const { value, error } = gaussKronrod15(f, a, b);
  if (error <= tolerance || depth >= QUADRATURE_MAX_DEPTH) return value;
  const middle = 0.5 * (a + b);
  return adaptive(f, a, middle, tolerance / 2, depth + 1) + adaptive(f, middle, b, tolerance / 2, depth + 1);
}

/** Fixed breakpoints resolving the normal density's shape on [−10, 10]. */
const NORMAL_BREAKPOINTS = [-6, -3, -1.5, 0, 1.5, 3, 6];

/**
 * E[σ(z)] for z ~ N(mu, sd²): ∫ σ(mu + sd·t) φ(t) dt over t ∈ [−10, 10] by adaptive Gauss–Kronrod, absolute
 * error below 1e-14. σ switches from 0 to 1 around t₀ = −mu/sd over a width of about 1/sd, which can be far
 * narrower than the nodes of a panel (and would then be missed altogether), so the range is also split at t₀
 * and at t₀ ± 4ʲ/sd (from 1e-13 at least, the width below which σ is a step to within 1e-14). Computed
 * for mu ≤ 0 and reflected by E[σ(z)] = 1 − E[σ(−z)], so that relabelling y flips the risk exactly.
 */
export function expectedLogistic(mu: number, sd: number): number {
  if (!(sd > 0)) return logistic(mu);
  if (mu > 0) return 1 - expectedLogistic(-mu, sd);
  const integrand = (t: number) => logistic(mu + sd * t) * Math.exp(-0.5 * t * t) * INV_SQRT_2PI;
  const points = [...NORMAL_BREAKPOINTS];
  const split = -mu / sd;
  if (split < NORMAL_RANGE) {
    points.push(split);
    for (let offset = Math.max(1 / sd, 1e-13); offset < 2 * NORMAL_RANGE; offset *= 4) {
      points.push(split - offset, split + offset);
    }
  }
  const inside = points.filter((t) => t > -NORMAL_RANGE && t < NORMAL_RANGE).sort((a, b) => a - b);
  const edges = [-NORMAL_RANGE, ...inside, NORMAL_RANGE];
  const tolerance = QUADRATURE_TOLERANCE / (edges.length - 1);
  let sum = 0;
  for (let i = 0; i + 1 < edges.length; i++) {
    if (edges[i + 1]! > edges[i]!) sum += adaptive(integrand, edges[i]!, edges[i + 1]!, tolerance, 0);
  }
  return sum;
}
