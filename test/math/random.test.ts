import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { Random, deriveSeed, splitmix32 } from "../../src/math/random.ts";

// Reference streams from the independent Python implementation (test/math/fixtures/random_streams.py).
interface Stream {
  splitmix32: number[];
  uint32: number[];
  doubles: number[];
  normals: number[];
  gamma2_5: number[];
  gamma0_3: number[];
  gamma2_5_rate4: number[];
  beta2_3: number[];
  beta_tiny: number[];
  dirichlet123: number[][];
  dirichlet_tiny: number[][];
  categorical: number[];
  bernoulli0_3: number[];
}
interface Fixtures {
  streams: Record<string, Stream>;
  deriveSeed: { instanceSeed: number; episode: string; decisionIndex: number; seed: number }[];
}
const fixtures = JSON.parse(
  readFileSync(new URL("./fixtures/random-streams.json", import.meta.url), "utf8"),
) as Fixtures;

const SEEDS = [0, 1, 42, 2 ** 32 - 1, 123456789];

function take<T>(n: number, draw: (index: number) => T): T[] {
  return Array.from({ length: n }, (_, i) => draw(i));
}

/**
 * Values computed through Math.log / Math.cos (normals and everything built on them) may differ in
 * the last bit from Python: V8 ships its own fdlibm port, CPython uses the C library (glibc), and
 * the two disagree in the last ulp for a few percent of arguments. Those are compared with a 1e-14
 * relative tolerance; integers, uniform doubles and discrete draws are compared exactly.
 */
const REL_TOL = 1e-14;
function expectClose(actual: readonly number[], expected: readonly number[], what: string): void {
  expect(actual.length, what).toBe(expected.length);
  actual.forEach((a, i) => {
    const e = expected[i]!;
    const ok = a === e || Math.abs(a - e) <= REL_TOL * Math.max(Math.abs(a), Math.abs(e));
    if (!ok) expect.fail(`${what}[${i}]: got ${a}, expected ${e} (relative tolerance ${REL_TOL})`);
  });
}

describe("Random — bit-exact agreement with the Python reference", () => {
  for (const seed of SEEDS) {
    describe(`seed ${seed}`, () => {
      const ref = fixtures.streams[String(seed)]!;
      it("has a fixture", () => expect(ref).toBeDefined());

      it("splitmix32 outputs", () => {
        expect(take(8, splitmix32(seed))).toEqual(ref.splitmix32);
      });
      it("first 20 uint32 outputs", () => {
        const r = new Random(seed);
        expect(take(20, () => r.nextUint32())).toEqual(ref.uint32);
      });
      it("10 doubles (exact)", () => {
        const r = new Random(seed);
        const got = take(10, () => r.nextDouble());
        got.forEach((v, i) => expect(Object.is(v, ref.doubles[i]), `double ${i}: ${v} vs ${ref.doubles[i]}`).toBe(true));
      });
      it("10 normals", () => {
        const r = new Random(seed);
        expectClose(take(10, () => r.normal()), ref.normals, "normal");
      });
      it("10 gamma(2.5), 10 gamma(0.3), 5 gamma(2.5, rate 4)", () => {
        let r = new Random(seed);
        expectClose(take(10, () => r.gamma(2.5)), ref.gamma2_5, "gamma(2.5)");
        r = new Random(seed);
        expectClose(take(10, () => r.gamma(0.3)), ref.gamma0_3, "gamma(0.3)");
        r = new Random(seed);
        expectClose(take(5, () => r.gamma(2.5, 4)), ref.gamma2_5_rate4, "gamma(2.5, 4)");
      });
      it("5 beta(2, 3) and 10 beta(0.001, 0.002) (underflow fallback)", () => {
        let r = new Random(seed);
        expectClose(take(5, () => r.beta(2, 3)), ref.beta2_3, "beta(2,3)");
        r = new Random(seed);
        expectClose(take(10, () => r.beta(0.001, 0.002)), ref.beta_tiny, "beta(0.001,0.002)");
      });
      it("3 dirichlet([1,2,3]) and 5 dirichlet([0.001,0.002,0.003])", () => {
        let r = new Random(seed);
        take(3, () => Array.from(r.dirichlet([1, 2, 3]))).forEach((d, i) =>
          expectClose(d, ref.dirichlet123[i]!, `dirichlet #${i}`),
        );
        r = new Random(seed);
        take(5, () => Array.from(r.dirichlet([0.001, 0.002, 0.003]))).forEach((d, i) =>
          expectClose(d, ref.dirichlet_tiny[i]!, `tiny dirichlet #${i}`),
        );
      });
      it("10 categorical([0.2,0.5,0.3]) and 20 bernoulli(0.3) (exact)", () => {
        let r = new Random(seed);
        expect(take(10, () => r.categorical([0.2, 0.5, 0.3]))).toEqual(ref.categorical);
        r = new Random(seed);
        expect(take(20, () => r.bernoulli(0.3))).toEqual(ref.bernoulli0_3);
      });
    });
  }

  it("deriveSeed matches for every fixture triple (incl. non-ASCII episodes and indices ≥ 2^32)", () => {
    expect(fixtures.deriveSeed.length).toBeGreaterThanOrEqual(10);
    expect(fixtures.deriveSeed.some((c) => c.decisionIndex > 2 ** 32)).toBe(true);
    expect(fixtures.deriveSeed.some((c) => /[^\x00-\x7f]/.test(c.episode))).toBe(true);
    for (const c of fixtures.deriveSeed) {
      expect(deriveSeed(c.instanceSeed, c.episode, c.decisionIndex), JSON.stringify(c)).toBe(c.seed);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Moments by sampling. n = 200 000; the tolerance is 5 standard errors of the estimator:
//   SE(mean) = sqrt(σ²/n),  SE(sample variance) ≈ sqrt((μ4 − σ⁴)/n) with μ4 the 4th central moment.

const N = 200_000;
const Z = 5;

interface Moments {
  mean: number;
  variance: number;
}
function sampleMoments(xs: Float64Array): Moments {
  let sum = 0;
  for (const x of xs) sum += x;
  const mean = sum / xs.length;
  let ss = 0;
  for (const x of xs) ss += (x - mean) * (x - mean);
  return { mean, variance: ss / (xs.length - 1) };
}
function draws(n: number, draw: () => number): Float64Array {
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = draw();
  return out;
}
/** Whether sample mean and variance are within Z standard errors of the truth (mean μ, variance σ², excess kurtosis κ). */
function momentsAgree(m: Moments, mean: number, variance: number, excessKurtosis: number, n = N): boolean {
  const seMean = Math.sqrt(variance / n);
  const seVar = Math.sqrt(((excessKurtosis + 2) * variance * variance) / n);
  return Math.abs(m.mean - mean) <= Z * seMean && Math.abs(m.variance - variance) <= Z * seVar;
}
function expectMoments(m: Moments, mean: number, variance: number, excessKurtosis: number, what: string): void {
  const seMean = Math.sqrt(variance / N);
  const seVar = Math.sqrt(((excessKurtosis + 2) * variance * variance) / N);
  expect(Math.abs(m.mean - mean), `${what} mean ${m.mean} vs ${mean} (SE ${seMean})`).toBeLessThanOrEqual(Z * seMean);
  expect(Math.abs(m.variance - variance), `${what} variance ${m.variance} vs ${variance} (SE ${seVar})`).toBeLessThanOrEqual(
    Z * seVar,
  );
}

describe("Random — moments (n = 200 000, tolerance 5 standard errors)", () => {
  it("uniform doubles: mean 1/2, variance 1/12, all in [0,1)", () => {
    const r = new Random(11);
    const xs = draws(N, () => r.nextDouble());
    expect(xs.every((x) => x >= 0 && x < 1)).toBe(true);
    expectMoments(sampleMoments(xs), 0.5, 1 / 12, -6 / 5, "uniform");
  });

  it("normal: mean 0, variance 1", () => {
    const r = new Random(12);
    expectMoments(sampleMoments(draws(N, () => r.normal())), 0, 1, 0, "normal");
  });

  for (const [shape, rate] of [
    [0.3, 2],
    [1, 0.5],
    [2.5, 2],
    [10, 3],
  ] as const) {
    it(`gamma(shape ${shape}, rate ${rate}): mean a/b, variance a/b²`, () => {
      const r = new Random(13);
      const xs = draws(N, () => r.gamma(shape, rate));
      expect(xs.every((x) => x >= 0 && Number.isFinite(x))).toBe(true);
      expectMoments(sampleMoments(xs), shape / rate, shape / rate ** 2, 6 / shape, `gamma(${shape}, ${rate})`);
    });
  }

  it("the moment check is sharp enough to catch a scale/rate mix-up", () => {
    const r = new Random(13);
    const m = sampleMoments(draws(N, () => r.gamma(2.5, 2)));
    expect(momentsAgree(m, 2.5 / 2, 2.5 / 4, 6 / 2.5)).toBe(true);
    expect(momentsAgree(m, 2.5 * 2, 2.5 * 4, 6 / 2.5)).toBe(false); // scale parameterisation
    expect(momentsAgree(m, 2.5 / 2 * 1.01, 2.5 / 4, 6 / 2.5)).toBe(false); // 1 % bias
  });

  for (const [a, b] of [
    [2, 3],
    [0.3, 0.7],
  ] as const) {
    it(`beta(${a}, ${b}): mean a/(a+b), variance ab/((a+b)²(a+b+1))`, () => {
      const r = new Random(14);
      const xs = draws(N, () => r.beta(a, b));
      expect(xs.every((x) => x >= 0 && x <= 1)).toBe(true);
      const s = a + b;
      const variance = (a * b) / (s * s * (s + 1));
      const kurt = (6 * ((a - b) ** 2 * (s + 1) - a * b * (s + 2))) / (a * b * (s + 2) * (s + 3));
      expectMoments(sampleMoments(xs), a / s, variance, kurt, `beta(${a}, ${b})`);
    });
  }

  for (const alpha of [
    [1, 2, 3],
    [0.5, 0.2, 4],
  ]) {
    it(`dirichlet([${alpha}]): component means α_k/α₀, sums to 1`, () => {
      const r = new Random(15);
      const k = alpha.length;
      const a0 = alpha.reduce((x, y) => x + y, 0);
      const sums = new Float64Array(k);
      const out = new Float64Array(k);
      let maxSumError = 0;
      let returnedOut = true;
      for (let i = 0; i < N; i++) {
        const d = r.dirichlet(alpha, out);
        returnedOut &&= d === out;
        let t = 0;
        for (let j = 0; j < k; j++) {
          sums[j]! += d[j]!;
          t += d[j]!;
        }
        maxSumError = Math.max(maxSumError, Math.abs(t - 1));
      }
      expect(returnedOut).toBe(true);
      expect(maxSumError).toBeLessThan(1e-12);
      alpha.forEach((ak, j) => {
        const mean = ak / a0;
        const se = Math.sqrt((ak * (a0 - ak)) / (a0 * a0 * (a0 + 1)) / N);
        expect(Math.abs(sums[j]! / N - mean), `component ${j}`).toBeLessThanOrEqual(Z * se);
      });
    });
  }

  for (const weights of [
    [0.2, 0.5, 0.3],
    [0, 2, 0, 6, 0], // unnormalised, with zero-probability categories
  ]) {
    it(`categorical([${weights}]): frequencies p_k/Σp`, () => {
      const r = new Random(16);
      const total = weights.reduce((x, y) => x + y, 0);
      const counts = new Array<number>(weights.length).fill(0);
      for (let i = 0; i < N; i++) counts[r.categorical(weights)]!++;
      weights.forEach((w, k) => {
        const p = w / total;
        if (p === 0) {
          expect(counts[k], `category ${k} has probability 0`).toBe(0);
          return;
        }
        const se = Math.sqrt((p * (1 - p)) / N);
        expect(Math.abs(counts[k]! / N - p), `category ${k}`).toBeLessThanOrEqual(Z * se);
      });
    });
  }

  it("bernoulli(0.3): frequency 0.3; bernoulli(0) ≡ 0, bernoulli(1) ≡ 1", () => {
    const r = new Random(17);
    let ones = 0;
    for (let i = 0; i < N; i++) ones += r.bernoulli(0.3);
    expect(Math.abs(ones / N - 0.3)).toBeLessThanOrEqual(Z * Math.sqrt((0.3 * 0.7) / N));
    for (let i = 0; i < 1000; i++) {
      expect(r.bernoulli(0)).toBe(0);
      expect(r.bernoulli(1)).toBe(1);
    }
  });
});

describe("Random — determinism and edge cases", () => {
  it("same seed ⇒ same stream; different seeds ⇒ different streams", () => {
    const a = new Random(2024);
    const b = new Random(2024);
    const c = new Random(2025);
    const sa = take(100, () => a.nextUint32());
    expect(take(100, () => b.nextUint32())).toEqual(sa);
    expect(take(100, () => c.nextUint32())).not.toEqual(sa);
  });

  it("normals(out) fills in index order with the same draws as normal()", () => {
    const a = new Random(5);
    const b = new Random(5);
    const out = new Float64Array(7);
    expect(a.normals(out)).toBe(out);
    expect(Array.from(out)).toEqual(take(7, () => b.normal()));
    expect(a.nextUint32()).toBe(b.nextUint32()); // consumed the same amount
  });

  it("gamma rate defaults to 1", () => {
    const a = new Random(6);
    const b = new Random(6);
    expect(take(20, () => a.gamma(1.7))).toEqual(take(20, () => b.gamma(1.7, 1)));
  });

  it("tiny shapes never produce NaN in beta/dirichlet (underflow fallback to a vertex)", () => {
    const r = new Random(7);
    let vertices = 0;
    for (let i = 0; i < 10_000; i++) {
      const x = r.beta(1e-3, 1e-3);
      expect(x >= 0 && x <= 1).toBe(true);
      const d = r.dirichlet([1e-3, 2e-3, 3e-3]);
      const t = d[0]! + d[1]! + d[2]!;
      expect(Math.abs(t - 1)).toBeLessThan(1e-12);
      if (d.includes(1)) vertices++;
    }
    expect(vertices).toBeGreaterThan(0);
  });
});

describe("deriveSeed", () => {
  it("is deterministic and returns a uint32", () => {
    for (const [s, e, i] of [
      [0, "", 0],
      [2 ** 32 - 1, "ép", 2 ** 53 - 1],
    ] as const) {
      const v = deriveSeed(s, e, i);
      expect(deriveSeed(s, e, i)).toBe(v);
      expect(Number.isInteger(v) && v >= 0 && v <= 2 ** 32 - 1).toBe(true);
    }
  });

  it("no collisions among 100 000 decision indices of one episode", () => {
    const seen = new Set<number>();
    for (let i = 0; i < 100_000; i++) seen.add(deriveSeed(42, "episode-7f3a", i));
    expect(seen.size).toBeGreaterThanOrEqual(99_990);
  });

  it("differs across episodes, instance seeds and the high word of the index", () => {
    expect(deriveSeed(42, "a", 0)).not.toBe(deriveSeed(42, "b", 0));
    expect(deriveSeed(1, "a", 0)).not.toBe(deriveSeed(2, "a", 0));
    expect(deriveSeed(1, "a", 0)).not.toBe(deriveSeed(1, "a", 2 ** 32));
    expect(deriveSeed(1, "a", 1)).not.toBe(deriveSeed(1, "a", 2 ** 32 + 1));
    expect(deriveSeed(1, "é", 0)).not.toBe(deriveSeed(1, "e", 0));
    // episodes across many indices: streams of two episodes do not coincide
    const a = take(1000, (i) => deriveSeed(9, "a", i));
    const b = new Set(take(1000, (i) => deriveSeed(9, "b", i)));
    expect(a.filter((x) => b.has(x)).length).toBeLessThanOrEqual(2);
  });

  it("derived seeds give independent-looking generators", () => {
    const firsts = new Set(take(1000, (i) => new Random(deriveSeed(3, "ep", i)).nextUint32()));
    expect(firsts.size).toBeGreaterThanOrEqual(998);
  });
});

describe("parameter validation", () => {
  it("seeds must be uint32", () => {
    for (const bad of [-1, 1.5, 2 ** 32, Number.NaN, Infinity]) {
      expect(() => new Random(bad), String(bad)).toThrow(RangeError);
      expect(() => splitmix32(bad), String(bad)).toThrow(/seed/);
    }
    expect(() => new Random(2 ** 32 - 1)).not.toThrow();
  });

  it("gamma shape and rate must be positive and finite", () => {
    const r = new Random(1);
    for (const bad of [0, -1, Infinity, Number.NaN]) {
      expect(() => r.gamma(bad)).toThrow(RangeError);
      expect(() => r.gamma(bad)).toThrow(/shape/);
      expect(() => r.gamma(1, bad)).toThrow(/rate/);
    }
  });

  it("beta alpha and beta must be positive and finite", () => {
    const r = new Random(1);
    expect(() => r.beta(0, 1)).toThrow(/alpha/);
    expect(() => r.beta(1, -2)).toThrow(/beta/);
    expect(() => r.beta(Number.NaN, 1)).toThrow(RangeError);
    expect(() => r.beta(1, Infinity)).toThrow(RangeError);
  });

  it("dirichlet alpha must be non-empty and positive; out must match its length", () => {
    const r = new Random(1);
    expect(() => r.dirichlet([])).toThrow(/alpha/);
    expect(() => r.dirichlet([1, 0])).toThrow(/alpha\[1\]/);
    expect(() => r.dirichlet([1, Number.NaN])).toThrow(RangeError);
    expect(() => r.dirichlet([1, 2], new Float64Array(3))).toThrow(/out/);
  });

  it("categorical probabilities must be non-negative, finite and not all zero", () => {
    const r = new Random(1);
    expect(() => r.categorical([])).toThrow(/probabilities/);
    expect(() => r.categorical([-0.1, 1])).toThrow(/probabilities\[0\]/);
    expect(() => r.categorical([1, Infinity])).toThrow(/probabilities\[1\]/);
    expect(() => r.categorical([0, 0])).toThrow(/probabilities/);
  });

  it("bernoulli p must be in [0, 1]", () => {
    const r = new Random(1);
    for (const bad of [-0.1, 1.1, Number.NaN]) expect(() => r.bernoulli(bad)).toThrow(/\bp\b/);
  });

  it("deriveSeed validates its arguments", () => {
    expect(() => deriveSeed(-1, "a", 0)).toThrow(/instanceSeed/);
    expect(() => deriveSeed(2 ** 32, "a", 0)).toThrow(/instanceSeed/);
    expect(() => deriveSeed(0, "a", -1)).toThrow(/decisionIndex/);
    expect(() => deriveSeed(0, "a", 1.5)).toThrow(/decisionIndex/);
    expect(() => deriveSeed(0, "a", 2 ** 53)).toThrow(/decisionIndex/);
    expect(() => deriveSeed(0, 7 as unknown as string, 0)).toThrow(/episode/);
  });
});
