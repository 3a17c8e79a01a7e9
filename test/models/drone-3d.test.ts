import { describe, expect, it } from "vitest";
import type { Tensor } from "../../src/math/tensor.ts";
import { drone3d, planDrone, transition } from "../../src/models/drone-3d/index.ts";
import type { JsonObject } from "../../src/models/types.ts";
import { resolveModelArguments, resolveShape, validateFields } from "../../src/models/validation.ts";

type Args = Parameters<typeof drone3d.initialParameters>[0];

const withArgs = (given: JsonObject = {}): Args => {
  const { arguments: args, violations } = resolveModelArguments(drone3d, given);
  expect(violations).toEqual([]);
  return args as unknown as Args;
};
const vec = (v: number[]): Tensor => ({ shape: [v.length], values: v });
const state = (position: number[] = [0, 0, 0]) => [...position, 0, 0, 0, 0, 0, 0, 0, 0, 0];

const infer = (args: Args, current: number[], target: number[]) =>
  drone3d.infer({ arguments: args, parameters: {}, state: {}, observation: { current_state: vec(current) }, goal: { target: vec(target) }, seed: 0, decisionIndex: 1 });

describe("drone-3d-v1 dynamics (the reference's state_transition_3d)", () => {
  const args = withArgs();
  const dt = 0.05;

  it("has defaults for every argument and valid examples", () => {
    expect(args.inertia).toEqual([1, 1, 1]);
    for (const kind of ["observation", "goal", "event"] as const) {
      const specs = drone3d.schema[kind];
      const fields = Object.fromEntries(specs.map((s) => [s.name, { shape: resolveShape(s.shape, args as unknown as JsonObject), values: [...s.example] }]));
      expect(validateFields(specs, fields, args as unknown as JsonObject, kind)).toEqual([]);
    }
    expect(resolveModelArguments(drone3d, { inertia: [1, 1] }).violations.map((v) => v.field)).toEqual(["arguments.inertia"]);
  });

  it("hover thrust m·g/4 per rotor is a fixed point", () => {
    expect(Array.from(transition(args, state([1, 2, 3]), [2.4525, 2.4525, 2.4525, 2.4525]))).toEqual(state([1, 2, 3]));
  });

  it("clamps each rotor force to [0, force_limit]", () => {
    // 4·15 N of thrust instead of 4·20 N.
    const az = 60 - 9.81;
    const next = transition(args, state(), [20, 20, 20, 20]);
    expect(next[2]).toBeCloseTo((az * dt * dt) / 2, 14);
    expect(next[5]).toBeCloseTo(az * dt, 14);
    // Negative forces are no thrust: free fall.
    expect(transition(args, state(), [-1, -1, -1, -1])[5]).toBeCloseTo(-9.81 * dt, 14);
  });

  it("turns rotor differences into torques L(F2−F4), L(F1−F3), r(F1+F3−F2−F4)", () => {
    const next = transition(withArgs({ inertia: [2, 4, 0.5] }), state(), [3, 2, 1, 2]);
    // τ = [0, 0.5·2, 0.2·0] = [0, 1, 0]; α = [0, 1/4, 0].
    expect(next[7]).toBeCloseTo((0.25 * dt * dt) / 2, 15);
    expect(next[10]).toBeCloseTo(0.25 * dt, 15);
    expect(next[6]).toBe(0);
    expect(next[8]).toBe(0);
    const yaw = transition(args, state(), [3, 2, 3, 2]);
    expect(yaw[11]).toBeCloseTo(0.2 * 2 * dt, 15);
  });

  it("tilting by pitch θ sends thrust along +x (R = Rz Ry Rx)", () => {
    const theta = 0.3;
    const s = state();
    s[7] = theta;
    const next = transition(args, s, [3, 3, 3, 3]);
    expect(next[3]).toBeCloseTo(12 * Math.sin(theta) * dt, 14);
    expect(next[5]).toBeCloseTo((12 * Math.cos(theta) - 9.81) * dt, 14);
  });
});

describe("drone-3d-v1 planning", () => {
  const args = withArgs();

  it("a drone hovering at the target stays there at hover thrust", () => {
    const out = infer(args, state([1, 2, 3]), [1, 2, 3]);
    expect(out.actions!.u!.values).toEqual([2.4525, 2.4525, 2.4525, 2.4525]);
    expect(new Set(out.actions!.forces!.values)).toEqual(new Set([2.4525]));
    expect(out.values!.next_state!.values).toEqual(state([1, 2, 3]));
    expect(out.values!.cost!.values).toEqual([0]);
  });

  it("plans from rest towards a target above, ending short by the soft goal's trade-off", () => {
    const out = infer(args, state(), [0, 0, 1]);
    const planned = out.values!.planned_states!;
    expect(planned.shape).toEqual([41, 12]);
    const final = planned.values.slice(40 * 12, 40 * 12 + 3);
    expect(Math.abs(final[0]!)).toBeLessThan(1e-9);
    expect(final[2]!).toBeGreaterThan(0.9);
    expect(final[2]!).toBeLessThan(1);
    // Climbing needs more than hover thrust first.
    for (const f of out.actions!.u!.values) expect(f).toBeGreaterThan(2.4525);
    expect(out.actions!.forces!.shape).toEqual([40, 4]);
  });

  it("Gauss–Newton decreases the MAP cost monotonically on a lateral target", () => {
    const { costs } = planDrone(args, new Float64Array(12), [1, -1, 2]);
    expect(costs.length).toBeGreaterThan(2);
    for (let i = 1; i < costs.length; i++) expect(costs[i]!).toBeLessThan(costs[i - 1]!);
    expect(costs.at(-1)!).toBeLessThan(0.2 * costs[0]!);
  });

  it("in a receding-horizon loop, reaches a target up and to the side", { timeout: 30_000 }, () => {
    let s = state();
    for (let k = 0; k < 80; k++) {
      const out = infer(args, s, [1, 0, 1]);
      s = [...out.values!.next_state!.values];
    }
    expect(Math.hypot(s[0]! - 1, s[1]!, s[2]! - 1)).toBeLessThan(0.02);
    expect(Math.hypot(s[3]!, s[4]!, s[5]!)).toBeLessThan(0.1);
  });

  it("reports a Laplace posterior of the next forces tighter than the prior", () => {
    const out = infer(args, state(), [0, 0, 1]);
    const post = out.posteriors!.next_forces!;
    if (post.kind !== "mvNormal") throw new Error("expected mvNormal");
    expect(post.mean).toEqual(out.actions!.u!.values);
    for (let i = 0; i < 4; i++) {
      expect(post.covariance[i * 5]!).toBeGreaterThan(0);
      expect(post.covariance[i * 5]!).toBeLessThan(0.1);
    }
  });
});
