import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { InferResponse } from "../../gen/posterior/v1/inference_service_pb.ts";
import { deriveSeed, Random } from "../../src/math/random.ts";
import { expectFailure, testRandom } from "../support/assertions.ts";
import { inMemoryApp, tensor } from "../support/harness.ts";

let app: Awaited<ReturnType<typeof inMemoryApp>>;
beforeAll(async () => {
  app = await inMemoryApp();
});
afterAll(() => app.close());

const create = async (args: Record<string, number> = {}, seed?: number) =>
  (await app.models.createInstance({ model: "mhealth-thompson-v1", arguments: args, seed })).instance!.instanceId;

const state = (...values: number[]) => ({ shape: [values.length], values });

const decision = (r: InferResponse) => ({
  action: r.actions.action!.values[0]!,
  probability: r.values.action_probability!.values[0]!,
  warmup: r.values.warmup!.values[0]!,
  decisionIndex: r.values.decision_index!.values[0]!,
  state: r.values.state!.values,
  seed: r.seed,
});

describe("mhealth-thompson-v1 through the API", () => {
  it("is idempotent per (episode, decision index): the same action with or without storing the event", async () => {
    const id = await create({}, 2024);
    await app.models.createEpisode({ instanceId: id, name: "user-1" });
    const ask = (decisionIndex: bigint, storeEvent: boolean, episode = "user-1") =>
      app.inference.infer({ instanceId: id, episode, observation: { state: state(0.4, -1.2) }, decisionIndex, storeEvent }).then(decision);
    for (const index of [0n, 1n, 17n, 2n ** 40n]) {
      const unstored = await ask(index, false);
      const stored = await ask(index, true);
      const again = await ask(index, true);
      expect(stored).toEqual(unstored);
      expect(again).toEqual(unstored);
      expect(unstored.seed).toBe(deriveSeed(2024, "user-1", Number(index)));
      expect(unstored.seed).not.toBe(0);
      expect(unstored.decisionIndex).toBe(Number(index));
      expect(unstored.state).toEqual([0.4, -1.2]);
      // The action is the first uniform of the decision's stream against π.
      expect(unstored.action).toBe(new Random(unstored.seed).nextDouble() < unstored.probability ? 1 : 0);
    }
    // Another participant's decision with the same index has its own seed.
    expect((await ask(1n, false, "default")).seed).toBe(deriveSeed(2024, "default", 1));
    expect(deriveSeed(2024, "default", 1)).not.toBe(deriveSeed(2024, "user-1", 1));
  });

  it("runs the JustIn loop: action → upload outcome (with the stored π) → update, and the policy adapts", async () => {
    const id = await create({}, 77);
    const rand = testRandom(77);
    const normal = () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
    let sent = 0;
    for (let day = 0; day < 6; day++) {
      const uploads = [];
      for (let slot = 0; slot < 40; slot++) {
        const decisionIndex = BigInt(day * 40 + slot);
        const s = [normal(), normal()];
        const d = decision(await app.inference.infer({ instanceId: id, observation: { state: state(...s) }, decisionIndex }));
        sent += d.action;
        // Sending helps when s₀ > 0: advantage 1.5·s₀.
        const reward = 1 + 0.5 * s[1]! + d.action * 1.5 * s[0]! + 0.5 * normal();
        uploads.push({
          data: { state: state(...s), action: tensor(d.action), action_probability: tensor(d.probability), reward: tensor(reward) },
        });
      }
      await app.models.attachEvents({ instanceId: id, events: uploads });
      const { run } = await app.learning.learn({ instanceId: id, wait: true });
      expect(run?.metrics?.dataPoints).toBe(40n);
      expect(run?.metrics?.values).toEqual({ skipped_events: 40 }); // the stored decisions (state only)
    }
    expect(sent).toBeGreaterThan(0);
    const { parameters } = await app.models.getParameters({ instanceId: id });
    expect(Object.keys(parameters).sort()).toEqual(["alpha_0", "alpha_1", "beta", "noise_precision"]);
    const beta = parameters.beta?.kind;
    if (beta?.case !== "mvNormal") throw new Error("expected mvNormal β");
    const sd = (i: number) => Math.sqrt(beta.value.covariance[i * 3 + i]!);
    [0, 1.5, 0].forEach((truth, i) => expect(Math.abs(beta.value.mean[i]! - truth)).toBeLessThan(4 * sd(i)));
    const ask = async (s: number[]) =>
      decision(await app.inference.infer({ instanceId: id, observation: { state: state(...s) }, decisionIndex: 10_000n, storeEvent: false }));
    expect((await ask([2, 0])).probability).toBe(0.8);
    expect((await ask([-2, 0])).probability).toBe(0.1);
  });

  it("warms up with the fixed probability for the first decisions the server numbers (1, 2, …)", async () => {
    const id = await create({ warmup_decisions: 2, warmup_probability: 0.3 }, 3);
    const out = [];
    for (let i = 0; i < 3; i++) out.push(decision(await app.inference.infer({ instanceId: id, observation: { state: state(1, 1) } })));
    expect(out.map((d) => [d.decisionIndex, d.warmup])).toEqual([
      [1, 1],
      [2, 1],
      [3, 0],
    ]);
    expect(out.map((d) => d.probability)).toEqual([0.3, 0.3, 0.5]);
  });

  it("rejects incomplete or invalid outcomes, wrong states and inconsistent clip bounds", async () => {
    const id = await create();
    const attach = (data: Record<string, { shape?: number[]; values: number[] }>) => app.models.attachEvents({ instanceId: id, events: [{ data }] });
    const complete = { state: state(0, 1), action: tensor(1), action_probability: tensor(0.5), reward: tensor(2) };
    await expectFailure(attach({ ...complete, action_probability: tensor(1) }), Code.InvalidArgument, "DATA_NOT_VALID", "events[0].data.action_probability");
    await expectFailure(attach({ ...complete, action_probability: tensor(0) }), Code.InvalidArgument, "DATA_NOT_VALID", "events[0].data.action_probability");
    await expectFailure(attach({ ...complete, action: tensor(2) }), Code.InvalidArgument, "DATA_NOT_VALID", "events[0].data.action");
    const { reward: _reward, ...withoutReward } = complete;
    await expectFailure(attach(withoutReward), Code.InvalidArgument, "DATA_INCOMPLETE", "events[0].data.reward");
    await expectFailure(attach({ ...complete, state: state(1) }), Code.InvalidArgument, "DATA_LAYOUT_NOT_COMPATIBLE", "events[0].data.state");
    await expectFailure(
      app.inference.infer({ instanceId: id, observation: { state: state(1, 2, 3) } }),
      Code.InvalidArgument,
      "DATA_LAYOUT_NOT_COMPATIBLE",
      "observation.state",
    );
    expect((await app.models.getEpisode({ instanceId: id, name: "default" })).episode?.eventCount).toBe(0n);
    for (const [args, field] of [
      [{ p_min: 0.6 }, "arguments.p_min"],
      [{ p_max: 0.5 }, "arguments.p_max"],
      [{ p_max: 1 }, "arguments.p_max"],
      [{ p_min: 0 }, "arguments.p_min"],
      [{ warmup_decisions: -1 }, "arguments.warmup_decisions"],
      [{ warmup_probability: 1 }, "arguments.warmup_probability"],
      [{ state_dim: 0 }, "arguments.state_dim"],
    ] as const) {
      await expectFailure(app.models.createInstance({ model: "mhealth-thompson-v1", arguments: args }), Code.InvalidArgument, "ARGUMENTS_NOT_VALID", field);
    }
    // The clip bounds are fixed at creation: a per-call override would break idempotency.
    await expectFailure(
      app.inference.infer({ instanceId: id, observation: { state: state(0, 0) }, arguments: { p_max: 0.9 } }),
      Code.InvalidArgument,
      "ARGUMENTS_NOT_VALID",
      "arguments.p_max",
    );
  });
});
