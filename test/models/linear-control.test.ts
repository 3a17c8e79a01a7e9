import { Matrix, solve } from "ml-matrix";
import { describe, expect, it } from "vitest";
import type { Tensor } from "../../src/math/tensor.ts";
import { linearControl } from "../../src/models/linear-control/index.ts";
import type { JsonObject } from "../../src/models/types.ts";
import { resolveModelArguments, resolveShape, validateData, validateFields } from "../../src/models/validation.ts";
import { testRandom } from "../support/assertions.ts";

type Args = Parameters<typeof linearControl.initialParameters>[0];
type State = ReturnType<typeof linearControl.initialState>;

const withArgs = (given: JsonObject = {}): Args => {
  const { arguments: args, violations } = resolveModelArguments(linearControl, given);
  expect(violations).toEqual([]);
  return args as unknown as Args;
};
const vec = (v: number[]): Tensor => ({ shape: [v.length], values: v });

const infer = (args: Args, y: number[], goal: number[], state: State = linearControl.initialState(args)) => {
  const out = linearControl.infer({ arguments: args, parameters: {}, state, observation: { y: vec(y) }, goal: { x_final: vec(goal) }, seed: 0, decisionIndex: 1 });
  const controls = out.posteriors!.controls!;
  const belief = out.posteriors!.state!;
  if (controls.kind !== "mvNormal" || belief.kind !== "mvNormal") throw new Error("expected mvNormal posteriors");
  return { u: out.actions!.u!.values, controls, belief, planned: out.values!.planned_states!, state: out.state! };
};

/**
 * Finite-horizon LQR with cost ½Σ uᵀRu + ½(x_{H+1} − g)ᵀQf(x_{H+1} − g), written independently of the model:
 * V_t(x) = ½xᵀP_t x − p_tᵀx, P_{H+1} = Qf, p_{H+1} = Qf g, backward Riccati recursion, then the forward rollout.
 */
function lqr(a: Matrix, b: Matrix, r: Matrix, qf: Matrix, g: number[], x1: number[], h: number): number[][] {
  let p = qf.clone();
  let pv = qf.mmul(Matrix.columnVector(g));
  const gains: { k: Matrix; kv: Matrix }[] = [];
  for (let t = h; t >= 1; t--) {
    const bt = b.transpose();
    const mm = r.clone().add(bt.mmul(p).mmul(b));
    // u_t = −K x + kv with K = M⁻¹BᵀPA and kv = M⁻¹Bᵀp.
    const k = solve(mm, bt.mmul(p).mmul(a));
    const kv = solve(mm, bt.mmul(pv));
    gains[t] = { k, kv };
    const pb = p.mmul(b);
    const newP = a.transpose().mmul(p.clone().sub(pb.mmul(solve(mm, bt.mmul(p))))).mmul(a);
    pv = a.transpose().mmul(pv.clone().sub(pb.mmul(kv)));
    p = newP.add(newP.transpose()).mul(0.5);
  }
  const us: number[][] = [];
  let x = Matrix.columnVector(x1);
  for (let t = 1; t <= h; t++) {
    const { k, kv } = gains[t]!;
    const u = kv.clone().sub(k.mmul(x));
    us.push(u.getColumn(0));
    x = a.mmul(x).add(b.mmul(u));
  }
  return us;
}

const relativeError = (actual: ArrayLike<number>, expected: readonly number[]) => {
  let diff = 0;
  let norm = 0;
  for (let i = 0; i < expected.length; i++) {
    diff = Math.max(diff, Math.abs(actual[i]! - expected[i]!));
    norm = Math.max(norm, Math.abs(expected[i]!));
  }
  return diff / norm;
};

describe("linear-control-v1 schema and arguments", () => {
  it("has a default for every argument (the dt = 0.1 double integrator) and examples valid under the defaults", () => {
    const args = withArgs();
    expect(args.A).toEqual([1, 0.1, 0, 1]);
    expect(args.B).toEqual([0.005, 0.1]);
    expect(args.horizon).toBe(20);
    for (const spec of linearControl.schema.arguments) expect(spec.default, spec.name).toBeDefined();
    for (const kind of ["observation", "goal", "event"] as const) {
      const specs = linearControl.schema[kind];
      const fields = Object.fromEntries(specs.map((s) => [s.name, { shape: resolveShape(s.shape, args as unknown as JsonObject), values: [...s.example] }]));
      expect(validateFields(specs, fields, args as unknown as JsonObject, kind)).toEqual([]);
    }
  });

  it("names the argument at fault: matrix sizes, an asymmetric or indefinite noise covariance", () => {
    const problems = (given: JsonObject) => resolveModelArguments(linearControl, given).violations.map((v) => [v.field, v.reason]);
    expect(problems({ A: [1, 0.1, 0] })).toEqual([["arguments.A", "ARGUMENTS_NOT_VALID"]]);
    // A state dimension without matching matrices: every matrix sized by it is named.
    expect(problems({ state_dimension: 3 }).map((p) => p[0])).toEqual([
      "arguments.A",
      "arguments.B",
      "arguments.C",
      "arguments.process_noise",
    ]);
    expect(problems({ process_noise: [1, 0.5, 0, 1] })).toEqual([["arguments.process_noise", "ARGUMENTS_NOT_VALID"]]);
    expect(problems({ process_noise: [1, 0, 0, -1] })).toEqual([["arguments.process_noise", "ARGUMENTS_NOT_VALID"]]);
    expect(problems({ observation_noise: [0, 0, 0, 0] })).toEqual([["arguments.observation_noise", "ARGUMENTS_NOT_VALID"]]);
    expect(problems({ horizon: 0 })).toEqual([["arguments.horizon", "ARGUMENTS_NOT_VALID"]]);
    expect(problems({ process_noise: [0, 0, 0, 0] })).toEqual([]);
  });

  it("rejects data by the schema: a missing goal is incomplete, a wrong-length observation incompatible", () => {
    const args = withArgs() as unknown as JsonObject;
    expect(validateData(linearControl, "goal", {}, args, "goal").map((v) => [v.field, v.reason])).toEqual([["goal.x_final", "DATA_INCOMPLETE"]]);
    expect(validateData(linearControl, "observation", { y: vec([1, 2, 3]) }, args, "observation").map((v) => [v.field, v.reason])).toEqual([
      ["observation.y", "DATA_LAYOUT_NOT_COMPATIBLE"],
    ]);
    expect(validateData(linearControl, "goal", { x_final: vec([Number.NaN, 0]) }, args, "goal").map((v) => [v.field, v.reason])).toEqual([
      ["goal.x_final", "DATA_NOT_VALID"],
    ]);
  });
});

describe("linear-control-v1 planning", () => {
  it("agrees with finite-horizon LQR (independent Riccati recursion) on the noise-free double integrator to 1e-8 relative", () => {
    for (const [h, controlPrecision, goalPrecision, x1, g] of [
      [20, 1, 1e4, [0, 0], [1, 0]],
      [20, 2, 1e3, [0.3, -0.7], [-1, 0.5]],
      [5, 0.1, 1e6, [2, 1], [0, 0]],
      [1, 1, 10, [0, 0], [1, 1]],
      [60, 1, 1e2, [1, 0], [0, 0]],
    ] as [number, number, number, number[], number[]][]) {
      const args = withArgs({ process_noise: [0, 0, 0, 0], horizon: h, control_precision: controlPrecision, goal_precision: goalPrecision });
      const { u, controls } = infer(args, x1, g);
      const expected = lqr(
        new Matrix([[1, 0.1], [0, 1]]),
        new Matrix([[0.005], [0.1]]),
        new Matrix([[controlPrecision]]),
        Matrix.eye(2).mul(goalPrecision),
        g,
        x1,
        h,
      );
      expect(relativeError(u, expected[0]!)).toBeLessThan(1e-8);
      expect(relativeError(controls.mean, expected.flat())).toBeLessThan(1e-8);
    }
  });

  it("agrees with LQR on a random 3-state, 2-control plant", () => {
    const rand = testRandom(11);
    const a = Array.from({ length: 9 }, (_, i) => (i % 4 === 0 ? 1 : 0) + 0.2 * (rand() - 0.5));
    const b = Array.from({ length: 6 }, () => rand() - 0.5);
    const args = withArgs({
      state_dimension: 3,
      control_dimension: 2,
      output_dimension: 3,
      A: a,
      B: b,
      C: [1, 0, 0, 0, 1, 0, 0, 0, 1],
      process_noise: new Array<number>(9).fill(0),
      observation_noise: [1e-12, 0, 0, 0, 1e-12, 0, 0, 0, 1e-12],
      horizon: 8,
      control_precision: 0.5,
      goal_precision: 100,
    });
    const x1 = [0.5, -1, 2];
    const g = [1, 0, -1];
    const { u } = infer(args, x1, g);
    const expected = lqr(new Matrix([a.slice(0, 3), a.slice(3, 6), a.slice(6)]), new Matrix([b.slice(0, 2), b.slice(2, 4), b.slice(4)]), Matrix.eye(2).mul(0.5), Matrix.eye(3).mul(100), g, x1, 8);
    expect(relativeError(u, expected[0]!)).toBeLessThan(1e-8);
  });

  it("at the goal (at rest) applies zero control and plans to stay there", () => {
    const args = withArgs();
    const { u, planned, controls } = infer(args, [0.7, 0], [0.7, 0]);
    // The estimate differs from y only by the Kalman gain's 1e-16 shortfall from 1.
    expect(Math.abs(u[0]!)).toBeLessThan(1e-12);
    for (const v of controls.mean) expect(Math.abs(v)).toBeLessThan(1e-12);
    for (let t = 0; t < args.horizon; t++) {
      expect(planned.values[2 * t]!).toBeCloseTo(0.7, 12);
      expect(planned.values[2 * t + 1]!).toBeCloseTo(0, 12);
    }
  });

  it("the planned final state approaches the goal as the goal precision grows", () => {
    const goal = [1, 0];
    const distances = [1, 1e2, 1e4, 1e6, 1e8].map((goal_precision) => {
      const { planned } = infer(withArgs({ goal_precision }), [0, 0], goal);
      const last = planned.values.slice(-2);
      return Math.hypot(last[0]! - goal[0]!, last[1]! - goal[1]!);
    });
    for (let i = 1; i < distances.length; i++) expect(distances[i]!).toBeLessThan(distances[i - 1]!);
    expect(distances[0]!).toBeGreaterThan(0.5);
    expect(distances.at(-1)!).toBeLessThan(1e-4);
  });

  it("returns a joint control posterior whose covariance shrinks below the prior along the goal's directions", () => {
    const args = withArgs();
    const { controls } = infer(args, [0, 0], [1, 0]);
    const hm = args.horizon;
    expect(controls.mean).toHaveLength(hm);
    expect(controls.covariance).toHaveLength(hm * hm);
    for (let i = 0; i < hm; i++) {
      const v = controls.covariance[i * hm + i]!;
      expect(v).toBeGreaterThan(0);
      expect(v).toBeLessThan(1);
      for (let j = 0; j < i; j++) expect(controls.covariance[i * hm + j]).toBe(controls.covariance[j * hm + i]);
    }
  });

  it("process noise discounts the goal (control as inference): a smaller first control than the noise-free plan", () => {
    const noiseFree = infer(withArgs({ process_noise: [0, 0, 0, 0] }), [0, 0], [1, 0]).u[0]!;
    const noisy = infer(withArgs({ process_noise: [1e-3, 0, 0, 1e-3] }), [0, 0], [1, 0]).u[0]!;
    expect(noisy).toBeGreaterThan(0);
    expect(noisy).toBeLessThan(0.9 * noiseFree);
  });

  it("keeps a Kalman belief: observing position only, the closed loop infers velocity and settles at the goal", () => {
    const args = withArgs({ output_dimension: 1, C: [1, 0], observation_noise: [1e-6], initial_variance: 1 });
    let x = [0, 0.5];
    let state = linearControl.initialState(args);
    let last: ReturnType<typeof infer> | undefined;
    for (let step = 0; step < 100; step++) {
      last = infer(args, [x[0]!], [1, 0], state);
      state = last.state;
      const u = last.u[0]!;
      x = [x[0]! + 0.1 * x[1]! + 0.005 * u, x[1]! + 0.1 * u];
    }
    // The velocity was never observed, yet the belief tracks it.
    expect(Math.abs(last!.belief.mean[1]! - x[1]!) ).toBeLessThan(1e-3);
    expect(Math.abs(x[0]! - 1)).toBeLessThan(1e-2);
    expect(state.decisions).toBe(100);
  });

  it("learning changes nothing", () => {
    const args = withArgs();
    const out = linearControl.learn({ arguments: args, prior: {}, state: linearControl.initialState(args), events: [{ y: vec([1, 0]) }], seed: 0, options: {} });
    expect(out.parameters).toEqual({});
    expect(out.state).toBeUndefined();
    expect(linearControl.parameterPosteriors({})).toEqual({});
  });
});
