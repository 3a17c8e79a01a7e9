// Quadrotor planning as inference (RxInferServer's Drone3D-v1): u_t ~ N(m·g/4·1, control_variance·I),
// s_{t+1} = f(s_t, u_t), goal [target, 0…0] ~ N(s_{H+1}, goal_variance·I). infer finds the MAP control sequence by
// Gauss–Newton on the goal residual (iterated linearisation around the rollout, i.e. an iterated extended Kalman
// smoother on the goal "observation") with a backtracking line search; the reference used the unscented transform.
import type { Distribution } from "../../math/distribution.ts";
import { choleskySolve, choleskyWithJitter, matMul, symmetrize } from "../../math/linalg.ts";
import type { ModelType } from "../types.ts";

interface Arguments {
  dt: number;
  horizon: number;
  gravity: number;
  mass: number;
  arm_length: number;
  radius: number;
  inertia: number[];
  force_limit: number;
  control_variance: number;
  goal_variance: number;
  iterations: number;
}

type Parameters = Record<string, never>;
type State = Record<string, never>;

const S = 12;
const U = 4;

/**
 * The reference's state_transition_3d: forces clamped to [0, force_limit], R = Rz(ψ)Ry(θ)Rx(ϕ), thrust along
 * body z, torques L(F2−F4), L(F1−F3), r(F1+F3−F2−F4), α = I⁻¹(τ − ω×Iω), second-order position and angle updates.
 */
export function transition(args: Arguments, s: ArrayLike<number>, u: ArrayLike<number>): Float64Array {
  const { dt, gravity: g, mass: m, arm_length: l, radius: r, force_limit: limit } = args;
  const [ix, iy, iz] = args.inertia as [number, number, number];
  const clamp = (f: number) => Math.min(Math.max(f, 0), limit);
  const f1 = clamp(u[0]!);
  const f2 = clamp(u[1]!);
  const f3 = clamp(u[2]!);
  const f4 = clamp(u[3]!);
  const [x, y, z, vx, vy, vz, phi, theta, psi, wx, wy, wz] = Array.from(s) as [number, number, number, number, number, number, number, number, number, number, number, number];
  const total = f1 + f2 + f3 + f4;
  const tx = l * (f2 - f4);
  const ty = l * (f1 - f3);
  const tz = (f1 + f3 - f2 - f4) * r;
  // Third column of Rz(ψ)Ry(θ)Rx(ϕ), the body z axis in the world frame.
  const cphi = Math.cos(phi);
  const sphi = Math.sin(phi);
  const cth = Math.cos(theta);
  const sth = Math.sin(theta);
  const cpsi = Math.cos(psi);
  const spsi = Math.sin(psi);
  const ax = ((cpsi * sth * cphi + spsi * sphi) * total) / m;
  const ay = ((spsi * sth * cphi - cpsi * sphi) * total) / m;
  const az = (cth * cphi * total) / m - g;
  // ω × Iω with diagonal I.
  const cx = wy * (iz * wz) - wz * (iy * wy);
  const cy = wz * (ix * wx) - wx * (iz * wz);
  const cz = wx * (iy * wy) - wy * (ix * wx);
  const alx = (tx - cx) / ix;
  const aly = (ty - cy) / iy;
  const alz = (tz - cz) / iz;
  return Float64Array.of(
    x + vx * dt + ax * dt ** 2 / 2,
    y + vy * dt + ay * dt ** 2 / 2,
    z + vz * dt + az * dt ** 2 / 2,
    vx + ax * dt,
    vy + ay * dt,
    vz + az * dt,
    phi + wx * dt + alx * dt ** 2 / 2,
    theta + wy * dt + aly * dt ** 2 / 2,
    psi + wz * dt + alz * dt ** 2 / 2,
    wx + alx * dt,
    wy + aly * dt,
    wz + alz * dt,
  );
}

/** ∂f/∂s (12×12) and ∂f/∂u (12×4) by central differences with step 1e-6. */
function jacobians(args: Arguments, s: Float64Array, u: Float64Array): { a: Float64Array; b: Float64Array } {
  const h = 1e-6;
  const a = new Float64Array(S * S);
  const b = new Float64Array(S * U);
  const sp = Float64Array.from(s);
  for (let j = 0; j < S; j++) {
    sp[j] = s[j]! + h;
    const plus = transition(args, sp, u);
    sp[j] = s[j]! - h;
    const minus = transition(args, sp, u);
    sp[j] = s[j]!;
    for (let i = 0; i < S; i++) a[i * S + j] = (plus[i]! - minus[i]!) / (2 * h);
  }
  const up = Float64Array.from(u);
  for (let j = 0; j < U; j++) {
    up[j] = u[j]! + h;
    const plus = transition(args, s, up);
    up[j] = u[j]! - h;
    const minus = transition(args, s, up);
    up[j] = u[j]!;
    for (let i = 0; i < S; i++) b[i * U + j] = (plus[i]! - minus[i]!) / (2 * h);
  }
  return { a, b };
}

function rollout(args: Arguments, s1: Float64Array, controls: Float64Array): Float64Array[] {
  const states = [s1];
  for (let t = 0; t < args.horizon; t++) states.push(transition(args, states[t]!, controls.subarray(t * U, (t + 1) * U)));
  return states;
}

export interface DronePlan {
  readonly controls: Float64Array;
  readonly states: Float64Array[];
  /** Laplace (Gauss–Newton) covariance of the stacked controls at the solution. */
  readonly covariance: Float64Array;
  /** MAP cost after each iteration, starting with the cost of the hover plan. */
  readonly costs: number[];
}

/** Gauss–Newton on ½Σ‖u_t − ū‖²/σ_u² + ½‖s_{H+1}(U) − g‖²/σ_g², starting from the hover plan U = ū. */
export function planDrone(args: Arguments, s1: Float64Array, target: readonly number[]): DronePlan {
  const h = args.horizon;
  const hm = h * U;
  const hover = (args.mass * args.gravity) / 4;
  const su2 = args.control_variance;
  const sg2 = args.goal_variance;
  const goal = new Float64Array(S);
  goal.set(target);
  const cost = (controls: Float64Array, final: Float64Array) => {
    let c = 0;
    for (let i = 0; i < hm; i++) c += (controls[i]! - hover) ** 2 / su2;
    for (let i = 0; i < S; i++) c += (final[i]! - goal[i]!) ** 2 / sg2;
    return c / 2;
  };
  let controls: Float64Array = new Float64Array(hm).fill(hover);
  let states = rollout(args, s1, controls);
  const costs = [cost(controls, states[h]!)];
  const linearise = () => {
    // F = ∂s_{H+1}/∂U: block t is A_H⋯A_{t+1}B_t, accumulated backwards.
    const f = new Float64Array(S * hm);
    let tail: Float64Array = new Float64Array(S * S);
    for (let i = 0; i < S; i++) tail[i * S + i] = 1;
    for (let t = h - 1; t >= 0; t--) {
      const { a, b } = jacobians(args, states[t]!, controls.subarray(t * U, (t + 1) * U));
      const block = matMul(tail, b, S, S, U);
      for (let i = 0; i < S; i++) for (let j = 0; j < U; j++) f[i * hm + t * U + j] = block[i * U + j]!;
      tail = matMul(tail, a, S, S, S);
    }
    const ff = matMul(f, transposed(f, S, hm), S, hm, S);
    const gram = ff.map((v) => su2 * v);
    for (let i = 0; i < S; i++) gram[i * S + i] = gram[i * S + i]! + sg2;
    symmetrize(gram, S);
    return { f, l: choleskyWithJitter(gram, S).l };
  };
  let lin = linearise();
  for (let iteration = 0; iteration < args.iterations; iteration++) {
    // Batch conditioning of U ~ N(ū, σ_u²I) on g ≈ s_{H+1} + F(U − U0):
    // U* = ū + σ_u² Fᵀ S⁻¹ (g − s_{H+1} − F(ū − U0)), S = σ_u² F Fᵀ + σ_g² I.
    const final = states[h]!;
    const rhs = new Float64Array(S);
    for (let i = 0; i < S; i++) {
      let fd = 0;
      for (let j = 0; j < hm; j++) fd += lin.f[i * hm + j]! * (hover - controls[j]!);
      rhs[i] = goal[i]! - final[i]! - fd;
    }
    const z = choleskySolve(lin.l, S, rhs);
    const step = new Float64Array(hm);
    for (let j = 0; j < hm; j++) {
      let v = 0;
      for (let i = 0; i < S; i++) v += lin.f[i * hm + j]! * z[i]!;
      step[j] = hover + su2 * v - controls[j]!;
    }
    let accepted = false;
    for (let alpha = 1; alpha > 1e-6; alpha /= 2) {
      const candidate = controls.map((c, j) => c + alpha * step[j]!);
      const candidateStates = rollout(args, s1, candidate);
      const c = cost(candidate, candidateStates[h]!);
      if (c < costs.at(-1)!) {
        controls = candidate;
        states = candidateStates;
        costs.push(c);
        accepted = true;
        break;
      }
    }
    if (!accepted) break;
    lin = linearise();
    const previous = costs.at(-2)!;
    if (previous - costs.at(-1)! <= 1e-12 * previous) break;
  }
  // Laplace covariance σ_u²I − σ_u⁴ Fᵀ S⁻¹ F at the final linearisation.
  const sInvF = new Float64Array(S * hm);
  const column = new Float64Array(S);
  for (let j = 0; j < hm; j++) {
    for (let i = 0; i < S; i++) column[i] = lin.f[i * hm + j]!;
    const x = choleskySolve(lin.l, S, column);
    for (let i = 0; i < S; i++) sInvF[i * hm + j] = x[i]!;
  }
  const covariance = matMul(transposed(lin.f, S, hm), sInvF, hm, S, hm).map((v) => -su2 * su2 * v);
  for (let i = 0; i < hm; i++) covariance[i * hm + i] = covariance[i * hm + i]! + su2;
  symmetrize(covariance, hm);
  return { controls, states, covariance, costs };
}

function transposed(a: Float64Array, rows: number, cols: number): Float64Array {
  const out = new Float64Array(rows * cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) out[j * rows + i] = a[i * cols + j]!;
  return out;
}

const STATE_DESCRIPTION = "[x, y, z, vx, vy, vz, ϕ (roll), θ (pitch), ψ (yaw), ωx, ωy, ωz]";
const positive = { minimum: 0, exclusiveMinimum: true } as const;

export const drone3d: ModelType<Arguments, Parameters, State> = {
  schema: {
    name: "drone-3d-v1",
    description:
      "Quadrotor (12 states, 4 rotor forces) planning as inference, as RxInferServer's Drone3D-v1: rotor forces u_t ~ N(mass·gravity/4·1, " +
      "control_variance·I), deterministic dynamics s_{t+1} = f(s_t, u_t) (the reference's state_transition_3d: forces clamped to " +
      "[0, force_limit], ZYX Euler angles, second-order updates), goal [target, 0, …, 0] ~ N(s_{horizon+1}, goal_variance·I). infer " +
      "returns the MAP plan found by Gauss–Newton (iterated linearisation of the rollout, Jacobians by central differences, backtracking " +
      "line search, starting from the hover plan) and a Laplace posterior of the next forces. The goal is soft: the plan ends short of " +
      "the target by the trade-off against the control prior. The reference's 1e-5 prior on s_1 and 1e-10 transition noise are " +
      "treated as exact (negligible), and its unscented transform is replaced by linearisation, so numbers differ slightly from it.",
    category: "control",
    arguments: [
      { name: "dt", type: "number", description: "Time step in seconds", default: 0.05, ...positive },
      { name: "horizon", type: "integer", description: "H, the number of planned force vectors", default: 40, minimum: 1, maximum: 200, overridable: true },
      { name: "gravity", type: "number", description: "Gravitational acceleration (m/s²)", default: 9.81, minimum: 0 },
      { name: "mass", type: "number", description: "Mass (kg)", default: 1, ...positive },
      { name: "arm_length", type: "number", description: "L, rotor arm length (m): roll torque L(F2−F4), pitch torque L(F1−F3)", default: 0.5, ...positive },
      { name: "radius", type: "number", description: "r, yaw torque coefficient: yaw torque r(F1+F3−F2−F4)", default: 0.2, ...positive },
      {
        name: "inertia",
        type: "number[]",
        description: "Diagonal of the inertia matrix [Ix, Iy, Iz] (the reference's scalar default fails there; a 3-vector here)",
        default: [1, 1, 1],
        length: 3,
        ...positive,
      },
      { name: "force_limit", type: "number", description: "Each rotor's force is clamped to [0, force_limit] by the dynamics", default: 15, ...positive },
      { name: "control_variance", type: "number", description: "Variance of the force prior around hover (the reference's 0.1)", default: 0.1, ...positive, overridable: true },
      { name: "goal_variance", type: "number", description: "Variance of the goal on s_{H+1} (the reference's 1e-3)", default: 1e-3, ...positive, overridable: true },
      { name: "iterations", type: "integer", description: "Maximum number of Gauss–Newton iterations", default: 20, minimum: 1, maximum: 200 },
    ],
    parameters: [],
    observation: [
      { name: "current_state", description: `Current state ${STATE_DESCRIPTION}`, shape: [S], required: true, example: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0] },
    ],
    goal: [{ name: "target", description: "Target position [x, y, z], to be reached at rest and level", shape: [3], required: true, example: [0, 0, 1] }],
    event: [
      { name: "current_state", description: `A state ${STATE_DESCRIPTION}, as stored by infer`, shape: [S], required: true, example: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0] },
    ],
    outputs: [
      { name: "u", kind: "action", description: "The next rotor forces [F1, F2, F3, F4]: the first planned force vector", shape: [U] },
      { name: "forces", kind: "action", description: "The planned rotor forces, one row per step (the reference's `actions`)", shape: ["horizon", U] },
      {
        name: "next_forces",
        kind: "posterior",
        family: "mvNormal",
        description: "Laplace (Gauss–Newton) posterior of the next rotor forces at the plan",
        shape: [U],
      },
      { name: "planned_states", kind: "value", description: "(H+1)×12: the rollout s_1 (the current state) … s_{H+1} of the planned forces (the reference's `states`)" },
      { name: "next_state", kind: "value", description: "f(current_state, u): the state after applying the next forces", shape: [S] },
      { name: "cost", kind: "value", description: "MAP cost ½Σ‖u_t − ū‖²/control_variance + ½‖s_{H+1} − goal‖²/goal_variance of the plan" },
      { name: "iterations", kind: "value", description: "Gauss–Newton iterations taken" },
    ],
    learning: "Nothing is learned: the drone's physical properties are arguments. A learn records a run that changes nothing.",
  },

  initialParameters: () => ({}),
  initialState: () => ({}),
  parameterPosteriors: () => ({}),

  infer({ arguments: args, observation, goal }) {
    const s1 = Float64Array.from(observation.current_state!.values);
    const result = planDrone(args, s1, goal.target!.values);
    const h = args.horizon;
    const u = Array.from(result.controls.subarray(0, U));
    const covariance: number[] = [];
    for (let i = 0; i < U; i++) for (let j = 0; j < U; j++) covariance.push(result.covariance[i * h * U + j]!);
    const posterior: Distribution = { kind: "mvNormal", mean: u, covariance };
    const planned: number[] = [];
    for (const s of result.states) planned.push(...s);
    return {
      posteriors: { next_forces: posterior },
      actions: { u: { shape: [U], values: u }, forces: { shape: [h, U], values: Array.from(result.controls) } },
      values: {
        planned_states: { shape: [h + 1, S], values: planned },
        next_state: { shape: [S], values: Array.from(result.states[1]!) },
        cost: { shape: [], values: [result.costs.at(-1)!] },
        iterations: { shape: [], values: [result.costs.length - 1] },
      },
    };
  },

  learn: ({ prior }) => ({ parameters: prior, metrics: { dataPoints: 0, iterations: 0 } }),
};
