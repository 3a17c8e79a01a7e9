import { CholeskyDecomposition, EigenvalueDecomposition, Matrix, determinant, inverse, solve } from "ml-matrix";
import { describe, expect, it } from "vitest";
import { Random } from "../../src/math/random.ts";
import {
  NotPositiveDefiniteError,
  addScaledOuter,
  cholesky,
  choleskyInverse,
  choleskySolve,
  choleskyWithJitter,
  dot,
  identity,
  logDetFromCholesky,
  lowerTimesVector,
  matMul,
  matVec,
  quadForm,
  solveLower,
  solveLowerTransposed,
  spdInverse,
  symmetrize,
  toArray,
  transpose,
} from "../../src/math/linalg.ts";

// A = B Bᵀ + n·I has eigenvalues in about [n, 5n], so a condition number ≤ ~6 at every size:
// results should agree with the oracle to a few hundred ulps, far inside this bound.
const TOLERANCE = 1e-12;
const SIZES = [1, 2, 3, 5, 10, 25, 50, 100];

const randomArray = (length: number, seed: number) => new Random(seed).normals(new Float64Array(length));

const toMatrix = (a: Float64Array, rows: number, columns: number) => Matrix.from1DArray(rows, columns, a);
const fromMatrix = (m: Matrix) => Float64Array.from(m.to1DArray());

function randomSpd(n: number, seed: number): Float64Array {
  const b = toMatrix(randomArray(n * n, seed), n, n);
  return fromMatrix(b.mmul(b.transpose()).add(Matrix.eye(n, n, n)));
}

/** max |actual − expected| relative to max |expected| (norm-wise, as backward-stable algorithms guarantee). */
function relativeError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  if (actual.length !== expected.length) return Infinity;
  let maxDifference = 0;
  let maxExpected = 0;
  for (let i = 0; i < expected.length; i++) {
    const difference = Math.abs(actual[i]! - expected[i]!);
    // NaN must fail the comparison rather than vanish in Math.max.
    maxDifference = Number.isNaN(difference) ? Infinity : Math.max(maxDifference, difference);
    maxExpected = Math.max(maxExpected, Math.abs(expected[i]!));
  }
  return maxDifference / Math.max(maxExpected, Number.MIN_VALUE);
}

function expectExactlySymmetric(a: Float64Array, n: number) {
  for (let i = 0; i < n; i++) for (let j = 0; j < i; j++) expect(a[i * n + j]).toBe(a[j * n + i]);
}

describe("test helpers", () => {
  it("detect a one-entry perturbation far below the default expect precision", () => {
    const a = randomSpd(10, 99);
    const perturbed = Float64Array.from(a);
    perturbed[37]! *= 1 + 1e-10;
    expect(relativeError(perturbed, a)).toBeGreaterThan(TOLERANCE);
    perturbed[37] = Number.NaN;
    expect(relativeError(perturbed, a)).toBe(Infinity);
  });
});

describe("2×2 closed forms", () => {
  // A = [[4, 2], [2, 3]]: L = [[2, 0], [1, √2]], |A| = 8, A⁻¹ = [[3, −2], [−2, 4]] / 8.
  const a = Float64Array.of(4, 2, 2, 3);

  it("factorises, inverts and takes the log-determinant", () => {
    const l = cholesky(a, 2)!;
    expect(Array.from(l)).toEqual([2, 0, 1, Math.SQRT2]);
    expect(logDetFromCholesky(l, 2)).toBeCloseTo(Math.log(8), 15);
    expect(relativeError(choleskyInverse(l, 2), [3 / 8, -2 / 8, -2 / 8, 4 / 8])).toBeLessThan(1e-15);
    expect(relativeError(spdInverse(a, 2), [3 / 8, -2 / 8, -2 / 8, 4 / 8])).toBeLessThan(1e-15);
  });

  it("solves triangular and full systems", () => {
    const l = cholesky(a, 2)!;
    const b = Float64Array.of(1, 2);
    // L x = b: x0 = 1/2, x1 = (2 − 1/2)/√2.
    expect(relativeError(solveLower(l, 2, b), [0.5, 1.5 / Math.SQRT2])).toBeLessThan(1e-15);
    // Lᵀ x = b: x1 = 2/√2, x0 = (1 − x1)/2.
    expect(relativeError(solveLowerTransposed(l, 2, b), [(1 - Math.SQRT2) / 2, Math.SQRT2])).toBeLessThan(1e-15);
    expect(relativeError(choleskySolve(l, 2, b), [-1 / 8, 6 / 8])).toBeLessThan(1e-15);
    expect(relativeError(lowerTimesVector(l, 2, b), [2, 1 + 2 * Math.SQRT2])).toBeLessThan(1e-15);
  });

  it("multiplies, transposes and forms products", () => {
    expect(Array.from(matMul(Float64Array.of(1, 2, 3, 4), Float64Array.of(5, 6, 7, 8), 2, 2, 2))).toEqual([19, 22, 43, 50]);
    // (2×3)(3×1) and the 3×2 transpose.
    const rect = Float64Array.of(1, 2, 3, 4, 5, 6);
    expect(Array.from(matMul(rect, Float64Array.of(1, 0, -1), 2, 3, 1))).toEqual([-2, -2]);
    expect(Array.from(matVec(rect, Float64Array.of(1, 1, 1), 2, 3))).toEqual([6, 15]);
    expect(Array.from(transpose(rect, 2, 3))).toEqual([1, 4, 2, 5, 3, 6]);
    expect(quadForm(a, Float64Array.of(1, -1), 2)).toBe(3);
    expect(dot(Float64Array.of(1, 2, 3), Float64Array.of(4, -5, 6))).toBe(12);
    expect(() => dot(Float64Array.of(1, 2), Float64Array.of(1))).toThrow(RangeError);
    const updated = Float64Array.from(a);
    addScaledOuter(updated, Float64Array.of(1, 2), 0.5, 2);
    expect(Array.from(updated)).toEqual([4.5, 3, 3, 5]);
    const lopsided = Float64Array.of(1, 2, 4, 3);
    symmetrize(lopsided, 2);
    expect(Array.from(lopsided)).toEqual([1, 3, 3, 3]);
    expect(Array.from(identity(3))).toEqual([1, 0, 0, 0, 1, 0, 0, 0, 1]);
  });
});

describe.each(SIZES)("n = %i against ml-matrix", (n) => {
  const a = randomSpd(n, 1000 + n);
  const aMatrix = toMatrix(a, n, n);
  const b = randomArray(n, 2000 + n);

  it("cholesky reconstructs A and matches ml-matrix's lower factor", () => {
    const l = cholesky(a, n)!;
    expect(l).not.toBeNull();
    for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) expect(l[i * n + j]).toBe(0);
    const lMatrix = toMatrix(l, n, n);
    expect(relativeError(fromMatrix(lMatrix.mmul(lMatrix.transpose())), a)).toBeLessThan(TOLERANCE);
    const oracle = new CholeskyDecomposition(aMatrix);
    expect(oracle.isPositiveDefinite()).toBe(true);
    expect(relativeError(l, fromMatrix(oracle.lowerTriangularMatrix))).toBeLessThan(TOLERANCE);
    const { l: jittered, jitter } = choleskyWithJitter(a, n);
    expect(jitter).toBe(0);
    expect(jittered).toEqual(l);
  });

  it("solves L x = b, Lᵀ x = b and A x = b", () => {
    const l = cholesky(a, n)!;
    const lMatrix = toMatrix(l, n, n);
    const bColumn = Matrix.columnVector(b);
    const cases: [Float64Array, Matrix][] = [
      [solveLower(l, n, b), lMatrix],
      [solveLowerTransposed(l, n, b), lMatrix.transpose()],
      [choleskySolve(l, n, b), aMatrix],
    ];
    for (const [x, system] of cases) {
      expect(relativeError(fromMatrix(system.mmul(Matrix.columnVector(x))), b)).toBeLessThan(TOLERANCE);
      expect(relativeError(x, fromMatrix(solve(system, bColumn)))).toBeLessThan(TOLERANCE);
    }
    const choleskyOracle = new CholeskyDecomposition(aMatrix).solve(bColumn);
    expect(relativeError(choleskySolve(l, n, b), fromMatrix(choleskyOracle))).toBeLessThan(TOLERANCE);
  });

  it("inverts A with an exactly symmetric result", () => {
    const oracle = fromMatrix(inverse(aMatrix));
    for (const aInverse of [choleskyInverse(cholesky(a, n)!, n), spdInverse(a, n)]) {
      expectExactlySymmetric(aInverse, n);
      expect(relativeError(fromMatrix(aMatrix.mmul(toMatrix(aInverse, n, n))), identity(n))).toBeLessThan(TOLERANCE);
      expect(relativeError(aInverse, oracle)).toBeLessThan(TOLERANCE);
    }
  });

  it("takes the log-determinant", () => {
    const logDet = logDetFromCholesky(cholesky(a, n)!, n);
    const eigenvalues = new EigenvalueDecomposition(aMatrix, { assumeSymmetric: true }).realEigenvalues;
    const eigenLogDet = eigenvalues.reduce((sum, lambda) => sum + Math.log(lambda), 0);
    expect(Math.abs(logDet - eigenLogDet)).toBeLessThan(TOLERANCE * Math.max(1, Math.abs(eigenLogDet)));
    if (n <= 10) {
      const direct = Math.log(determinant(aMatrix));
      expect(Math.abs(logDet - direct)).toBeLessThan(TOLERANCE * Math.max(1, Math.abs(direct)));
    }
  });

  it("multiplies, transposes and forms products on rectangular shapes", () => {
    const [rows, inner, columns] = [n, n + 2, n + 1];
    const left = randomArray(rows * inner, 3000 + n);
    const right = randomArray(inner * columns, 4000 + n);
    const leftMatrix = toMatrix(left, rows, inner);
    const product = matMul(left, right, rows, inner, columns);
    expect(product).toHaveLength(rows * columns);
    expect(relativeError(product, fromMatrix(leftMatrix.mmul(toMatrix(right, inner, columns))))).toBeLessThan(TOLERANCE);
    const x = randomArray(inner, 5000 + n);
    expect(relativeError(matVec(left, x, rows, inner), fromMatrix(leftMatrix.mmul(Matrix.columnVector(x))))).toBeLessThan(TOLERANCE);
    expect(transpose(left, rows, inner)).toEqual(fromMatrix(leftMatrix.transpose()));

    const y = randomArray(n, 6000 + n);
    const yColumn = Matrix.columnVector(y);
    const expectedQuad = yColumn.transpose().mmul(aMatrix).mmul(yColumn).get(0, 0);
    expect(Math.abs(quadForm(a, y, n) - expectedQuad)).toBeLessThan(TOLERANCE * Math.abs(expectedQuad));
    const expectedDot = yColumn.transpose().mmul(Matrix.columnVector(b)).get(0, 0);
    expect(Math.abs(dot(y, b) - expectedDot)).toBeLessThan(TOLERANCE * Math.max(1, Math.abs(expectedDot)));
  });

  it("updates in place: addScaledOuter keeps exact symmetry, symmetrize averages", () => {
    const y = randomArray(n, 7000 + n);
    const updated = Float64Array.from(a);
    addScaledOuter(updated, y, -0.37, n);
    const yColumn = Matrix.columnVector(y);
    expect(relativeError(updated, fromMatrix(aMatrix.add(yColumn.mmul(yColumn.transpose()).mul(-0.37))))).toBeLessThan(TOLERANCE);
    expectExactlySymmetric(updated, n);

    const lopsided = randomArray(n * n, 8000 + n);
    const lopsidedMatrix = toMatrix(lopsided, n, n);
    symmetrize(lopsided, n);
    expect(relativeError(lopsided, fromMatrix(lopsidedMatrix.add(lopsidedMatrix.transpose()).mul(0.5)))).toBeLessThan(TOLERANCE);
    expectExactlySymmetric(lopsided, n);
  });

  it("lowerTimesVector reads only the lower triangle", () => {
    const l = cholesky(a, n)!;
    const expected = fromMatrix(toMatrix(l, n, n).mmul(Matrix.columnVector(b)));
    const poisoned = Float64Array.from(l);
    for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) poisoned[i * n + j] = Number.NaN;
    expect(relativeError(lowerTimesVector(poisoned, n, b), expected)).toBeLessThan(TOLERANCE);
  });
});

describe("jitter and rejection", () => {
  it("factorises a singular PSD matrix x xᵀ after adding the smallest jitter", () => {
    const x = Float64Array.of(1, 2, 3);
    const a = new Float64Array(9);
    addScaledOuter(a, x, 1, 3);
    expect(cholesky(a, 3)).toBeNull();
    const { l, jitter } = choleskyWithJitter(a, 3);
    expect(jitter).toBe(1e-12 * (14 / 3));
    const shifted = Float64Array.from(a);
    for (let i = 0; i < 3; i++) shifted[i * 3 + i]! += jitter;
    const lMatrix = toMatrix(l, 3, 3);
    expect(relativeError(fromMatrix(lMatrix.mmul(lMatrix.transpose())), shifted)).toBeLessThan(TOLERANCE);
    // The jitter must actually be in the factor: its smallest pivots are of order √ε, not 0.
    expect(l[8]!).toBeGreaterThan(Math.sqrt(jitter) / 10);
  });

  it("escalates the jitter by powers of ten until the factorisation succeeds", () => {
    // The eigenvalue −1e-10 needs ε > 1e-10; the base jitter is 1e-12 · 0.5, so k = 3 is the first to work.
    const a = Float64Array.of(1, 0, 0, -1e-10);
    const { l, jitter } = choleskyWithJitter(a, 2);
    expect(jitter).toBe(1e-12 * ((1 - 1e-10) / 2) * 1000);
    expect(l[3]).toBeCloseTo(Math.sqrt(jitter - 1e-10), 15);
  });

  it("throws NotPositiveDefiniteError for an indefinite matrix", () => {
    const attempt = () => choleskyWithJitter(Float64Array.of(1, 0, 0, -1), 2);
    expect(attempt).toThrow(NotPositiveDefiniteError);
    expect(attempt).toThrow("matrix is not positive definite");
    // Positive diagonal but eigenvalue −1, beyond any allowed jitter.
    expect(() => choleskyWithJitter(Float64Array.of(1, 2, 2, 1), 2)).toThrow(NotPositiveDefiniteError);
    expect(() => spdInverse(Float64Array.of(1, 2, 2, 1), 2)).toThrow(NotPositiveDefiniteError);
  });

  it("cholesky returns null for indefinite, zero and NaN input", () => {
    expect(cholesky(Float64Array.of(1, 0, 0, -1), 2)).toBeNull();
    expect(cholesky(Float64Array.of(1, 2, 2, 1), 2)).toBeNull();
    expect(cholesky(Float64Array.of(0), 1)).toBeNull();
    expect(cholesky(Float64Array.of(Number.NaN), 1)).toBeNull();
    expect(cholesky(Float64Array.of(4, 2, 2, Number.NaN), 2)).toBeNull();
  });

  it("cholesky treats a last pivot at rounding-noise level as zero", () => {
    // Singular with an exactly zero last pivot, which would otherwise yield a factor with L_nn = 0.
    expect(cholesky(Float64Array.of(1, 1, 1, 1), 2)).toBeNull();
    // x xᵀ for x = (0.1, 0.7): rounding leaves the last pivot at +1.5 ulp of A_22 instead of 0.
    const x = [0.1, 0.7] as const;
    const a = Float64Array.of(x[0] * x[0], x[0] * x[1], x[1] * x[0], x[1] * x[1]);
    const pivot = a[3]! - (a[2]! / Math.sqrt(a[0]!)) ** 2;
    expect(pivot).toBeGreaterThan(0);
    expect(cholesky(a, 2)).toBeNull();
    expect(choleskyWithJitter(a, 2).jitter).toBeGreaterThan(0);
  });
});

describe("output buffers", () => {
  const n = 7;
  const a = randomSpd(n, 42);
  const b = randomArray(n, 43);
  const l = cholesky(a, n)!;

  it("overwrite whatever a reused buffer held", () => {
    const dirty = () => new Float64Array(n * n).fill(Number.NaN);
    expect(cholesky(a, n, dirty())).toEqual(l);
    expect(choleskyInverse(l, n, dirty())).toEqual(choleskyInverse(l, n));
    expect(matMul(a, l, n, n, n, dirty())).toEqual(matMul(a, l, n, n, n));
    expect(transpose(a, n, n, dirty())).toEqual(transpose(a, n, n));
    const dirtyVector = () => new Float64Array(n).fill(Number.NaN);
    expect(matVec(a, b, n, n, dirtyVector())).toEqual(matVec(a, b, n, n));
    expect(choleskySolve(l, n, b, dirtyVector())).toEqual(choleskySolve(l, n, b));
  });

  it("may alias the inputs where documented", () => {
    const inPlace = Float64Array.from(a);
    expect(cholesky(inPlace, n, inPlace)).toBe(inPlace);
    expect(inPlace).toEqual(l);

    const inverseInPlace = Float64Array.from(l);
    choleskyInverse(inverseInPlace, n, inverseInPlace);
    expect(inverseInPlace).toEqual(choleskyInverse(l, n));

    const vectorCases: [(out: Float64Array) => Float64Array, Float64Array][] = [
      [(v) => solveLower(l, n, v, v), solveLower(l, n, b)],
      [(v) => solveLowerTransposed(l, n, v, v), solveLowerTransposed(l, n, b)],
      [(v) => choleskySolve(l, n, v, v), choleskySolve(l, n, b)],
      [(v) => lowerTimesVector(l, n, v, v), lowerTimesVector(l, n, b)],
    ];
    for (const [run, expected] of vectorCases) {
      const v = Float64Array.from(b);
      expect(run(v)).toBe(v);
      expect(v).toEqual(expected);
    }
  });
});

describe("toArray", () => {
  it("copies every value, bit for bit, into a plain array", () => {
    const values = Float64Array.from([0.1, -0, Number.MIN_VALUE, -1e308, Number.NaN, Number.POSITIVE_INFINITY]);
    const copy = toArray(values);
    expect(Array.isArray(copy)).toBe(true);
    expect(copy).toEqual([...values]);
    expect(Object.is(copy[1], -0)).toBe(true);
    expect(toArray(new Float64Array(0))).toEqual([]);
  });
});
