import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { expectFailure } from "../support/assertions.ts";
import { inMemoryApp } from "../support/harness.ts";

let app: Awaited<ReturnType<typeof inMemoryApp>>;
beforeAll(async () => {
  app = await inMemoryApp();
});
afterAll(() => app.close());

const MODEL = "drone-3d-v1";
const vec = (...v: number[]) => ({ shape: [v.length], values: v });
const at = (x: number, y: number, z: number) => vec(x, y, z, 0, 0, 0, 0, 0, 0, 0, 0, 0);

describe("drone-3d-v1 through the API", () => {
  it("creates with defaults and plans hover at the target, and a climb towards a target above", async () => {
    const id = (await app.models.createInstance({ model: MODEL, arguments: {} })).instance!.instanceId;
    const hover = await app.inference.infer({ instanceId: id, observation: { current_state: at(0, 0, 1) }, goal: { target: vec(0, 0, 1) } });
    expect(hover.actions.u!.values).toEqual([2.4525, 2.4525, 2.4525, 2.4525]);
    expect(hover.values.next_state!.values).toEqual(at(0, 0, 1).values);

    const climb = await app.inference.infer({ instanceId: id, observation: { current_state: at(0, 0, 0) }, goal: { target: vec(0, 0, 1) }, arguments: { horizon: 20 } });
    expect(climb.actions.forces!.shape).toEqual([20, 4]);
    expect(climb.values.planned_states!.shape).toEqual([21, 12]);
    expect(climb.posteriors.next_forces?.kind.case).toBe("mvNormal");
    // A one-second plan needs more force per unit of height than the default two seconds, so the soft goal leaves it shorter.
    const end = climb.values.planned_states!.values[20 * 12 + 2]!;
    expect(end).toBeGreaterThan(0.6);
    expect(end).toBeLessThan(0.7);
  });

  it("rejects bad input with the reason and the field", async () => {
    await expectFailure(app.models.createInstance({ model: MODEL, arguments: { inertia: 1 } }), Code.InvalidArgument, "ARGUMENTS_NOT_VALID", "arguments.inertia");
    const id = (await app.models.createInstance({ model: MODEL, arguments: {} })).instance!.instanceId;
    await expectFailure(app.inference.infer({ instanceId: id, observation: { current_state: at(0, 0, 0) } }), Code.InvalidArgument, "DATA_INCOMPLETE", "goal.target");
    await expectFailure(
      app.inference.infer({ instanceId: id, observation: { current_state: vec(0, 0, 0) }, goal: { target: vec(0, 0, 1) } }),
      Code.InvalidArgument,
      "DATA_LAYOUT_NOT_COMPATIBLE",
      "observation.current_state",
    );
  });
});
