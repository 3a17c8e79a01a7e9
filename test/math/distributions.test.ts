import { CholeskyDecomposition, Matrix, determinant, inverse } from "ml-matrix";
import { describe, expect, it } from "vitest";
import type { Distribution } from "../../src/math/distribution.ts";
import { covariance, entropy, logpdf, mean, sample, valueSize, variance } from "../../src/math/distributions.ts";
import { Random } from "../../src/math/random.ts";
import { multivariateGammaLn } from "../../src/math/special.ts";

// Closed-form reference values were computed with mpmath at 30 digits directly from the densities
// (pdf, not log-pdf formulas) and, for entropies, from the textbook formulas; Wishart via mpmath matrices.

/** |actual − expected| ≤ tol · max(1, |expected|). */
function close(actual: number, expected: number, tol = 1e-12) {
  expect(Math.abs(actual - expected), `${actual} vs ${expected}`).toBeLessThanOrEqual(tol * Math.max(1, Math.abs(expected)));
}

function closeAll(actual: ArrayLike<number>, expected: ArrayLike<number>, tol = 1e-12) {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) close(actual[i]!, expected[i]!, tol);
}

const asArray = (v: number | number[]): number[] => (typeof v === "number" ? [v] : v);

// ---------------------------------------------------------------------------------------------
// Fixtures

const normal: Distribution = { kind: "normal", mean: 1.5, variance: 4 };
const gamma: Distribution = { kind: "gamma", shape: 2.5, rate: 1.5 };
const gammaSmallShape: Distribution = { kind: "gamma", shape: 0.5, rate: 2 };
const betaD: Distribution = { kind: "beta", alpha: 2.5, beta: 0.7 };
const dirichlet: Distribution = { kind: "dirichlet", alpha: [2, 3.5, 0.8] };
const categorical: Distribution = { kind: "categorical", probabilities: [0.2, 0.5, 0.3] };
const bernoulli: Distribution = { kind: "bernoulli", p: 0.3 };
const studentT: Distribution = { kind: "studentT", degreesOfFreedom: 3.5, location: 1, scale: 2 };
const studentT10: Distribution = { kind: "studentT", degreesOfFreedom: 10, location: -2, scale: 0.5 };
// d = 3 with correlations 0.6, −0.3, 0.2.
const mvCovariance = [4, 1.2, -0.45, 1.2, 1, 0.15, -0.45, 0.15, 0.5625];
const mvNormal: Distribution = { kind: "mvNormal", mean: [1, -2, 0.5], covariance: mvCovariance };
const wishart2: Distribution = { kind: "wishart", degreesOfFreedom: 5, scale: [2, 0.5, 0.5, 1] };
const wishart3Scale = [1.5, 0.3, -0.2, 0.3, 1, 0.4, -0.2, 0.4, 2];
const wishart3: Distribution = { kind: "wishart", degreesOfFreedom: 6, scale: wishart3Scale };

// ---------------------------------------------------------------------------------------------
// Sampling helpers

/** n draws, flattened (n × k); categorical indices are one-hot encoded so they line up with `mean`. */
function draws(d: Distribution, n: number, seed: number): { k: number; x: Float64Array } {
  const rng = new Random(seed);
  const k = d.kind === "categorical" ? d.probabilities.length : valueSize(d);
  const x = new Float64Array(n * k);
  for (let s = 0; s < n; s++) {
    const v = sample(d, rng);
    if (d.kind === "categorical") x[s * k + (v as number)] = 1;
    else if (typeof v === "number") x[s] = v;
    else x.set(v, s * k);
  }
  return { k, x };
}

const N = 100_000;

/**
 * Each sample-mean element is within 5 standard errors (√(Σ_ii/n)) of `mean`, and each sample covariance
 * element, computed around the true mean, within 5 standard errors of the product's sample variance.
 */
function expectMomentsMatch(d: Distribution, seed: number) {
  const m = asArray(mean(d));
  const c = covariance(d);
  const { k, x } = draws(d, N, seed);
  expect(m.length).toBe(k);
  expect(c.length).toBe(k * k);
  for (let i = 0; i < k; i++) {
    let s = 0;
    for (let t = 0; t < N; t++) s += x[t * k + i]!;
    const se = Math.sqrt(c[i * k + i]! / N);
    expect(Math.abs(s / N - m[i]!), `mean[${i}] ${s / N} vs ${m[i]} (se ${se})`).toBeLessThanOrEqual(5 * se);
  }
  for (let i = 0; i < k; i++) {
    for (let j = 0; j <= i; j++) {
      let s = 0;
      let s2 = 0;
      for (let t = 0; t < N; t++) {
        const p = (x[t * k + i]! - m[i]!) * (x[t * k + j]! - m[j]!);
        s += p;
        s2 += p * p;
      }
      const est = s / N;
      const se = Math.sqrt((s2 / N - est * est) / N);
      expect(Math.abs(est - c[i * k + j]!), `cov[${i},${j}] ${est} vs ${c[i * k + j]} (se ${se})`).toBeLessThanOrEqual(5 * se);
    }
  }
}

/** −(1/n) Σ logpdf(xᵢ) over fixed-seed draws is within 5 standard errors of `entropy`. */
function expectEntropyMatchesSampling(d: Distribution, seed: number) {
  const rng = new Random(seed);
  let s = 0;
  let s2 = 0;
  for (let t = 0; t < N; t++) {
    const lp = logpdf(d, sample(d, rng));
    s += lp;
    s2 += lp * lp;
  }
  const est = -s / N;
  const se = Math.sqrt((s2 / N - (s / N) ** 2) / N);
  expect(se).toBeGreaterThan(0);
  expect(Math.abs(est - entropy(d)), `${est} vs ${entropy(d)} (se ${se})`).toBeLessThanOrEqual(5 * se);
}

function trapezoid(f: (x: number) => number, a: number, b: number, n: number): number {
  const h = (b - a) / n;
  let s = 0.5 * (f(a) + f(b));
  for (let i = 1; i < n; i++) s += f(a + i * h);
  return s * h;
}

function midpoint(f: (x: number) => number, a: number, b: number, n: number): number {
  const h = (b - a) / n;
  let s = 0;
  for (let i = 0; i < n; i++) s += f(a + (i + 0.5) * h);
  return s * h;
}

// ---------------------------------------------------------------------------------------------

describe("logpdf closed forms", () => {
  it.each([
    ["normal", normal, -0.7, -2.217085713764618],
    ["gamma", gamma, 1.2, -0.7975377650115762],
    ["gamma, shape < 1", gammaSmallShape, 0.3, -0.22380495048175938],
    ["beta", betaD, 0.9, 0.8725894645617974],
    ["studentT", studentT, 4, -2.7996037660257023],
  ] as const)("%s", (_, d, x, expected) => close(logpdf(d, x), expected));

  it("dirichlet", () => close(logpdf(dirichlet, [0.2, 0.5, 0.3]), 0.8527983059090739));

  it("wishart (2×2)", () => close(logpdf(wishart2, [3, 1, 1, 2]), -5.826670987887517));

  it("categorical and bernoulli are log masses", () => {
    close(logpdf(categorical, 1), Math.log(0.5));
    close(logpdf(categorical, [2]), Math.log(0.3));
    close(logpdf(bernoulli, 1), Math.log(0.3));
    close(logpdf(bernoulli, 0), Math.log(0.7));
  });

  it("mvNormal matches the direct formula with ml-matrix's inverse and determinant", () => {
    const sigma = new Matrix([
      [4, 1.2, -0.45],
      [1.2, 1, 0.15],
      [-0.45, 0.15, 0.5625],
    ]);
    const precision = inverse(sigma);
    const m = [1, -2, 0.5];
    for (const x of [
      [0, 0, 0],
      [3.1, -1.2, 0.9],
      [-4, 2, -1],
    ]) {
      const r = Matrix.columnVector(x.map((v, i) => v - m[i]!));
      const q = r.transpose().mmul(precision).mmul(r).get(0, 0);
      const expected = -0.5 * (3 * Math.log(2 * Math.PI) + Math.log(determinant(sigma)) + q);
      close(logpdf(mvNormal, x), expected);
    }
  });

  it("wishart (3×3) matches the direct formula with ml-matrix's inverse and determinant", () => {
    const s = new Matrix([
      [1.5, 0.3, -0.2],
      [0.3, 1, 0.4],
      [-0.2, 0.4, 2],
    ]);
    const x = new Matrix([
      [7, 1, -2],
      [1, 5, 3],
      [-2, 3, 12],
    ]);
    const nu = 6;
    const p = 3;
    const trace = inverse(s).mmul(x).trace();
    const expected =
      ((nu - p - 1) / 2) * Math.log(determinant(x)) -
      trace / 2 -
      ((nu * p) / 2) * Math.LN2 -
      (nu / 2) * Math.log(determinant(s)) -
      multivariateGammaLn(nu / 2, p);
    close(logpdf(wishart3, x.to1DArray()), expected);
  });

  it("special cases agree with their univariate counterparts", () => {
    // Dirichlet with K = 2 is a Beta on the first coordinate.
    close(logpdf({ kind: "dirichlet", alpha: [2.5, 0.7] }, [0.9, 0.1]), logpdf(betaD, 0.9), 1e-11);
    // Wishart(ν, s) with p = 1 is Gamma(ν/2, rate 1/(2s)).
    close(logpdf({ kind: "wishart", degreesOfFreedom: 3.3, scale: [0.8] }, [1.7]), logpdf({ kind: "gamma", shape: 1.65, rate: 1 / 1.6 }, 1.7));
    // MvNormal with d = 1 is a normal.
    close(logpdf({ kind: "mvNormal", mean: [1.5], covariance: [4] }, [-0.7]), logpdf(normal, -0.7));
    // Student-t with ν = 1 is Cauchy; large ν approaches the normal.
    const cauchy: Distribution = { kind: "studentT", degreesOfFreedom: 1, location: 2, scale: 3 };
    close(logpdf(cauchy, 5), -Math.log(Math.PI * 3 * 2));
    // (Needs lnΓ((ν+1)/2) − lnΓ(ν/2) without cancellation: the naive difference is off by ~1e-6 here.)
    close(logpdf({ kind: "studentT", degreesOfFreedom: 1e9, location: 1.5, scale: 2 }, -0.7), logpdf(normal, -0.7), 1e-8);
  });

  it("boundaries of the support", () => {
    expect(logpdf(gamma, -1)).toBe(-Infinity);
    expect(logpdf(gamma, 0)).toBe(-Infinity);
    close(logpdf({ kind: "gamma", shape: 1, rate: 2 }, 0), Math.log(2));
    expect(logpdf(gammaSmallShape, 0)).toBe(Infinity);
    expect(logpdf(betaD, 1.5)).toBe(-Infinity);
    expect(logpdf(betaD, -0.1)).toBe(-Infinity);
    expect(logpdf(betaD, 0)).toBe(-Infinity);
    expect(logpdf(betaD, 1)).toBe(Infinity);
    close(logpdf({ kind: "beta", alpha: 1, beta: 1 }, 0), 0);
    close(logpdf({ kind: "beta", alpha: 1, beta: 3 }, 0), Math.log(3));
    expect(logpdf(dirichlet, [0.2, 0.5, 0.4])).toBe(-Infinity);
    expect(logpdf(dirichlet, [-0.1, 0.8, 0.3])).toBe(-Infinity);
    expect(logpdf(categorical, 3)).toBe(-Infinity);
    expect(logpdf(categorical, 0.5)).toBe(-Infinity);
    expect(logpdf(categorical, -1)).toBe(-Infinity);
    expect(logpdf(bernoulli, 0.5)).toBe(-Infinity);
    expect(logpdf({ kind: "bernoulli", p: 1 }, 0)).toBe(-Infinity);
    expect(logpdf(wishart2, [1, 2, 2, 1])).toBe(-Infinity); // symmetric, indefinite
    expect(logpdf(wishart2, [3, 1, 0, 2])).toBe(-Infinity); // not symmetric
  });

  it("a point mass has log mass 0 at its value and −∞ elsewhere", () => {
    const d: Distribution = { kind: "pointMass", value: { shape: [2], values: [1, 2] } };
    expect(logpdf(d, [1, 2])).toBe(0);
    expect(logpdf(d, [1, 2.5])).toBe(-Infinity);
  });

  it("a product sums its factors' log densities over the concatenated value", () => {
    const d: Distribution = { kind: "product", factors: [normal, mvNormal, categorical, wishart2] };
    const x = [-0.7, 3.1, -1.2, 0.9, 1, 3, 1, 1, 2];
    close(logpdf(d, x), logpdf(normal, -0.7) + logpdf(mvNormal, [3.1, -1.2, 0.9]) + logpdf(categorical, 1) + logpdf(wishart2, [3, 1, 1, 2]));
    expect(() => logpdf(d, [1, 2])).toThrow(/9 elements/);
  });
});

describe("logpdf normalisation", () => {
  it("normal integrates to 1", () => {
    close(trapezoid((x) => Math.exp(logpdf(normal, x)), 1.5 - 30, 1.5 + 30, 30_000), 1, 1e-6);
  });

  it("gamma integrates to 1", () => {
    close(trapezoid((x) => Math.exp(logpdf(gamma, x)), 0, 60, 600_000), 1, 1e-6);
    close(trapezoid((x) => Math.exp(logpdf({ kind: "gamma", shape: 1, rate: 2 }, x)), 0, 40, 400_000), 1, 1e-6);
    // Shape < 1 has an integrable pole at 0: substitute x = t².
    close(midpoint((t) => 2 * t * Math.exp(logpdf(gammaSmallShape, t * t)), 0, 6, 600_000), 1, 1e-6);
  });

  it("beta integrates to 1", () => {
    close(trapezoid((x) => Math.exp(logpdf({ kind: "beta", alpha: 2.5, beta: 3.2 }, x)), 0, 1, 200_000), 1, 1e-6);
    close(trapezoid((x) => Math.exp(logpdf({ kind: "beta", alpha: 1, beta: 1 }, x)), 0, 1, 1000), 1, 1e-12);
    // Poles at both ends: substitute x = (1 − cos πt)/2.
    const d: Distribution = { kind: "beta", alpha: 0.5, beta: 0.7 };
    const f = (t: number) => ((Math.PI / 2) * Math.sin(Math.PI * t)) * Math.exp(logpdf(d, (1 - Math.cos(Math.PI * t)) / 2));
    close(midpoint(f, 0, 1, 1_000_000), 1, 1e-6);
  });

  it("studentT integrates to 1 (x = location + scale·tan θ)", () => {
    for (const d of [studentT, studentT10, { kind: "studentT", degreesOfFreedom: 1, location: 0, scale: 1 } as const]) {
      const f = (theta: number) => {
        const c = Math.cos(theta);
        return (d.scale / (c * c)) * Math.exp(logpdf(d, d.location + d.scale * Math.tan(theta)));
      };
      close(trapezoid(f, -Math.PI / 2, Math.PI / 2, 200_000), 1, 1e-6);
    }
  });

  it("discrete masses sum to 1", () => {
    close([0, 1, 2].reduce((s, i) => s + Math.exp(logpdf(categorical, i)), 0), 1, 1e-15);
    close(Math.exp(logpdf(bernoulli, 0)) + Math.exp(logpdf(bernoulli, 1)), 1, 1e-15);
  });
});

describe("entropy", () => {
  it.each([
    ["normal", normal, 2.112085713764618],
    ["gamma", gamma, 1.32448280139689],
    ["beta", betaD, -0.561990067683649],
    ["dirichlet", dirichlet, -1.5229896751348226],
    ["categorical", categorical, 1.0296530140645734],
    ["bernoulli", bernoulli, 0.6108643020548935],
    ["studentT", studentT, 2.4140373012424123],
    ["wishart", wishart2, 7.649972061236879],
  ] as const)("%s matches the closed form", (_, d, expected) => close(entropy(d), expected));

  it("special cases", () => {
    close(entropy({ kind: "gamma", shape: 1, rate: 2 }), 1 - Math.log(2)); // exponential
    close(entropy({ kind: "beta", alpha: 1, beta: 1 }), 0); // uniform
    close(entropy({ kind: "dirichlet", alpha: [1, 1, 1] }), -Math.LN2); // uniform on the simplex, density 2
    close(entropy({ kind: "studentT", degreesOfFreedom: 1, location: 4, scale: 3 }), Math.log(4 * Math.PI) + Math.log(3)); // Cauchy
    close(entropy({ kind: "categorical", probabilities: [0, 1] }), 0);
    close(entropy({ kind: "bernoulli", p: 0 }), 0);
    close(entropy({ kind: "wishart", degreesOfFreedom: 3.3, scale: [0.8] }), entropy({ kind: "gamma", shape: 1.65, rate: 1 / 1.6 }));
    close(
      entropy({ kind: "mvNormal", mean: [0, 0], covariance: [4, 0, 0, 0.25] }),
      entropy({ kind: "normal", mean: 0, variance: 4 }) + entropy({ kind: "normal", mean: 0, variance: 0.25 }),
    );
    close(entropy({ kind: "product", factors: [normal, gamma, categorical] }), entropy(normal) + entropy(gamma) + entropy(categorical));
  });

  it.each([
    ["normal", normal, 11],
    ["gamma", gamma, 12],
    ["gamma, shape < 1", gammaSmallShape, 13],
    ["beta", betaD, 14],
    ["dirichlet", dirichlet, 15],
    ["categorical", categorical, 16],
    ["bernoulli", bernoulli, 17],
    ["studentT", studentT, 18],
    ["mvNormal", mvNormal, 19],
    ["wishart 2×2", wishart2, 20],
    ["wishart 3×3", wishart3, 21],
  ] as const)("%s equals −E[logpdf] over samples", (_, d, seed) => expectEntropyMatchesSampling(d, seed));
});

describe("moments", () => {
  it("closed forms", () => {
    expect(mean(normal)).toBe(1.5);
    expect(variance(normal)).toBe(4);
    close(mean(gamma) as number, 2.5 / 1.5);
    close(variance(gamma) as number, 2.5 / 2.25);
    close(mean(betaD) as number, 2.5 / 3.2);
    close(variance(betaD) as number, (2.5 * 0.7) / (3.2 * 3.2 * 4.2));
    closeAll(mean(dirichlet) as number[], [2 / 6.3, 3.5 / 6.3, 0.8 / 6.3]);
    closeAll(variance(dirichlet) as number[], [2, 3.5, 0.8].map((a) => (a * (6.3 - a)) / (6.3 * 6.3 * 7.3)));
    closeAll(variance(categorical) as number[], [0.16, 0.25, 0.21]);
    closeAll(covariance(categorical), [0.16, -0.1, -0.06, -0.1, 0.25, -0.15, -0.06, -0.15, 0.21]);
    expect(mean(bernoulli)).toBe(0.3);
    close(variance(bernoulli) as number, 0.21);
    expect(mean(studentT)).toBe(1);
    close(variance(studentT) as number, (4 * 3.5) / 1.5);
    closeAll(mean(wishart2) as number[], [10, 2.5, 2.5, 5]);
    // Var(W_ij) = ν(S_ij² + S_ii S_jj).
    closeAll(variance(wishart2) as number[], [5 * 8, 5 * (0.25 + 2), 5 * (0.25 + 2), 5 * 2]);
    closeAll(variance(mvNormal) as number[], [4, 1, 0.5625]);
    closeAll(covariance(mvNormal), mvCovariance);
    closeAll(covariance(normal), [4]);
  });

  it("Student-t moments that do not exist", () => {
    expect(mean({ kind: "studentT", degreesOfFreedom: 1, location: 0, scale: 1 })).toBeNaN();
    expect(variance({ kind: "studentT", degreesOfFreedom: 2, location: 0, scale: 1 })).toBe(Infinity);
    expect(variance({ kind: "studentT", degreesOfFreedom: 0.5, location: 0, scale: 1 })).toBeNaN();
  });

  it("a point mass", () => {
    expect(mean({ kind: "pointMass", value: { shape: [], values: [3] } })).toBe(3);
    expect(variance({ kind: "pointMass", value: { shape: [], values: [3] } })).toBe(0);
    expect(mean({ kind: "pointMass", value: { shape: [2], values: [3, 4] } })).toEqual([3, 4]);
    expect(covariance({ kind: "pointMass", value: { shape: [2], values: [3, 4] } })).toEqual([0, 0, 0, 0]);
  });

  it("a weighted sample list", () => {
    const d: Distribution = {
      kind: "sampleList",
      samples: { shape: [4, 2], values: [1, 10, 2, 20, 3, 10, 4, 0] },
      weights: [1, 2, 3, 4],
    };
    // Weights normalised to 0.1, 0.2, 0.3, 0.4.
    closeAll(mean(d) as number[], [3, 8]);
    closeAll(variance(d) as number[], [1, 56]);
    // Deviations from the mean: (−2, 2), (−1, 12), (0, 2), (1, −8).
    closeAll(covariance(d), [1, -6, -6, 56]);
    const scalar: Distribution = { kind: "sampleList", samples: { shape: [3], values: [1, 2, 6] }, weights: [] };
    expect(mean(scalar)).toBe(3);
    close(variance(scalar) as number, 14 / 3);
    expect(() => mean({ kind: "sampleList", samples: { shape: [2], values: [1, 2] }, weights: [1] })).toThrow(/2 weights/);
  });

  it("a product concatenates its factors' moments", () => {
    const d: Distribution = { kind: "product", factors: [normal, gamma, mvNormal] };
    closeAll(mean(d) as number[], [1.5, 2.5 / 1.5, 1, -2, 0.5]);
    closeAll(variance(d) as number[], [4, 2.5 / 2.25, 4, 1, 0.5625]);
    const c = covariance(d);
    expect(c.length).toBe(25);
    close(c[0]!, 4);
    close(c[1 * 5 + 1]!, 2.5 / 2.25);
    close(c[2 * 5 + 3]!, 1.2);
    expect(c[0 * 5 + 2]).toBe(0);
  });

  it.each([
    ["normal", normal, 31],
    ["gamma", gamma, 32],
    ["gamma, shape < 1", gammaSmallShape, 33],
    ["beta", betaD, 34],
    ["dirichlet", dirichlet, 35],
    ["categorical (one-hot)", categorical, 36],
    ["bernoulli", bernoulli, 37],
    ["studentT (ν = 10)", studentT10, 38],
    ["mvNormal (d = 3, correlated)", mvNormal, 39],
    ["wishart 2×2", wishart2, 40],
    ["wishart 3×3 (mean ν·S, full 9×9 covariance)", wishart3, 41],
    ["product", { kind: "product", factors: [normal, betaD, dirichlet] } as Distribution, 42],
  ] as const)("sampled mean and covariance of %s match", (_, d, seed) => expectMomentsMatch(d, seed));

  it("studentT (ν = 3.5): sampled mean matches", () => {
    const { x } = draws(studentT, N, 43);
    const m = x.reduce((s, v) => s + v, 0) / N;
    expect(Math.abs(m - 1)).toBeLessThan(5 * Math.sqrt((variance(studentT) as number) / N));
  });

  it("a sample list is resampled in proportion to its weights", () => {
    const d: Distribution = { kind: "sampleList", samples: { shape: [2, 2], values: [0, 1, 5, 6] }, weights: [1, 3] };
    const rng = new Random(44);
    let second = 0;
    for (let t = 0; t < N; t++) {
      const v = sample(d, rng) as Float64Array;
      expect(v[0] === 0 ? v[1] : v[1]! - 1).toBe(v[0] === 0 ? 1 : 5);
      if (v[0] === 5) second++;
    }
    expect(Math.abs(second / N - 0.75)).toBeLessThan(5 * Math.sqrt((0.75 * 0.25) / N));
  });
});

describe("sampling draw order (reproducibility contract)", () => {
  const choleskyLower = (rows: number[][]) => new CholeskyDecomposition(new Matrix(rows)).lowerTriangularMatrix;

  it("mvNormal = m + L z with z drawn in coordinate order", () => {
    const x = sample(mvNormal, new Random(7)) as Float64Array;
    const reference = new Random(7);
    const z = reference.normals(new Float64Array(3));
    const l = choleskyLower([
      [4, 1.2, -0.45],
      [1.2, 1, 0.15],
      [-0.45, 0.15, 0.5625],
    ]);
    const expected = l.mmul(Matrix.columnVector(Array.from(z))).to1DArray().map((v, i) => v + [1, -2, 0.5][i]!);
    closeAll(x, expected);
  });

  it("studentT draws z first, then g ~ Gamma(ν/2, rate ½)", () => {
    const rng = new Random(8);
    const x = sample(studentT, rng) as number;
    const reference = new Random(8);
    const z = reference.normal();
    const g = reference.gamma(1.75, 0.5);
    close(x, 1 + (2 * z) / Math.sqrt(g / 3.5));
    expect(rng.nextUint32()).toBe(reference.nextUint32());
  });

  it("wishart (Bartlett): the diagonal first, then the below-diagonal normals row-major", () => {
    const rng = new Random(9);
    const w = sample(wishart3, rng) as Float64Array;
    const reference = new Random(9);
    const a = Matrix.zeros(3, 3);
    for (let i = 0; i < 3; i++) a.set(i, i, Math.sqrt(reference.gamma((6 - i) / 2, 0.5)));
    for (let i = 1; i < 3; i++) for (let j = 0; j < i; j++) a.set(i, j, reference.normal());
    const b = choleskyLower([
      [1.5, 0.3, -0.2],
      [0.3, 1, 0.4],
      [-0.2, 0.4, 2],
    ]).mmul(a);
    closeAll(w, b.mmul(b.transpose()).to1DArray());
    expect(rng.nextUint32()).toBe(reference.nextUint32());
  });

  it("a product draws its factors in order", () => {
    const d: Distribution = { kind: "product", factors: [normal, categorical, mvNormal] };
    const x = sample(d, new Random(10)) as Float64Array;
    const reference = new Random(10);
    const expected = [sample(normal, reference) as number, sample(categorical, reference) as number, ...(sample(mvNormal, reference) as Float64Array)];
    expect(Array.from(x)).toEqual(expected);
  });

  it("the same seed gives the same draws", () => {
    for (const d of [normal, gamma, betaD, dirichlet, categorical, bernoulli, studentT, mvNormal, wishart3]) {
      expect(sample(d, new Random(123))).toEqual(sample(d, new Random(123)));
    }
  });

  it("a point mass returns its value and consumes nothing", () => {
    const rng = new Random(11);
    expect(sample({ kind: "pointMass", value: { shape: [], values: [2.5] } }, rng)).toBe(2.5);
    expect(Array.from(sample({ kind: "pointMass", value: { shape: [2], values: [1, 2] } }, rng) as Float64Array)).toEqual([1, 2]);
    expect(rng.nextUint32()).toBe(new Random(11).nextUint32());
  });

  it("a semidefinite mvNormal covariance is sampled with jitter", () => {
    const x = sample({ kind: "mvNormal", mean: [0, 0], covariance: [1, 1, 1, 1] }, new Random(12)) as Float64Array;
    close(x[0]!, x[1]!, 1e-5);
  });
});

describe("unsupported operations and invalid parameters throw", () => {
  const list: Distribution = { kind: "sampleList", samples: { shape: [2], values: [1, 2] }, weights: [] };
  const point: Distribution = { kind: "pointMass", value: { shape: [], values: [1] } };

  it("names the family and the operation", () => {
    expect(() => logpdf(list, 1)).toThrow(/logpdf is not supported for a sampleList/);
    expect(() => entropy(list)).toThrow(/entropy is not supported for a sampleList/);
    expect(() => entropy(point)).toThrow(/entropy is not supported for a pointMass/);
  });

  it("rejects bad shapes and non-positive-definite matrices", () => {
    expect(() => logpdf(mvNormal, [1, 2])).toThrow(/3 elements/);
    expect(() => logpdf(normal, [1, 2])).toThrow(/single number/);
    expect(() => logpdf({ kind: "mvNormal", mean: [0, 0], covariance: [1, 2, 2, 1] }, [0, 0])).toThrow(/positive definite/);
    expect(() => entropy({ kind: "mvNormal", mean: [0, 0], covariance: [1, 0, 0] })).toThrow(/4 covariance values/);
    expect(() => mean({ kind: "wishart", degreesOfFreedom: 3, scale: [1, 0, 0] })).toThrow(/square/);
    expect(() => sample({ kind: "wishart", degreesOfFreedom: 0.5, scale: [1, 0, 0, 1] }, new Random(1))).toThrow(/more than 1 degrees/);
  });
});
