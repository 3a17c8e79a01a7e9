// Linear-Gaussian control as inference: x_{t+1} = A x_t + B u_t + w, w ~ N(0, Q); y_t = C x_t + v, v ~ N(0, R).
// infer: one Kalman update of the belief about the current state with y, then a plan over the horizon H by
// conditioning the control prior u_t ~ N(0, I/control_precision) on the goal "observation"
// x_final ~ N(x_{H+1}, I/goal_precision), starting from the belief's mean (certainty equivalence).
// With Q = 0 the plan's mean is the finite-horizon LQR solution for the matching quadratic costs.
import type { Distribution } from "../../math/distribution.ts";
import { cholesky, choleskySolve, choleskyWithJitter, matMul, matVec, symmetrize, transpose } from "../../math/linalg.ts";
import type { Tensor } from "../../math/tensor.ts";
import type { ArgumentProblem, ModelType } from "../types.ts";

interface Arguments {
  state_dimension: number;
  control_dimension: number;
  output_dimension: number;
  A: number[];
  B: number[];
  C: number[];
  process_noise: number[];
  observation_noise: number[];
  horizon: number;
  control_precision: number;
  goal_precision: number;
  initial_variance: number;
}

type Parameters = Record<string, never>;

/**
 * Belief N(mean, covariance) about the state at the next decision, before its observation: the
 * prior N(0, initial_variance·I) at first, afterwards the prediction through the applied control.
 */
interface State {
  mean: number[];
  covariance: number[];
  decisions: number;
}

const DT = 0.1;

const eye = (d: number, scale = 1): Float64Array => {
  const out = new Float64Array(d * d);
  for (let i = 0; i < d; i++) out[i * d + i] = scale;
  return out;
};

const add = (a: Float64Array, b: Float64Array): Float64Array => a.map((v, i) => v + b[i]!);

/** Kalman measurement update (Joseph form) of N(m, P) with y = C x + v, v ~ N(0, R). */
function measurementUpdate(
  m: Float64Array,
  p: Float64Array,
  y: readonly number[],
  c: Float64Array,
  r: Float64Array,
  n: number,
  k: number,
): { mean: Float64Array; covariance: Float64Array } {
  const cp = matMul(c, p, k, n, n);
  const s = add(matMul(cp, transpose(c, k, n), k, n, k), r);
  symmetrize(s, k);
  const { l } = choleskyWithJitter(s, k);
  // Kᵀ = S⁻¹ C P because P and S are symmetric: solve column by column.
  const gainT = new Float64Array(k * n);
  const column = new Float64Array(k);
  for (let j = 0; j < n; j++) {
    for (let i = 0; i < k; i++) column[i] = cp[i * n + j]!;
    const x = choleskySolve(l, k, column);
    for (let i = 0; i < k; i++) gainT[i * n + j] = x[i]!;
  }
  const gain = transpose(gainT, k, n);
  const predicted = matVec(c, m, k, n);
  const innovation = Float64Array.from(y, (v, i) => v - predicted[i]!);
  const mean = add(m, matVec(gain, innovation, n, k));
  const kc = matMul(gain, c, n, k, n);
  const iMinusKC = eye(n).map((v, i) => v - kc[i]!);
  const covariance = add(
    matMul(matMul(iMinusKC, p, n, n, n), transpose(iMinusKC, n, n), n, n, n),
    matMul(matMul(gain, r, n, k, k), gainT, n, k, n),
  );
  symmetrize(covariance, n);
  return { mean, covariance };
}

export interface Plan {
  /** E[U | goal] over the stacked controls u_1..u_H (H·m). */
  readonly mean: Float64Array;
  /** Cov[U | goal], (H·m)×(H·m). */
  readonly covariance: Float64Array;
  /** Row t: the state mean after applying the planned mean controls u_1..u_t (H×n). */
  readonly states: Float64Array;
}

/**
 * Batch form of planning as inference: x_{H+1} = A^H x_1 + F U + Σ_t A^{H−t} w_t with
 * F = [A^{H−1}B, …, AB, B]; the prior U ~ N(0, σ²I) is conditioned on x_final through
 * S = σ² F Fᵀ + Σ_t A^{H−t} Q A^{H−t}ᵀ + I/goal_precision.
 */
export function plan(args: Arguments, x1: Float64Array, goal: readonly number[]): Plan {
  const n = args.state_dimension;
  const m = args.control_dimension;
  const h = args.horizon;
  const a = Float64Array.from(args.A);
  const b = Float64Array.from(args.B);
  const q = Float64Array.from(args.process_noise);
  const hm = h * m;
  const f = new Float64Array(n * hm);
  const noise = new Float64Array(n * n);
  // power = A^{H−t}, walking t from H down to 1.
  let power = eye(n);
  for (let t = h; t >= 1; t--) {
    const block = matMul(power, b, n, n, m);
    for (let i = 0; i < n; i++) for (let j = 0; j < m; j++) f[i * hm + (t - 1) * m + j] = block[i * m + j]!;
    const spread = matMul(matMul(power, q, n, n, n), transpose(power, n, n), n, n, n);
    for (let i = 0; i < n * n; i++) noise[i] = noise[i]! + spread[i]!;
    if (t > 1) power = matMul(power, a, n, n, n);
  }
  // After the loop power = A^{H−1}; one more factor gives the free response A^H x_1.
  const free = matVec(matMul(power, a, n, n, n), x1, n, n);
  const variance = 1 / args.control_precision;
  const s = add(matMul(f, transpose(f, n, hm), n, hm, n).map((v) => variance * v), noise);
  for (let i = 0; i < n; i++) s[i * n + i] = s[i * n + i]! + 1 / args.goal_precision;
  symmetrize(s, n);
  const { l } = choleskyWithJitter(s, n);
  const residual = Float64Array.from(goal, (g, i) => g - free[i]!);
  const z = choleskySolve(l, n, residual);
  // E[U] = σ² Fᵀ S⁻¹ (g − A^H x_1); Cov[U] = σ²I − σ⁴ Fᵀ S⁻¹ F.
  const mean = matVec(transpose(f, n, hm), z, hm, n).map((v) => variance * v);
  const sInvF = new Float64Array(n * hm);
  const column = new Float64Array(n);
  for (let j = 0; j < hm; j++) {
    for (let i = 0; i < n; i++) column[i] = f[i * hm + j]!;
    const x = choleskySolve(l, n, column);
    for (let i = 0; i < n; i++) sInvF[i * hm + j] = x[i]!;
  }
  const covariance = matMul(transpose(f, n, hm), sInvF, hm, n, hm).map((v) => -variance * variance * v);
  for (let i = 0; i < hm; i++) covariance[i * hm + i] = covariance[i * hm + i]! + variance;
  symmetrize(covariance, hm);

  const states = new Float64Array(h * n);
  let x = x1;
  for (let t = 0; t < h; t++) {
    x = add(matVec(a, x, n, n), matVec(b, mean.subarray(t * m, (t + 1) * m), n, m));
    states.set(x, t * n);
  }
  return { mean, covariance, states };
}

/** Symmetric within rounding, and positive semi-definite (definite when `strict`). */
function covarianceProblem(name: string, values: readonly number[], d: number, strict: boolean): ArgumentProblem | undefined {
  let scale = 0;
  for (let i = 0; i < d; i++) scale = Math.max(scale, Math.abs(values[i * d + i]!));
  for (let i = 0; i < d; i++) {
    for (let j = 0; j < i; j++) {
      if (Math.abs(values[i * d + j]! - values[j * d + i]!) > 1e-12 * Math.max(scale, 1e-300)) {
        return { argument: name, description: `must be symmetric; entries (${i}, ${j}) and (${j}, ${i}) differ` };
      }
    }
  }
  const matrix = Float64Array.from(values);
  // A semi-definite matrix with zero rows (e.g. Q = 0) is accepted: the shift only lets Cholesky pass it.
  if (!strict) for (let i = 0; i < d; i++) matrix[i * d + i] = matrix[i * d + i]! + 1e-12 * Math.max(scale, 1);
  if (cholesky(matrix, d) === null) {
    return { argument: name, description: strict ? "must be positive definite" : "must be positive semi-definite" };
  }
  return undefined;
}

function checkArguments(args: Arguments): ArgumentProblem[] {
  const n = args.state_dimension;
  const m = args.control_dimension;
  const k = args.output_dimension;
  const problems: ArgumentProblem[] = [];
  const sizes: [keyof Arguments & string, number, string][] = [
    ["A", n * n, "state_dimension × state_dimension"],
    ["B", n * m, "state_dimension × control_dimension"],
    ["C", k * n, "output_dimension × state_dimension"],
    ["process_noise", n * n, "state_dimension × state_dimension"],
    ["observation_noise", k * k, "output_dimension × output_dimension"],
  ];
  for (const [name, size, dims] of sizes) {
    const got = (args[name] as number[]).length;
    if (got !== size) problems.push({ argument: name, description: `must have ${size} elements (${dims}, row-major), got ${got}` });
  }
  if (problems.length > 0) return problems;
  const q = covarianceProblem("process_noise", args.process_noise, n, false);
  if (q) problems.push(q);
  const r = covarianceProblem("observation_noise", args.observation_noise, k, true);
  if (r) problems.push(r);
  return problems;
}

const row = (values: ArrayLike<number>): number[] => Array.from(values);
const matrixTensor = (values: ArrayLike<number>, rows: number, cols: number): Tensor => ({ shape: [rows, cols], values: row(values) });

export const linearControl: ModelType<Arguments, Parameters, State> = {
  schema: {
    name: "linear-control-v1",
    description:
      "Planning as inference for a linear-Gaussian plant x_{t+1} = A x_t + B u_t + w, w ~ N(0, process_noise), observed through " +
      "y_t = C x_t + v, v ~ N(0, observation_noise). Each infer updates the Kalman belief about the current state with y, then conditions " +
      "the control prior u_t ~ N(0, I/control_precision), t = 1..horizon, on the goal x_final ~ N(x_{horizon+1}, I/goal_precision), " +
      "planning from the belief's mean (certainty equivalence). With process_noise = 0 the planned mean controls are exactly the " +
      "finite-horizon LQR controls for the cost ½·control_precision·Σ‖u_t‖² + ½·goal_precision·‖x_{horizon+1} − x_final‖²; with " +
      "process_noise > 0 the goal is discounted by the noise accumulated to the horizon (control as inference, not LQG). " +
      "Defaults: the double integrator (position, velocity; acceleration control) discretised exactly with dt = 0.1, fully observed " +
      "(C = I) with tiny noise, so the first state estimate is the observation itself to about 1e-16 relative. The belief kept in the " +
      "state assumes the returned actions.u is applied: the next decision predicts through it before updating with its observation.",
    category: "control",
    arguments: [
      { name: "state_dimension", type: "integer", description: "n, the number of elements of the state x", default: 2, minimum: 1, maximum: 12 },
      { name: "control_dimension", type: "integer", description: "m, the number of elements of the control u", default: 1, minimum: 1, maximum: 12 },
      { name: "output_dimension", type: "integer", description: "p, the number of elements of the observation y", default: 2, minimum: 1, maximum: 12 },
      // The matrices' sizes are products of dimensions, which a Dimension cannot express; checkArguments checks them.
      {
        name: "A",
        type: "number[]",
        description: `State transition, n×n row-major (n² elements). Default [1, dt, 0, 1] with dt = ${DT}: the double integrator`,
        default: [1, DT, 0, 1],
      },
      {
        name: "B",
        type: "number[]",
        description: `Control input matrix, n×m row-major (n·m elements). Default [dt²/2, dt] with dt = ${DT}: a constant acceleration over the step`,
        default: [0.005, DT],
      },
      { name: "C", type: "number[]", description: "Observation matrix, p×n row-major (p·n elements). Default I₂: the state is observed", default: [1, 0, 0, 1] },
      {
        name: "process_noise",
        type: "number[]",
        description:
          "Q, covariance of w, n×n row-major, symmetric positive semi-definite (0 allowed: a deterministic plant). Default 1e-10·I₂, " +
          "small enough that the goal discount it causes is negligible",
        default: [1e-10, 0, 0, 1e-10],
      },
      {
        name: "observation_noise",
        type: "number[]",
        description: "R, covariance of v, p×p row-major, symmetric positive definite. Default 1e-10·I₂: a practically exact measurement",
        default: [1e-10, 0, 0, 1e-10],
      },
      {
        name: "horizon",
        type: "integer",
        description: "H, the number of planned controls u_1..u_H; the goal applies to x_{H+1}",
        default: 20,
        minimum: 1,
        maximum: 200,
        overridable: true,
      },
      {
        name: "control_precision",
        type: "number",
        description: "Precision of the control prior u_t ~ N(0, I/control_precision), i.e. the LQR control cost weight",
        default: 1,
        minimum: 0,
        exclusiveMinimum: true,
        overridable: true,
      },
      {
        name: "goal_precision",
        type: "number",
        description: "Precision of the goal x_final ~ N(x_{H+1}, I/goal_precision), i.e. the LQR terminal cost weight",
        default: 1e4,
        minimum: 0,
        exclusiveMinimum: true,
        overridable: true,
      },
      {
        name: "initial_variance",
        type: "number",
        description: "Variance of the prior N(0, initial_variance·I) on the state before the first observation",
        default: 1e6,
        minimum: 0,
        exclusiveMinimum: true,
      },
    ],
    parameters: [],
    observation: [
      { name: "y", description: "Current observation y = C x + v (output_dimension numbers)", shape: ["output_dimension"], required: true, example: [1, 0] },
    ],
    goal: [
      {
        name: "x_final",
        description: "Target state for x_{horizon+1}, the state after the last planned control (state_dimension numbers)",
        shape: ["state_dimension"],
        required: true,
        example: [0, 0],
      },
    ],
    event: [{ name: "y", description: "An observation y = C x + v, as stored by infer", shape: ["output_dimension"], required: true, example: [1, 0] }],
    outputs: [
      {
        name: "controls",
        kind: "posterior",
        family: "mvNormal",
        description: "Joint posterior of the stacked controls [u_1; …; u_H] (H·m elements, u_t's elements consecutive) given the goal",
        shape: ["horizon", "control_dimension"],
      },
      {
        name: "state",
        kind: "posterior",
        family: "mvNormal",
        description: "Kalman belief about the current state x_1 after this observation; the plan starts from its mean",
        shape: ["state_dimension"],
      },
      { name: "u", kind: "action", description: "The next control to apply: the posterior mean of u_1", shape: ["control_dimension"] },
      {
        name: "planned_states",
        kind: "value",
        description: "Row t: the mean state x_{t+1} after applying the planned mean controls u_1..u_t from the state estimate (the last row is the planned final state)",
        shape: ["horizon", "state_dimension"],
      },
    ],
    learning:
      "Nothing is learned: A, B, C and the noise covariances are arguments, not parameters. A learn records a run that changes nothing.",
  },

  initialParameters: () => ({}),

  initialState(args) {
    const n = args.state_dimension;
    return { mean: new Array<number>(n).fill(0), covariance: row(eye(n, args.initial_variance)), decisions: 0 };
  },

  parameterPosteriors: () => ({}),

  checkArguments,

  infer({ arguments: args, state, observation, goal }) {
    const n = args.state_dimension;
    const m = args.control_dimension;
    const k = args.output_dimension;
    const belief = measurementUpdate(
      Float64Array.from(state.mean),
      Float64Array.from(state.covariance),
      observation.y!.values,
      Float64Array.from(args.C),
      Float64Array.from(args.observation_noise),
      n,
      k,
    );
    const p = plan(args, belief.mean, goal.x_final!.values);
    const u = p.mean.slice(0, m);
    const a = Float64Array.from(args.A);
    const nextMean = add(matVec(a, belief.mean, n, n), matVec(Float64Array.from(args.B), u, n, m));
    const nextCovariance = add(matMul(matMul(a, belief.covariance, n, n, n), transpose(a, n, n), n, n, n), Float64Array.from(args.process_noise));
    symmetrize(nextCovariance, n);
    const controls: Distribution = { kind: "mvNormal", mean: row(p.mean), covariance: row(p.covariance) };
    const current: Distribution = { kind: "mvNormal", mean: row(belief.mean), covariance: row(belief.covariance) };
    return {
      posteriors: { controls, state: current },
      actions: { u: { shape: [m], values: row(u) } },
      values: { planned_states: matrixTensor(p.states, args.horizon, n) },
      state: { mean: row(nextMean), covariance: row(nextCovariance), decisions: state.decisions + 1 },
    };
  },

  learn: ({ prior }) => ({ parameters: prior, metrics: { dataPoints: 0, iterations: 0 } }),
};
