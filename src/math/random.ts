/**
 * Seeded random numbers for Posterior: generator, samplers and the seed-derivation rule.
 *
 * Everything here is bit-for-bit reproducible across machines; an independent Python
 * implementation (test/math/fixtures/random_streams.py) produces the reference streams the
 * tests compare against. All integer arithmetic is mod 2³² on unsigned values; `·` below is the
 * 32-bit product (`Math.imul`), `^` xor, `>>>` logical shift right.
 *
 * splitmix32(seed) — a stream of uint32 outputs; `s` starts at `seed`:
 *     s = s + 0x9E3779B9; z = s
 *     z = (z ^ z >>> 16) · 0x21F0AAAD
 *     z = (z ^ z >>> 15) · 0x735A2D97
 *     output z ^ z >>> 15
 *
 * Generator: xoshiro128** (Blackman & Vigna). State s0..s3 = the first four outputs of
 * splitmix32(seed). (An all-zero state cannot arise — splitmix32 is a bijection applied to four
 * distinct inputs — but it is guarded anyway by setting s0 = 0x9E3779B9.) Each step:
 *     result = rotl(s1 · 5, 7) · 9
 *     t = s1 << 9; s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3; s2 ^= t; s3 = rotl(s3, 11)
 *
 * Samplers (every draw consumes outputs in exactly this order; no caching between calls):
 * - nextDouble ∈ [0,1): with two successive outputs a, b: ((a >>> 5)·2²⁶ + (b >>> 6)) / 2⁵³.
 * - normal: Box–Muller, cosine branch only: u1, u2 = nextDouble(), nextDouble();
 *     sqrt(−2 ln(1 − u1)) · cos(2π · u2)           (evaluated as (2·π)·u2).
 * - gamma(a, rate b), a ≥ 1: Marsaglia–Tsang. d = a − 1/3, c = 1/sqrt(9d). Loop: draw normal x,
 *     v = (1 + c·x)³ (computed w·w·w), retry the normal while v ≤ 0; draw u = nextDouble();
 *     accept if u < 1 − 0.0331·(x²·x²), else accept if ln u < 0.5·x² + d·(1 − v + ln v)
 *     (ln 0 = −∞); on acceptance return d·v / b, otherwise start the loop again.
 *   a < 1: G = gamma(a + 1, 1) first, then u = nextDouble(); return G · (1 − u)^(1/a) / b.
 * - beta(α, β): X = gamma(α, 1) then Y = gamma(β, 1); X / (X + Y).
 * - dirichlet(α): g_k = gamma(α_k, 1) for k = 0..K−1 in order; S = Σ g_k summed in index order;
 *     result g_k / S.
 *   Degenerate case (beta, dirichlet): if every gamma underflowed to 0 (only possible for very
 *   small shapes), the sum is 0; instead of NaN the result is the shapes→0 limit, a vertex: one
 *   more draw, categorical(α) (beta: 1 if nextDouble()·(α+β) < α, else 0), mass 1 on that index.
 *   This extra draw happens only in that case, so ordinary streams are unaffected.
 * - categorical(p): T = Σ p_k in index order; u = nextDouble(); the smallest k whose running sum
 *     (index order) is > u·T. If rounding lets no k qualify, the last k with p_k > 0.
 * - bernoulli(p): 1 if nextDouble() < p, else 0.
 *
 * Seed derivation — the seed of stochastic decision number `decisionIndex` (a non-negative safe
 * integer) in episode `episode` of an instance seeded `instanceSeed` (uint32):
 *     h  = FNV-1a 32-bit of the UTF-8 bytes of `episode`
 *          (offset basis 0x811C9DC5; per byte: h = (h ^ byte) · 0x01000193;
 *           lone UTF-16 surrogates are encoded as U+FFFD, as TextEncoder does)
 *     lo = decisionIndex mod 2³²,  hi = floor(decisionIndex / 2³²)
 *     deriveSeed = first output of splitmix32(instanceSeed ^ h ^ (lo · 0x85EBCA6B) ^ (hi · 0xC2B2AE35))
 * For fixed (instanceSeed, episode, hi) the map lo ↦ seed is a bijection (odd multiplier, then
 * splitmix32's bijective finaliser), so distinct decision indices below 2³² never collide.
 */

const UINT32_MAX = 0xffffffff;
const GOLDEN_GAMMA = 0x9e3779b9;
const TWO_POW_26 = 67108864;
const TWO_POW_32 = 4294967296;
const TWO_POW_53 = 9007199254740992;

function checkUint32(value: number, name: string): void {
  if (!Number.isInteger(value) || value < 0 || value > UINT32_MAX) {
    throw new RangeError(`${name} must be an integer in [0, 2^32 - 1], got ${value}`);
  }
}

function checkPositive(value: number, name: string): void {
  if (typeof value !== "number" || !Number.isFinite(value) || !(value > 0)) {
    throw new RangeError(`${name} must be positive and finite, got ${value}`);
  }
}

/** The splitmix32 step as a pure function of the (already incremented) state. */
function splitmix32Mix(state: number): number {
  let z = state;
  z = Math.imul(z ^ (z >>> 16), 0x21f0aaad);
  z = Math.imul(z ^ (z >>> 15), 0x735a2d97);
  return (z ^ (z >>> 15)) >>> 0;
}

/** Successive splitmix32 outputs (uint32) for a uint32 seed. */
export function splitmix32(seed: number): () => number {
  checkUint32(seed, "seed");
  let state = seed;
  return () => {
    state = (state + GOLDEN_GAMMA) >>> 0;
    return splitmix32Mix(state);
  };
}

function fnv1a32(bytes: Uint8Array): number {
  let h = 0x811c9dc5;
  for (const byte of bytes) h = Math.imul(h ^ byte, 0x01000193);
  return h >>> 0;
}

const utf8 = new TextEncoder();

/** The uint32 seed of stochastic decision `decisionIndex` in `episode` of an instance seeded `instanceSeed` (rule: see top of file). */
export function deriveSeed(instanceSeed: number, episode: string, decisionIndex: number): number {
  checkUint32(instanceSeed, "instanceSeed");
  if (typeof episode !== "string") throw new RangeError("episode must be a string");
  if (!Number.isSafeInteger(decisionIndex) || decisionIndex < 0) {
    throw new RangeError(`decisionIndex must be a non-negative safe integer, got ${decisionIndex}`);
  }
  const h = fnv1a32(utf8.encode(episode));
  const lo = decisionIndex >>> 0;
  const hi = Math.floor(decisionIndex / TWO_POW_32) >>> 0;
  const state = (instanceSeed ^ h ^ Math.imul(lo, 0x85ebca6b) ^ Math.imul(hi, 0xc2b2ae35)) >>> 0;
  return splitmix32(state)();
}

/** xoshiro128** generator seeded through splitmix32, with the samplers Posterior needs. */
export class Random {
  #s0: number;
  #s1: number;
  #s2: number;
  #s3: number;

  constructor(seed: number) {
    const next = splitmix32(seed); // validates seed
    this.#s0 = next();
    this.#s1 = next();
    this.#s2 = next();
    this.#s3 = next();
    if ((this.#s0 | this.#s1 | this.#s2 | this.#s3) === 0) this.#s0 = GOLDEN_GAMMA;
  }

  nextUint32(): number {
    const s1 = this.#s1;
    const m = Math.imul(s1, 5);
    const result = Math.imul((m << 7) | (m >>> 25), 9) >>> 0;
    const t = s1 << 9;
    this.#s2 ^= this.#s0;
    this.#s3 ^= this.#s1;
    this.#s1 ^= this.#s2;
    this.#s0 ^= this.#s3;
    this.#s2 ^= t;
    this.#s3 = (this.#s3 << 11) | (this.#s3 >>> 21);
    return result;
  }

  /** Uniform double in [0, 1) with 53 random bits (two outputs). */
  nextDouble(): number {
    const a = this.nextUint32() >>> 5;
    const b = this.nextUint32() >>> 6;
    return (a * TWO_POW_26 + b) / TWO_POW_53;
  }

  /** Standard normal (Box–Muller, cosine branch, two doubles). */
  normal(): number {
    const u1 = this.nextDouble();
    const u2 = this.nextDouble();
    return Math.sqrt(-2 * Math.log(1 - u1)) * Math.cos(2 * Math.PI * u2);
  }

  /** Gamma with the given shape and RATE (mean shape/rate). */
  gamma(shape: number, rate = 1): number {
    checkPositive(shape, "shape");
    checkPositive(rate, "rate");
    return this.#gamma(shape, rate);
  }

  #gamma(shape: number, rate: number): number {
    if (shape < 1) {
      const g = this.#gamma(shape + 1, 1);
      const u = this.nextDouble();
      return (g * Math.pow(1 - u, 1 / shape)) / rate;
    }
    const d = shape - 1 / 3;
    const c = 1 / Math.sqrt(9 * d);
    for (;;) {
      let x: number;
      let v: number;
      do {
        x = this.normal();
        const w = 1 + c * x;
        v = w * w * w;
      } while (v <= 0);
      const u = this.nextDouble();
      const x2 = x * x;
      if (u < 1 - 0.0331 * (x2 * x2)) return (d * v) / rate;
      if (Math.log(u) < 0.5 * x2 + d * (1 - v + Math.log(v))) return (d * v) / rate;
    }
  }

  beta(alpha: number, beta: number): number {
    checkPositive(alpha, "alpha");
    checkPositive(beta, "beta");
    const x = this.#gamma(alpha, 1);
    const y = this.#gamma(beta, 1);
    const total = x + y;
    if (total === 0) return this.nextDouble() * (alpha + beta) < alpha ? 1 : 0;
    return x / total;
  }

  /** Dirichlet draw; writes into `out` (length K) when given. */
  dirichlet(alpha: ArrayLike<number>, out?: Float64Array): Float64Array {
    const k = alpha.length;
    if (k === 0) throw new RangeError("alpha must not be empty");
    for (let i = 0; i < k; i++) checkPositive(alpha[i]!, `alpha[${i}]`);
    if (out !== undefined && out.length !== k) {
      throw new RangeError(`out must have length ${k} (the length of alpha), got ${out.length}`);
    }
    const result = out ?? new Float64Array(k);
    let total = 0;
    for (let i = 0; i < k; i++) {
      const g = this.#gamma(alpha[i]!, 1);
      result[i] = g;
      total += g;
    }
    if (total === 0) {
      const vertex = this.#categorical(alpha);
      result.fill(0);
      result[vertex] = 1;
      return result;
    }
    for (let i = 0; i < k; i++) result[i] = result[i]! / total;
    return result;
  }

  /** Index in 0..K−1 drawn with probability proportional to `probabilities` (need not be normalised). */
  categorical(probabilities: ArrayLike<number>): number {
    const k = probabilities.length;
    if (k === 0) throw new RangeError("probabilities must not be empty");
    let total = 0;
    for (let i = 0; i < k; i++) {
      const p = probabilities[i]!;
      if (typeof p !== "number" || !Number.isFinite(p) || p < 0) {
        throw new RangeError(`probabilities[${i}] must be non-negative and finite, got ${p}`);
      }
      total += p;
    }
    if (!(total > 0) || !Number.isFinite(total)) {
      throw new RangeError(`probabilities must have a positive finite sum, got ${total}`);
    }
    return this.#categorical(probabilities);
  }

  #categorical(probabilities: ArrayLike<number>): number {
    const k = probabilities.length;
    let total = 0;
    for (let i = 0; i < k; i++) total += probabilities[i]!;
    const target = this.nextDouble() * total;
    let cumulative = 0;
    let lastPositive = -1;
    for (let i = 0; i < k; i++) {
      const p = probabilities[i]!;
      cumulative += p;
      if (p > 0) lastPositive = i;
      if (cumulative > target) return i;
    }
    return lastPositive;
  }

  bernoulli(p: number): 0 | 1 {
    if (typeof p !== "number" || !(p >= 0 && p <= 1)) {
      throw new RangeError(`p must be in [0, 1], got ${p}`);
    }
    return this.nextDouble() < p ? 1 : 0;
  }

  /** Fills `out` with standard normals in index order. */
  normals(out: Float64Array): Float64Array {
    for (let i = 0; i < out.length; i++) out[i] = this.normal();
    return out;
  }
}
