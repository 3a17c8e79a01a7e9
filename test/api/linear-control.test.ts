import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Distribution } from "../../gen/posterior/v1/values_pb.ts";
import { expectFailure } from "../support/assertions.ts";
import { inMemoryApp } from "../support/harness.ts";

let app: Awaited<ReturnType<typeof inMemoryApp>>;
beforeAll(async () => {
  app = await inMemoryApp();
});
afterAll(() => app.close());

const MODEL = "linear-control-v1";
type ArgValue = number | number[];

const create = async (args: Record<string, ArgValue> = {}) =>
  (await app.models.createInstance({ model: MODEL, arguments: args })).instance!.instanceId;
const vec = (...v: number[]) => ({ shape: [v.length], values: v });

function mvNormal(d: Distribution | undefined) {
  if (d?.kind.case !== "mvNormal") throw new Error(`expected mvNormal, got ${d?.kind.case}`);
  return d.kind.value;
}

const infer = async (instanceId: string, y: number[], goal: number[], args: Record<string, ArgValue> = {}) => {
  const r = await app.inference.infer({ instanceId, observation: { y: vec(...y) }, goal: { x_final: vec(...goal) }, arguments: args });
  return {
    u: r.actions.u!,
    planned: r.values.planned_states!,
    controls: mvNormal(r.posteriors.controls),
    state: mvNormal(r.posteriors.state),
  };
};

describe("linear-control-v1 through the API", () => {
  it("creates with defaults, plans from an observation to a goal and returns actions, posteriors and planned states", async () => {
    const id = await create();
    const { u, planned, controls, state } = await infer(id, [0, 0], [1, 0]);
    expect(u.values).toHaveLength(1);
    // Pushing towards a goal ahead: accelerate forward.
    expect(u.values[0]!).toBeGreaterThan(0);
    expect(u.values[0]).toBe(controls.mean[0]);
    expect(controls.mean).toHaveLength(20);
    expect(controls.covariance).toHaveLength(400);
    expect(planned.shape).toEqual([20, 2]);
    expect(planned.values).toHaveLength(40);
    // With the default goal precision 1e4 the plan ends within a centimetre of the goal.
    expect(Math.abs(planned.values[38]! - 1)).toBeLessThan(1e-2);
    expect(Math.abs(state.mean[0]!)).toBeLessThan(1e-12);
  });

  it("overrides the horizon for one call and keeps the Kalman belief between calls", async () => {
    const id = await create();
    const first = await infer(id, [0, 0], [1, 0], { horizon: 5 });
    expect(first.controls.mean).toHaveLength(5);
    expect(first.planned.shape).toEqual([5, 2]);
    const u = first.u.values[0]!;
    // The next observation is where the applied control took the plant; the estimate agrees with it.
    const y = [0.005 * u, 0.1 * u];
    const second = await infer(id, y, [1, 0]);
    expect(second.controls.mean).toHaveLength(20);
    expect(second.state.mean[0]!).toBeCloseTo(y[0]!, 12);
    expect(second.state.mean[1]!).toBeCloseTo(y[1]!, 12);
  });

  it("learning records a run that changes nothing", async () => {
    const id = await create();
    await infer(id, [0, 0], [1, 0]);
    const run = (await app.learning.learn({ instanceId: id, wait: true })).run!;
    expect(run.metrics?.dataPoints).toBe(0n);
    expect((await app.models.getParameters({ instanceId: id })).parameters).toEqual({});
  });

  it("rejects bad input with the reason and the field", async () => {
    await expectFailure(app.models.createInstance({ model: MODEL, arguments: { A: [1, 0.1, 0] } }), Code.InvalidArgument, "ARGUMENTS_NOT_VALID", "arguments.A");
    await expectFailure(
      app.models.createInstance({ model: MODEL, arguments: { observation_noise: [1, 2, 2, 1] } }),
      Code.InvalidArgument,
      "ARGUMENTS_NOT_VALID",
      "arguments.observation_noise",
    );
    const id = await create();
    await expectFailure(app.inference.infer({ instanceId: id, observation: { y: vec(0, 0) } }), Code.InvalidArgument, "DATA_INCOMPLETE", "goal.x_final");
    await expectFailure(
      app.inference.infer({ instanceId: id, observation: { y: vec(0, 0, 0) }, goal: { x_final: vec(1, 0) } }),
      Code.InvalidArgument,
      "DATA_LAYOUT_NOT_COMPATIBLE",
      "observation.y",
    );
    await expectFailure(
      app.inference.infer({ instanceId: id, observation: { y: vec(0, 0) }, goal: { x_final: vec(1, 0) }, arguments: { A: [1, 0, 0, 1] } }),
      Code.InvalidArgument,
      "ARGUMENTS_NOT_VALID",
      "arguments.A",
    );
  });
});
