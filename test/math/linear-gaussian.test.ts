// The regression engine against independent dense computations (ml-matrix inverses and
// determinants on the raw design matrix, never the sufficient statistics), closed forms and
// seeded simulation.
import { CholeskyDecomposition, Matrix, determinant, inverse } from "ml-matrix";
import { describe, expect, it } from "vitest";
import {
  type GaussianGamma,
  type NormalGamma,
  addObservation,
  emptyStats,
  meanFieldUpdate,
  normalGammaLogEvidence,
  normalGammaPredictive,
  normalGammaUpdate,
  sampleNormalGamma,
  weightMarginal,
} from "../../src/math/linear-gaussian.ts";
import { Random } from "../../src/math/random.ts";
import { digamma, gammaln, logSumExp } from "../../src/math/special.ts";
import { testRandom } from "../support/assertions.ts";

const LN_2PI = Math.log(2 * Math.PI);

function normalSource(seed: number): () => number {
  const uniform = testRandom(seed);
  return () => Math.sqrt(-2 * Math.log(1 - uniform())) * Math.cos(2 * Math.PI * uniform());
}

interface Problem {
  d: number;
  xs: number[][];
  ys: number[];
}

/** y = Xw + noise with a random design, weights and noise level. */
function simulate(d: number, n: number, seed: number, noiseSd = 0.7): Problem {
  const normal = normalSource(seed);
  const w = Array.from({ length: d }, () => 2 * normal());
  const xs = Array.from({ length: n }, () => Array.from({ length: d }, () => 1.5 * normal()));
  const ys = xs.map((x) => x.reduce((s, v, i) => s + v * w[i]!, 0) + noiseSd * normal());
  return { d, xs, ys };
}

function statsOf({ d, xs, ys }: Problem) {
  const stats = emptyStats(d);
  xs.forEach((x, i) => addObservation(stats, x, ys[i]!));
  return stats;
}

/** A random SPD matrix B Bᵀ + c·I (row-major) and a random vector, for non-trivial priors. */
function randomSpd(d: number, seed: number, c = 0.5): number[] {
  const normal = normalSource(seed);
  const b = new Matrix(Array.from({ length: d }, () => Array.from({ length: d }, normal)));
  return b.mmul(b.transpose()).add(Matrix.eye(d, d, c)).to1DArray();
}
const randomVector = (d: number, seed: number) => Array.from({ length: d }, normalSource(seed));

const square = (values: readonly number[], d: number) => Matrix.from1DArray(d, d, [...values]);
const column = (values: readonly number[]) => Matrix.columnVector([...values]);
// ml-matrix's instance add/sub/mul/div work in place; these return new matrices.
const plus = (a: Matrix, b: Matrix) => Matrix.add(a, b);
const minus = (a: Matrix, b: Matrix) => Matrix.sub(a, b);
const scaled = (a: Matrix, c: number) => Matrix.mul(a, c);
const quadratic = (v: Matrix, a: Matrix) => v.transpose().mmul(a).mmul(v).get(0, 0);
const sumOfSquares = (v: Matrix) => v.transpose().mmul(v).get(0, 0);
const designOf = (p: Problem) => (p.xs.length > 0 ? new Matrix(p.xs) : new Matrix(0, p.d));

/** max |a − e| / max(1, max |e|). */
function relativeError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  expect(actual.length).toBe(expected.length);
  let scale = 1;
  let worst = 0;
  for (let i = 0; i < expected.length; i++) scale = Math.max(scale, Math.abs(expected[i]!));
  for (let i = 0; i < expected.length; i++) worst = Math.max(worst, Math.abs(actual[i]! - expected[i]!));
  return worst / scale;
}

function normalGammaPrior(d: number, seed: number): NormalGamma {
  return { mean: randomVector(d, seed), precision: randomSpd(d, seed + 1), shape: 1.5 + (seed % 3), rate: 0.5 + (seed % 5) };
}

/** The posterior by the textbook formulas on the raw data, with the residual form of bn. */
function denseNormalGamma(prior: NormalGamma, p: Problem): NormalGamma {
  const x = designOf(p);
  const y = column(p.ys);
  const lambda0 = square(prior.precision, p.d);
  const m0 = column(prior.mean);
  const lambda = plus(lambda0, x.transpose().mmul(x));
  const m = inverse(lambda).mmul(plus(lambda0.mmul(m0), x.transpose().mmul(y)));
  const bracket = sumOfSquares(minus(y, x.mmul(m))) + quadratic(minus(m, m0), lambda0);
  return { mean: m.to1DArray(), precision: lambda.to1DArray(), shape: prior.shape + p.ys.length / 2, rate: prior.rate + bracket / 2 };
}

/** ln of the multivariate Student-t density. */
function logMultivariateT(y: Matrix, location: Matrix, scale: Matrix, nu: number): number {
  const n = y.rows;
  const q = quadratic(minus(y, location), inverse(scale));
  return (
    gammaln((nu + n) / 2) - gammaln(nu / 2) - (n / 2) * Math.log(nu * Math.PI) - 0.5 * Math.log(determinant(scale)) - ((nu + n) / 2) * Math.log1p(q / nu)
  );
}

function logStudentT(y: number, location: number, scale: number, nu: number): number {
  const z = (y - location) / scale;
  return gammaln((nu + 1) / 2) - gammaln(nu / 2) - 0.5 * Math.log(nu * Math.PI) - Math.log(scale) - ((nu + 1) / 2) * Math.log1p((z * z) / nu);
}

describe("sufficient statistics", () => {
  it("accumulate ΦᵀΦ, Φᵀy, yᵀy and n of the raw data", () => {
    const p = simulate(3, 17, 1);
    const stats = statsOf(p);
    const x = designOf(p);
    expect(stats.n).toBe(17);
    expect(relativeError(stats.xtx, x.transpose().mmul(x).to1DArray())).toBeLessThan(1e-14);
    expect(relativeError(stats.xty, x.transpose().mmul(column(p.ys)).to1DArray())).toBeLessThan(1e-14);
    expect(stats.yty).toBeCloseTo(p.ys.reduce((s, y) => s + y * y, 0), 10);
    for (let i = 0; i < 3; i++) for (let j = 0; j < 3; j++) expect(stats.xtx[i * 3 + j]).toBe(stats.xtx[j * 3 + i]);
  });

  it("rejects a feature vector of the wrong length", () => {
    expect(() => addObservation(emptyStats(2), [1, 2, 3], 1)).toThrow(RangeError);
  });
});

describe("Normal-Gamma (exact)", () => {
  const cases = [1, 2, 3, 5].flatMap((d) => [0, 1, 3, 40].map((n) => ({ d, n })));

  it.each(cases)("posterior equals the dense textbook formula (d = $d, n = $n)", ({ d, n }) => {
    const seed = 10 * d + n;
    const p = simulate(d, n, seed);
    const prior = normalGammaPrior(d, seed);
    const actual = normalGammaUpdate(prior, statsOf(p));
    const expected = denseNormalGamma(prior, p);
    expect(relativeError(actual.mean, expected.mean)).toBeLessThan(1e-10);
    expect(relativeError(actual.precision, expected.precision)).toBeLessThan(1e-14);
    expect(actual.shape).toBe(expected.shape);
    expect(actual.rate).toBeCloseTo(expected.rate, 9);
  });

  it("learning A then B equals learning A ∪ B", () => {
    for (let seed = 1; seed <= 20; seed++) {
      const d = 1 + (seed % 4);
      const p = simulate(d, 30, seed);
      const cut = seed % 30;
      const a = { d, xs: p.xs.slice(0, cut), ys: p.ys.slice(0, cut) };
      const b = { d, xs: p.xs.slice(cut), ys: p.ys.slice(cut) };
      const prior = normalGammaPrior(d, seed);
      const sequential = normalGammaUpdate(normalGammaUpdate(prior, statsOf(a)), statsOf(b));
      const together = normalGammaUpdate(prior, statsOf(p));
      expect(relativeError(sequential.mean, together.mean)).toBeLessThan(1e-11);
      expect(relativeError(sequential.precision, together.precision)).toBeLessThan(1e-14);
      expect(sequential.shape).toBe(together.shape);
      expect(sequential.rate).toBeCloseTo(together.rate, 10);
    }
  });

  it("never lets the rate fall below the prior's on an exact fit", () => {
    // y = Xw exactly and the prior centred on w: the bracket is zero up to rounding.
    const w = [1.5, -2, 0.25];
    const normal = normalSource(5);
    const xs = Array.from({ length: 50 }, () => w.map(() => 1e3 * normal()));
    const ys = xs.map((x) => x.reduce((s, v, i) => s + v * w[i]!, 0));
    const prior: NormalGamma = { mean: w, precision: randomSpd(3, 6), shape: 1, rate: 1e-9 };
    const post = normalGammaUpdate(prior, statsOf({ d: 3, xs, ys }));
    expect(post.rate).toBeGreaterThanOrEqual(prior.rate);
    expect(relativeError(post.mean, w)).toBeLessThan(1e-9);
  });

  it("log evidence equals the multivariate Student-t marginal of y and the chain rule of predictives", () => {
    for (const [d, n] of [[1, 1], [2, 5], [3, 20], [4, 12]] as const) {
      const p = simulate(d, n, 100 + d);
      const prior = normalGammaPrior(d, 100 + n);
      const post = normalGammaUpdate(prior, statsOf(p));
      const logEvidence = normalGammaLogEvidence(prior, post, n);

      // y ~ t_{2a0}(X m0, (b0/a0)(I + X Λ0⁻¹ Xᵀ)).
      const x = designOf(p);
      const scale = scaled(plus(Matrix.eye(n, n), x.mmul(inverse(square(prior.precision, d))).mmul(x.transpose())), prior.rate / prior.shape);
      const marginal = logMultivariateT(column(p.ys), x.mmul(column(prior.mean)), scale, 2 * prior.shape);
      expect(logEvidence).toBeCloseTo(marginal, 9);

      let chain = 0;
      let current = prior;
      p.xs.forEach((xi, i) => {
        const { location, scale: s, degreesOfFreedom } = normalGammaPredictive(current, xi);
        chain += logStudentT(p.ys[i]!, location, s, degreesOfFreedom);
        const one = emptyStats(d);
        addObservation(one, xi, p.ys[i]!);
        current = normalGammaUpdate(current, one);
      });
      expect(logEvidence).toBeCloseTo(chain, 9);
    }
  });

  it("an empty batch has log evidence zero", () => {
    const prior = normalGammaPrior(2, 3);
    expect(normalGammaLogEvidence(prior, prior, 0)).toBeCloseTo(0, 12);
  });

  it("predictive is Student-t with ν = 2a, location xᵀm, scale² = (b/a)(1 + xᵀΛ⁻¹x)", () => {
    const post = normalGammaPrior(3, 8);
    const x = [0.3, -1.2, 2];
    const { location, scale, degreesOfFreedom } = normalGammaPredictive(post, x);
    const leverage = quadratic(column(x), inverse(square(post.precision, 3)));
    expect(degreesOfFreedom).toBe(2 * post.shape);
    expect(location).toBeCloseTo(x.reduce((s, v, i) => s + v * post.mean[i]!, 0), 12);
    expect(scale * scale).toBeCloseTo((post.rate / post.shape) * (1 + leverage), 10);
    expect(() => normalGammaPredictive(post, [1, 2])).toThrow(RangeError);
  });

  it("weight marginal: covariance b/(a−1)·Λ⁻¹ when a > 1, else the scale matrix b/a·Λ⁻¹", () => {
    for (const shape of [0.4, 1, 1.0001, 7]) {
      const post = { ...normalGammaPrior(3, 4), shape };
      const { mean, covariance } = weightMarginal(post);
      const factor = shape > 1 ? post.rate / (shape - 1) : post.rate / shape;
      expect(mean).toEqual(post.mean);
      expect(relativeError(covariance, scaled(inverse(square(post.precision, 3)), factor).to1DArray())).toBeLessThan(1e-11);
      for (let i = 0; i < 3; i++) for (let j = 0; j < 3; j++) expect(covariance[i * 3 + j]).toBe(covariance[j * 3 + i]);
    }
  });

  it("sampling draws τ first, then d normals in order, and w = m + L⁻ᵀz/√τ", () => {
    const post = normalGammaPrior(3, 12);
    const draw = sampleNormalGamma(post, new Random(42));
    const replay = new Random(42);
    const tau = replay.gamma(post.shape, post.rate);
    const z = column([replay.normal(), replay.normal(), replay.normal()]);
    const upper = new CholeskyDecomposition(square(post.precision, 3)).lowerTriangularMatrix.transpose();
    const w = plus(column(post.mean), scaled(inverse(upper).mmul(z), 1 / Math.sqrt(tau)));
    expect(draw.noisePrecision).toBe(tau);
    expect(relativeError(draw.weights, w.to1DArray())).toBeLessThan(1e-12);
    expect(sampleNormalGamma(post, new Random(42))).toEqual(draw);
  });

  it("samples have the marginal moments: E[τ] = a/b, E[w] = m, Cov[w] = b/(a−1)·Λ⁻¹", () => {
    const post: NormalGamma = { mean: [1, -2], precision: [2, 0.6, 0.6, 1], shape: 12, rate: 6 };
    const rng = new Random(7);
    const draws = 40_000;
    let tauSum = 0;
    const w: number[][] = [];
    for (let i = 0; i < draws; i++) {
      const s = sampleNormalGamma(post, rng);
      tauSum += s.noisePrecision;
      w.push(Array.from(s.weights));
    }
    const expectedCov = weightMarginal(post).covariance;
    const sample = new Matrix(w);
    const means = sample.mean("column");
    const centred = sample.clone().subRowVector(means);
    const cov = scaled(centred.transpose().mmul(centred), 1 / (draws - 1)).to1DArray();
    // Standard errors: τ has sd √a/b ≈ 0.58; each w_i has sd ≤ 1.1; covariance entries about 0.02.
    expect(Math.abs(tauSum / draws - post.shape / post.rate)).toBeLessThan(5 * (Math.sqrt(post.shape) / post.rate) / Math.sqrt(draws));
    means.forEach((m, i) => expect(Math.abs(m - post.mean[i]!)).toBeLessThan(5 * Math.sqrt(expectedCov[i * 2 + i]! / draws)));
    expect(relativeError(cov, expectedCov)).toBeLessThan(0.03);
  });
});

/** −ELBO of q on the raw data, computed densely. */
function denseFreeEnergy(prior: GaussianGamma, q: GaussianGamma, p: Problem): number {
  const d = p.d;
  const n = p.ys.length;
  const x = designOf(p);
  const s0 = square(prior.covariance, d);
  const s = square(q.covariance, d);
  const m = column(q.mean);
  const ess = sumOfSquares(minus(column(p.ys), x.mmul(m))) + x.mmul(s).mmul(x.transpose()).trace();
  const eTau = q.shape / q.rate;
  const eLogTau = digamma(q.shape) - Math.log(q.rate);
  const s0inv = inverse(s0);
  const klGaussian =
    0.5 * (s0inv.mmul(s).trace() + quadratic(minus(m, column(prior.mean)), s0inv) - d + Math.log(determinant(s0) / determinant(s)));
  const [a0, b0, a, b] = [prior.shape, prior.rate, q.shape, q.rate];
  const klGamma = (a - a0) * digamma(a) - gammaln(a) + gammaln(a0) + a0 * (Math.log(b) - Math.log(b0)) + (a * (b0 - b)) / b;
  return -(0.5 * n * (eLogTau - LN_2PI) - 0.5 * eTau * ess - klGaussian - klGamma);
}

function gaussianGammaPrior(d: number, seed: number): GaussianGamma {
  return { mean: randomVector(d, seed), covariance: randomSpd(d, seed + 1, 1), shape: 2 + (seed % 3), rate: 1 + (seed % 4) };
}

const VAGUE = (d: number): GaussianGamma => ({
  mean: new Array<number>(d).fill(0),
  covariance: Matrix.eye(d, d, 1e6).to1DArray(),
  shape: 1e-12,
  rate: 1e-8,
});

/** Non-increasing up to rounding: an increase above 1e-12·|F| would be a bug (inference-math §4.1 uses 1e-9). */
function expectNonIncreasing(trace: readonly number[]) {
  for (let i = 1; i < trace.length; i++) expect(trace[i]!).toBeLessThanOrEqual(trace[i - 1]! + 1e-12 * Math.abs(trace[i - 1]!));
}

describe("mean-field VB", () => {
  it("free energy is finite and non-increasing, one value per iteration", () => {
    for (let seed = 1; seed <= 12; seed++) {
      const d = 1 + (seed % 5);
      const p = simulate(d, 5 + 7 * seed, seed);
      for (const prior of [gaussianGammaPrior(d, seed), VAGUE(d)]) {
        const { freeEnergy } = meanFieldUpdate(prior, statsOf(p), 30);
        expect(freeEnergy).toHaveLength(30);
        expect(freeEnergy.every(Number.isFinite)).toBe(true);
        expectNonIncreasing(freeEnergy);
      }
    }
  });

  it("reports −ELBO of the returned factors, as computed densely from the raw data", () => {
    for (let seed = 1; seed <= 6; seed++) {
      const d = 1 + (seed % 4);
      const p = simulate(d, 25, seed + 50);
      const prior = gaussianGammaPrior(d, seed);
      for (const iterations of [1, 2, 10]) {
        const { posterior, freeEnergy } = meanFieldUpdate(prior, statsOf(p), iterations);
        expect(freeEnergy.at(-1)!).toBeCloseTo(denseFreeEnergy(prior, posterior, p), 8);
      }
    }
  });

  it("with τ pinned by a sharp prior, q(w) is the exact known-noise Gaussian posterior", () => {
    const d = 3;
    const p = simulate(d, 15, 9);
    const prior: GaussianGamma = { ...gaussianGammaPrior(d, 9), shape: 1e12, rate: 1e12 };
    const { posterior } = meanFieldUpdate(prior, statsOf(p), 1);
    const x = designOf(p);
    const s0inv = inverse(square(prior.covariance, d));
    const s = inverse(plus(s0inv, x.transpose().mmul(x)));
    const m = s.mmul(plus(s0inv.mmul(column(prior.mean)), x.transpose().mmul(column(p.ys))));
    expect(relativeError(posterior.mean, m.to1DArray())).toBeLessThan(1e-10);
    expect(relativeError(posterior.covariance, s.to1DArray())).toBeLessThan(1e-10);
  });

  it("converges to a fixed point of the update equations, checked on the raw data", () => {
    const d = 4;
    const p = simulate(d, 60, 21, 1.3);
    const prior = gaussianGammaPrior(d, 21);
    const { posterior } = meanFieldUpdate(prior, statsOf(p), 200);
    const x = designOf(p);
    const eTau = posterior.shape / posterior.rate;
    const s0inv = inverse(square(prior.covariance, d));
    const s = inverse(plus(s0inv, scaled(x.transpose().mmul(x), eTau)));
    const m = s.mmul(plus(s0inv.mmul(column(prior.mean)), scaled(x.transpose().mmul(column(p.ys)), eTau)));
    const b = prior.rate + 0.5 * (sumOfSquares(minus(column(p.ys), x.mmul(m))) + x.mmul(s).mmul(x.transpose()).trace());
    expect(posterior.shape).toBe(prior.shape + 30);
    expect(relativeError(posterior.mean, m.to1DArray())).toBeLessThan(1e-10);
    expect(relativeError(posterior.covariance, s.to1DArray())).toBeLessThan(1e-10);
    expect(posterior.rate).toBeCloseTo(b, 9);
  });

  it("free energy bounds −log p(y), computed by integrating over τ, from above and closely", () => {
    // Independent priors w ~ N(m0, S0), τ ~ Gamma(a0, b0): p(y | τ) = N(y; X m0, X S0 Xᵀ + I/τ) is closed form.
    const d = 2;
    const p = simulate(d, 25, 33);
    const prior = gaussianGammaPrior(d, 33);
    const x = designOf(p);
    const y = minus(column(p.ys), x.mmul(column(prior.mean)));
    const spread = x.mmul(square(prior.covariance, d)).mmul(x.transpose());
    const n = p.ys.length;
    const logJoint: number[] = [];
    const step = 0.005;
    for (let u = -12; u <= 8; u += step) {
      const tau = Math.exp(u);
      const cov = plus(spread, Matrix.eye(n, n, 1 / tau));
      const logLikelihood = -0.5 * (n * LN_2PI + Math.log(determinant(cov)) + quadratic(y, inverse(cov)));
      // Gamma density in u = ln τ (Jacobian τ).
      const logPrior = prior.shape * Math.log(prior.rate) - gammaln(prior.shape) + prior.shape * u - prior.rate * tau;
      logJoint.push(logLikelihood + logPrior + Math.log(step));
    }
    const logEvidence = logSumExp(logJoint);
    const { freeEnergy } = meanFieldUpdate(prior, statsOf(p), 100);
    const gap = freeEnergy.at(-1)! + logEvidence;
    expect(gap).toBeGreaterThan(0);
    expect(gap).toBeLessThan(0.2);
  });

  it("matches the exact posterior mean and noise precision in the large-n limit", () => {
    const d = 3;
    const p = simulate(d, 5000, 77, 0.5);
    const { posterior } = meanFieldUpdate(VAGUE(d), statsOf(p), 50);
    const exact = normalGammaUpdate({ mean: [0, 0, 0], precision: Matrix.eye(3, 3, 1e-6).to1DArray(), shape: 1e-12, rate: 1e-8 }, statsOf(p));
    expect(relativeError(posterior.mean, exact.mean)).toBeLessThan(1e-8);
    expect(posterior.shape / posterior.rate).toBeCloseTo(exact.shape / exact.rate, 2);
    expect(Math.abs(posterior.shape / posterior.rate / (exact.shape / exact.rate) - 1)).toBeLessThan(1e-3);
  });

  it("copes with the reference's exact-fit data x = i, y = i: strictly decreasing free energy", () => {
    const stats = emptyStats(2);
    for (let i = 1; i <= 10; i++) addObservation(stats, [i, i * i], i);
    const { freeEnergy, posterior } = meanFieldUpdate(VAGUE(2), stats, 10);
    expect(freeEnergy).toHaveLength(10);
    expect(freeEnergy.every(Number.isFinite)).toBe(true);
    for (let i = 1; i < 10; i++) expect(freeEnergy[i]!).toBeLessThan(freeEnergy[i - 1]!);
    expect(posterior.mean[0]).toBeCloseTo(1, 3);
  });

  it("with zero iterations returns the prior; mismatched dimensions throw", () => {
    const prior = gaussianGammaPrior(2, 3);
    const stats = statsOf(simulate(2, 5, 3));
    expect(meanFieldUpdate(prior, stats, 0)).toEqual({ posterior: prior, freeEnergy: [] });
    expect(() => meanFieldUpdate(prior, emptyStats(3), 5)).toThrow(RangeError);
  });
});
