// Small dense linear algebra for the models' Gaussian bookkeeping (dimensions 1..100, mostly ≤ 20).
// Matrices are row-major Float64Array with dimensions passed explicitly, so the hot loops stay
// monomorphic and callers can keep buffers alive across calls through the optional `out`.
// An `out` must not share memory with an input unless the function's comment says it may.

/** Thrown when a matrix stays non-positive-definite even after the largest jitter. */
export class NotPositiveDefiniteError extends Error {
  override name = "NotPositiveDefiniteError";
}

export function identity(n: number): Float64Array {
  const out = new Float64Array(n * n);
  for (let i = 0; i < n; i++) out[i * n + i] = 1;
  return out;
}

/**
 * Lower-triangular L with A = L Lᵀ (upper part of the result set to zero), or null when A is not
 * numerically positive definite. Only the lower triangle of `a` is read, so A need not be exactly
 * symmetric. `out` may be `a` (factorisation in place); `a` is then clobbered even when null is returned.
 */
export function cholesky(a: Float64Array, n: number, out: Float64Array = new Float64Array(n * n)): Float64Array | null {
  // The pivot A_jj − Σ L_jk² carries a rounding error of about 2·n·ε·A_jj; a pivot below that is
  // indistinguishable from zero and would give a factor dominated by noise. Being relative to the
  // row's own diagonal keeps the test invariant under diagonal rescaling of A.
  const pivotTolerance = 2 * n * Number.EPSILON;
  for (let i = 0; i < n; i++) {
    const rowI = i * n;
    for (let j = 0; j < i; j++) {
      const rowJ = j * n;
      let sum = a[rowI + j]!;
      for (let k = 0; k < j; k++) sum -= out[rowI + k]! * out[rowJ + k]!;
      out[rowI + j] = sum / out[rowJ + j]!;
    }
    const diagonal = a[rowI + i]!;
    let pivot = diagonal;
    for (let k = 0; k < i; k++) {
      const lik = out[rowI + k]!;
      pivot -= lik * lik;
    }
    // Negated comparison so that NaN pivots are rejected too.
    if (!(pivot > pivotTolerance * diagonal)) return null;
    out[rowI + i] = Math.sqrt(pivot);
    for (let j = i + 1; j < n; j++) out[rowI + j] = 0;
  }
  return out;
}

/**
 * Cholesky factor of A, or of A + εI when A is singular or slightly indefinite from rounding:
 * ε = 1e-12 · mean(diag A) · 10^k for the first k in 0..6 that works (0 when A itself factorises).
 */
export function choleskyWithJitter(a: Float64Array, n: number): { l: Float64Array; jitter: number } {
  const l = new Float64Array(n * n);
  if (cholesky(a, n, l) !== null) return { l, jitter: 0 };
  let diagonalSum = 0;
  for (let i = 0; i < n; i++) diagonalSum += a[i * n + i]!;
  const baseJitter = 1e-12 * (diagonalSum / n);
  // A non-positive mean diagonal cannot belong to a positive definite matrix, and no jitter scaled by it helps.
  if (baseJitter > 0 && Number.isFinite(baseJitter)) {
    const shifted = Float64Array.from(a);
    for (let k = 0; k <= 6; k++) {
      const jitter = baseJitter * 10 ** k;
      for (let i = 0; i < n; i++) shifted[i * n + i] = a[i * n + i]! + jitter;
      if (cholesky(shifted, n, l) !== null) return { l, jitter };
    }
  }
  throw new NotPositiveDefiniteError("matrix is not positive definite");
}

/** x with L x = b by forward substitution. `out` may be `b`. */
export function solveLower(l: Float64Array, n: number, b: Float64Array, out: Float64Array = new Float64Array(n)): Float64Array {
  for (let i = 0; i < n; i++) {
    const rowI = i * n;
    let sum = b[i]!;
    for (let k = 0; k < i; k++) sum -= l[rowI + k]! * out[k]!;
    out[i] = sum / l[rowI + i]!;
  }
  return out;
}

/** x with Lᵀ x = b by back substitution, reading L column-wise instead of forming Lᵀ. `out` may be `b`. */
export function solveLowerTransposed(
  l: Float64Array,
  n: number,
  b: Float64Array,
  out: Float64Array = new Float64Array(n),
): Float64Array {
  for (let i = n - 1; i >= 0; i--) {
    let sum = b[i]!;
    for (let k = i + 1; k < n; k++) sum -= l[k * n + i]! * out[k]!;
    out[i] = sum / l[i * n + i]!;
  }
  return out;
}

/** x with A x = b, given the Cholesky factor L of A. `out` may be `b`. */
export function choleskySolve(l: Float64Array, n: number, b: Float64Array, out: Float64Array = new Float64Array(n)): Float64Array {
  solveLower(l, n, b, out);
  return solveLowerTransposed(l, n, out, out);
}

/**
 * A⁻¹ = L⁻ᵀ L⁻¹ from the Cholesky factor L of A. Only the upper triangle is computed and then
 * mirrored, so the result is exactly symmetric. `out` may be `l` (inversion in place).
 */
export function choleskyInverse(l: Float64Array, n: number, out: Float64Array = new Float64Array(n * n)): Float64Array {
  // W = L⁻¹ into the lower triangle of out, row by row. Within a row, columns go left to right and
  // the diagonal last, so every L entry is read before the in-place case overwrites it.
  for (let i = 0; i < n; i++) {
    const rowI = i * n;
    const inverseDiagonal = 1 / l[rowI + i]!;
    for (let j = 0; j < i; j++) {
      let sum = 0;
      for (let k = j; k < i; k++) sum += l[rowI + k]! * out[k * n + j]!;
      out[rowI + j] = -sum * inverseDiagonal;
    }
    out[rowI + i] = inverseDiagonal;
  }
  // (WᵀW)_ij = Σ_{k ≥ max(i,j)} W_ki W_kj. Entry (i, j > i) goes to the upper triangle, which holds
  // no part of W; W_ii is last needed by row i's diagonal, so overwriting it there is safe.
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      let sum = 0;
      for (let k = j; k < n; k++) sum += out[k * n + i]! * out[k * n + j]!;
      out[i * n + j] = sum;
    }
    let sum = 0;
    for (let k = i; k < n; k++) {
      const w = out[k * n + i]!;
      sum += w * w;
    }
    out[i * n + i] = sum;
  }
  for (let i = 1; i < n; i++) {
    for (let j = 0; j < i; j++) out[i * n + j] = out[j * n + i]!;
  }
  return out;
}

/** Inverse of a symmetric positive definite A; when jitter was needed, this is (A + εI)⁻¹. */
export function spdInverse(a: Float64Array, n: number): Float64Array {
  const { l } = choleskyWithJitter(a, n);
  return choleskyInverse(l, n, l);
}

/** log |A| = 2 Σ ln L_ii, summing logarithms so that large n cannot overflow the determinant. */
export function logDetFromCholesky(l: Float64Array, n: number): number {
  let sum = 0;
  for (let i = 0; i < n; i++) sum += Math.log(l[i * n + i]!);
  return 2 * sum;
}

/** (m×k)(k×n). */
export function matMul(
  a: Float64Array,
  b: Float64Array,
  m: number,
  k: number,
  n: number,
  out: Float64Array = new Float64Array(m * n),
): Float64Array {
  // Four output columns per pass over row i of a: each a_ip load feeds four independent
  // accumulators, which runs about 1.5–2× faster than one dot product per entry at n ≥ 6.
  // Every entry still sums its k products in order p = 0..k−1.
  for (let i = 0; i < m; i++) {
    const rowA = i * k;
    const rowOut = i * n;
    let j = 0;
    for (; j + 3 < n; j += 4) {
      let sum0 = 0;
      let sum1 = 0;
      let sum2 = 0;
      let sum3 = 0;
      for (let p = 0, indexB = j; p < k; p++, indexB += n) {
        const aip = a[rowA + p]!;
        sum0 += aip * b[indexB]!;
        sum1 += aip * b[indexB + 1]!;
        sum2 += aip * b[indexB + 2]!;
        sum3 += aip * b[indexB + 3]!;
      }
      out[rowOut + j] = sum0;
      out[rowOut + j + 1] = sum1;
      out[rowOut + j + 2] = sum2;
      out[rowOut + j + 3] = sum3;
    }
    for (; j < n; j++) {
      let sum = 0;
      for (let p = 0, indexB = j; p < k; p++, indexB += n) sum += a[rowA + p]! * b[indexB]!;
      out[rowOut + j] = sum;
    }
  }
  return out;
}

/** (m×n) x. */
export function matVec(a: Float64Array, x: Float64Array, m: number, n: number, out: Float64Array = new Float64Array(m)): Float64Array {
  for (let i = 0; i < m; i++) {
    const rowI = i * n;
    let sum = 0;
    for (let j = 0; j < n; j++) sum += a[rowI + j]! * x[j]!;
    out[i] = sum;
  }
  return out;
}

/** The n×m transpose of the m×n matrix a. */
export function transpose(a: Float64Array, m: number, n: number, out: Float64Array = new Float64Array(m * n)): Float64Array {
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) out[j * m + i] = a[i * n + j]!;
  }
  return out;
}

/** The values as a plain array. A loop: spreading a typed array goes through its iterator, about 10× slower for the short ones here. */
export function toArray(values: Float64Array): number[] {
  const out = new Array<number>(values.length);
  for (let i = 0; i < values.length; i++) out[i] = values[i]!;
  return out;
}

export function dot(x: Float64Array, y: Float64Array): number {
  // The only function without an explicit dimension: a length mismatch would otherwise read past y as NaN.
  if (x.length !== y.length) throw new RangeError(`dot: lengths differ (${x.length} vs ${y.length})`);
  let sum = 0;
  for (let i = 0; i < x.length; i++) sum += x[i]! * y[i]!;
  return sum;
}

/** xᵀ A x over the full matrix. */
export function quadForm(a: Float64Array, x: Float64Array, n: number): number {
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const rowI = i * n;
    let rowSum = 0;
    for (let j = 0; j < n; j++) rowSum += a[rowI + j]! * x[j]!;
    sum += x[i]! * rowSum;
  }
  return sum;
}

/** A += scale · x xᵀ in place; an exactly symmetric A stays exactly symmetric. */
export function addScaledOuter(a: Float64Array, x: Float64Array, scale: number, n: number): void {
  // (scale·x_i)·x_j and (scale·x_j)·x_i can round differently, so each pair is computed once.
  for (let i = 0; i < n; i++) {
    const scaledXi = scale * x[i]!;
    a[i * n + i] = a[i * n + i]! + scaledXi * x[i]!;
    for (let j = i + 1; j < n; j++) {
      const term = scaledXi * x[j]!;
      a[i * n + j] = a[i * n + j]! + term;
      a[j * n + i] = a[j * n + i]! + term;
    }
  }
}

/** A ← (A + Aᵀ)/2 in place, removing the asymmetry that rounding leaves in covariance updates. */
export function symmetrize(a: Float64Array, n: number): void {
  for (let i = 1; i < n; i++) {
    for (let j = 0; j < i; j++) {
      const mean = 0.5 * (a[i * n + j]! + a[j * n + i]!);
      a[i * n + j] = mean;
      a[j * n + i] = mean;
    }
  }
}

/**
 * L z reading only the lower triangle of l (e.g. turning standard normals z into draws with
 * covariance L Lᵀ). Rows go bottom-up, each needing only z_0..z_i, so `out` may be `z`.
 */
export function lowerTimesVector(l: Float64Array, n: number, z: Float64Array, out: Float64Array = new Float64Array(n)): Float64Array {
  for (let i = n - 1; i >= 0; i--) {
    const rowI = i * n;
    let sum = 0;
    for (let k = 0; k <= i; k++) sum += l[rowI + k]! * z[k]!;
    out[i] = sum;
  }
  return out;
}
