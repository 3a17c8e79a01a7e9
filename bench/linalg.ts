// Per-call cost of src/math/linalg.ts against ml-matrix on the same SPD inputs, same run:
//   node bench/linalg.ts
// ml-matrix gets its inputs as prebuilt Matrix objects (conversion from Float64Array is not timed),
// while the hand-written side reuses `out` buffers the way the models do.
import { CholeskyDecomposition, Matrix, inverse } from "ml-matrix";
import { cholesky, choleskySolve, matMul, spdInverse } from "../src/math/linalg.ts";
import { Random } from "../src/math/random.ts";

const SIZES = [3, 6, 10, 20, 50];
const REPETITIONS = 5;
// Five repetitions of at least this long give each case ≥ 200 ms of timed work.
const MIN_REPETITION_MS = 40;

const randomNormals = (length: number, seed: number) => new Random(seed).normals(new Float64Array(length));

// Results flow into this so the JIT cannot drop a call whose output is unused.
let sink = 0;

function iterationsFor(run: () => number): number {
  for (let i = 0; i < 200; i++) sink += run();
  let iterations = 1;
  for (;;) {
    const start = performance.now();
    for (let i = 0; i < iterations; i++) sink += run();
    if (performance.now() - start >= MIN_REPETITION_MS) return iterations;
    iterations *= 2;
  }
}

function timePerCall(run: () => number, iterations: number): number {
  const start = performance.now();
  for (let i = 0; i < iterations; i++) sink += run();
  return ((performance.now() - start) * 1000) / iterations;
}

/**
 * Median per-call µs of both implementations. Their repetitions alternate, so drifting load on a
 * shared machine biases both sides alike instead of skewing the ratio.
 */
function measurePair(own: () => number, ml: () => number): { ownMicros: number; mlMicros: number } {
  const ownIterations = iterationsFor(own);
  const mlIterations = iterationsFor(ml);
  const ownSamples: number[] = [];
  const mlSamples: number[] = [];
  for (let r = 0; r < REPETITIONS; r++) {
    ownSamples.push(timePerCall(own, ownIterations));
    mlSamples.push(timePerCall(ml, mlIterations));
  }
  const median = (samples: number[]) => samples.sort((a, b) => a - b)[REPETITIONS >> 1]!;
  return { ownMicros: median(ownSamples), mlMicros: median(mlSamples) };
}

interface Row {
  operation: string;
  n: number;
  ownMicros: number;
  mlMicros: number;
}

function benchSize(n: number): Row[] {
  const bRandom = Matrix.from1DArray(n, n, randomNormals(n * n, n));
  const aMatrix = bRandom.mmul(bRandom.transpose()).add(Matrix.eye(n, n, n));
  const a = Float64Array.from(aMatrix.to1DArray());
  const c = randomNormals(n * n, 100 + n);
  const cMatrix = Matrix.from1DArray(n, n, c);
  const b = randomNormals(n, 200 + n);
  const bColumn = Matrix.columnVector(b);
  const l = cholesky(a, n)!;
  const mlCholesky = new CholeskyDecomposition(aMatrix);
  const squareOut = new Float64Array(n * n);
  const vectorOut = new Float64Array(n);

  return [
    {
      operation: "cholesky",
      n,
      ...measurePair(
        () => cholesky(a, n, squareOut)![0]!,
        () => new CholeskyDecomposition(aMatrix).lowerTriangularMatrix.get(0, 0),
      ),
    },
    {
      operation: "choleskySolve",
      n,
      ...measurePair(
        () => choleskySolve(l, n, b, vectorOut)[0]!,
        () => mlCholesky.solve(bColumn).get(0, 0),
      ),
    },
    {
      operation: "spdInverse",
      n,
      ...measurePair(
        () => spdInverse(a, n)[0]!,
        () => inverse(aMatrix).get(0, 0),
      ),
    },
    {
      operation: "matMul",
      n,
      ...measurePair(
        () => matMul(a, c, n, n, n, squareOut)[0]!,
        () => aMatrix.mmul(cMatrix).get(0, 0),
      ),
    },
  ];
}

const started = performance.now();
const rows = SIZES.flatMap(benchSize).sort((x, y) => x.operation.localeCompare(y.operation) || x.n - y.n);
console.log(`node ${process.version}, ${new Date().toISOString()}, median of ${REPETITIONS} alternating repetitions × ≥ ${MIN_REPETITION_MS} ms per side`);
console.log(`${"operation".padEnd(14)} ${"n".padStart(3)} ${"linalg µs".padStart(11)} ${"ml-matrix µs".padStart(13)} ${"speed-up".padStart(9)}`);
const format = (micros: number) => (micros < 10 ? micros.toFixed(3) : micros < 1000 ? micros.toFixed(2) : micros.toFixed(0));
for (const row of rows) {
  console.log(
    `${row.operation.padEnd(14)} ${String(row.n).padStart(3)} ${format(row.ownMicros).padStart(11)} ${format(row.mlMicros).padStart(13)} ${`${(row.mlMicros / row.ownMicros).toFixed(1)}×`.padStart(9)}`,
  );
}
console.log(`total ${((performance.now() - started) / 1000).toFixed(1)} s (checksum ${sink.toPrecision(6)})`);
