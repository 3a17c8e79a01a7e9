import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { InferResponse } from "../../gen/posterior/v1/inference_service_pb.ts";
import type { Distribution } from "../../gen/posterior/v1/values_pb.ts";
import { deriveSeed } from "../../src/math/random.ts";
import { expectFailure, testRandom } from "../support/assertions.ts";
import { inMemoryApp, tensor } from "../support/harness.ts";

let app: Awaited<ReturnType<typeof inMemoryApp>>;
beforeAll(async () => {
  app = await inMemoryApp();
});
afterAll(() => app.close());

type JsonArgs = Record<string, number | boolean>;

const create = async (args: JsonArgs = {}, seed?: number) =>
  (await app.models.createInstance({ model: "contextual-bandits-v1", arguments: args, seed })).instance!.instanceId;

/** A context vector with its shape, so that a one-element context is a vector, not a scalar. */
const context = (...values: number[]) => ({ shape: [values.length], values });

const decision = (r: InferResponse) => ({
  arm: r.actions.arm!.values[0]!,
  propensity: r.values.propensity!.values[0]!,
  probabilities: r.values.arm_probabilities!.values,
  rewards: r.values.sampled_rewards!.values,
  seed: r.seed,
});

const factorsOf = (d: Distribution | undefined) => {
  if (d?.kind.case !== "product") throw new Error(`expected a product, got ${d?.kind.case}`);
  return d.kind.value.factors;
};

describe("contextual-bandits-v1 decisions through the API", () => {
  it("gives the same arm for the same decision index, stored or not, on any instance with the same seed", async () => {
    const id = await create({}, 42);
    const ask = (instanceId: string, storeEvent: boolean, decisionIndex = 7n) =>
      app.inference.infer({ instanceId, observation: { context: context(0.3, -0.2) }, decisionIndex, storeEvent }).then(decision);
    const first = await ask(id, false);
    expect(first.seed).not.toBe(0);
    expect(first.seed).toBe(deriveSeed(42, "default", 7));
    expect(await ask(id, true)).toEqual(first);
    expect(await ask(id, true)).toEqual(first);
    // A "replica": another instance created with the same seed decides identically.
    expect(await ask(await create({}, 42), false)).toEqual(first);
    // Other decision indices get other seeds.
    const seeds = await Promise.all([1n, 2n, 3n, 4n, 5n, 6n, 8n].map(async (i) => (await ask(id, false, i)).seed));
    expect(new Set([...seeds, first.seed]).size).toBe(8);
    expect(seeds.every((s) => s !== 0)).toBe(true);
  });

  it("numbers decisions by the episode's next event when no index is given", async () => {
    const id = await create({}, 9);
    const seeds: number[] = [];
    for (let i = 0; i < 3; i++) seeds.push((await app.inference.infer({ instanceId: id, observation: { context: context(1, 2) } })).seed);
    expect(seeds).toEqual([1, 2, 3].map((i) => deriveSeed(9, "default", i)));
  });

  it("lets a call override propensity_draws, which changes the estimate's precision but not the arm", async () => {
    const id = await create({}, 5);
    const ask = (args: JsonArgs) =>
      app.inference
        .infer({ instanceId: id, observation: { context: context(0, 1) }, decisionIndex: 3n, storeEvent: false, arguments: args })
        .then(decision);
    const standard = await ask({});
    const precise = await ask({ propensity_draws: 20000 });
    expect([precise.arm, precise.rewards]).toEqual([standard.arm, standard.rewards]);
    // Fresh instance: symmetric arms, so every probability is 1/3 up to Monte-Carlo error (4 standard errors).
    for (const p of precise.probabilities) expect(Math.abs(p - 1 / 3)).toBeLessThan(4 * Math.sqrt((2 / 9) / 20001));
    await expectFailure(ask({ propensity_draws: 50 }), Code.InvalidArgument, "ARGUMENTS_NOT_VALID", "arguments.propensity_draws");
    await expectFailure(ask({ n_arms: 4 }), Code.InvalidArgument, "ARGUMENTS_NOT_VALID", "arguments.n_arms");
  });
});

describe("contextual-bandits-v1 reference behaviour (RxInferServer ContextualBandits-v1 checks, 0-based arms)", () => {
  it("fresh instances (dims 1, 2, 5; arms 2, 5, 10) can infer before any learning", async () => {
    for (const d of [1, 2, 5]) {
      for (const k of [2, 5, 10]) {
        const id = await create({ context_dim: d, n_arms: k, propensity_draws: 100 });
        const values = Array.from({ length: d }, (_, i) => i - 1);
        const r = await app.inference.infer({ instanceId: id, observation: { context: context(...values) }, storeEvent: false });
        const { arm, rewards, probabilities } = decision(r);
        expect(Number.isInteger(arm) && arm >= 0 && arm < k).toBe(true);
        expect(rewards).toHaveLength(k);
        expect(probabilities).toHaveLength(k);
        expect(rewards[arm]).toBe(Math.max(...rewards));
        expect(factorsOf(r.posteriors.expected_reward).map((f) => f.kind.case)).toEqual(Array(k).fill("studentT"));
      }
    }
  });

  it("learns from ε-greedy play (10% exploration, reward sd 0.1) and keeps choosing the argmax of its draws", async () => {
    for (const [d, k, rounds] of [
      [2, 3, 50],
      [3, 4, 100],
    ] as const) {
      const id = await create({ context_dim: d, n_arms: k, propensity_draws: 100 });
      const rand = testRandom(100 * d + k);
      const normal = () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
      const theta = Array.from({ length: k }, () => Array.from({ length: d + 1 }, normal));
      const events = [];
      for (let round = 0; round < rounds; round++) {
        const c = Array.from({ length: d }, normal);
        const r = decision(await app.inference.infer({ instanceId: id, observation: { context: context(...c) }, storeEvent: false }));
        expect(r.rewards[r.arm]).toBe(Math.max(...r.rewards));
        const arm = rand() < 0.1 ? Math.floor(rand() * k) : r.arm;
        const mean = theta[arm]![0]! + c.reduce((s, x, j) => s + x * theta[arm]![j + 1]!, 0);
        events.push({ data: { context: context(...c), arm: tensor(arm), reward: tensor(mean + 0.1 * normal()) } });
        if (events.length === 25) {
          await app.models.attachEvents({ instanceId: id, events: events.splice(0) });
          const { run } = await app.learning.learn({ instanceId: id, wait: true });
          expect(run?.metrics?.dataPoints).toBe(25n);
        }
      }
      const { parameters } = await app.models.getParameters({ instanceId: id });
      expect(Object.keys(parameters).sort()).toEqual(["noise_precision", "weights"]);
      expect(factorsOf(parameters.weights).map((f) => f.kind.case)).toEqual(Array(k).fill("mvNormal"));
      const shapes = factorsOf(parameters.noise_precision).map((f) => (f.kind.case === "gamma" ? f.kind.value.shape : Number.NaN));
      // Each arm's noise shape grew by half its number of plays; all plays together are the rounds.
      expect(shapes.reduce((s, a) => s + 2 * (a - 1), 0)).toBeCloseTo(rounds, 9);
    }
  });
});

describe("contextual-bandits-v1 events and learning through the API", () => {
  it("learns from (context, arm, reward) events and skips the stored infer observations", async () => {
    const id = await create({}, 1);
    for (let i = 0; i < 3; i++) await app.inference.infer({ instanceId: id, observation: { context: context(i, 0) } });
    const rand = testRandom(3);
    const events = Array.from({ length: 30 }, () => ({
      data: { context: context(rand(), rand()), arm: tensor(Math.floor(rand() * 3)), reward: tensor(rand()) },
    }));
    await app.models.attachEvents({ instanceId: id, events });
    const { run } = await app.learning.learn({ instanceId: id, wait: true });
    expect(run?.metrics?.dataPoints).toBe(30n);
    expect(run?.metrics?.values).toEqual({ skipped_events: 3 });
    // Relearning starts from the prior and gives the same posterior (exact conjugate learning).
    const before = (await app.models.getParameters({ instanceId: id })).parameters;
    await app.learning.learn({ instanceId: id, wait: true, relearn: true });
    const after = (await app.models.getParameters({ instanceId: id })).parameters;
    const means = (p: typeof before) => factorsOf(p.weights).map((f) => (f.kind.case === "mvNormal" ? f.kind.value.mean : []));
    means(after).forEach((m, k) => m.forEach((v, j) => expect(v).toBeCloseTo(means(before)[k]![j]!, 10)));
  });

  it("rejects an arm out of range, an arm without a reward, a wrong context length and bad arguments", async () => {
    const id = await create();
    const attach = (data: Record<string, { shape?: number[]; values: number[] }>) => app.models.attachEvents({ instanceId: id, events: [{ data }] });
    await expectFailure(
      attach({ context: context(0, 1), arm: tensor(3), reward: tensor(1) }),
      Code.InvalidArgument,
      "DATA_NOT_VALID",
      "events[0].data.arm",
    );
    await expectFailure(attach({ context: context(0, 1), arm: tensor(1) }), Code.InvalidArgument, "DATA_INCOMPLETE", "events[0].data.reward");
    await expectFailure(attach({ context: context(0, 1), reward: tensor(1) }), Code.InvalidArgument, "DATA_INCOMPLETE", "events[0].data.arm");
    await expectFailure(
      attach({ context: context(0, 1, 2), arm: tensor(0), reward: tensor(1) }),
      Code.InvalidArgument,
      "DATA_LAYOUT_NOT_COMPATIBLE",
      "events[0].data.context",
    );
    await expectFailure(
      app.inference.infer({ instanceId: id, observation: { context: context(1) } }),
      Code.InvalidArgument,
      "DATA_LAYOUT_NOT_COMPATIBLE",
      "observation.context",
    );
    await expectFailure(app.inference.infer({ instanceId: id, observation: {} }), Code.InvalidArgument, "DATA_INCOMPLETE", "observation.context");
    expect((await app.models.getEpisode({ instanceId: id, name: "default" })).episode?.eventCount).toBe(0n);
    for (const [args, field] of [
      [{ n_arms: 1 }, "arguments.n_arms"],
      [{ context_dim: 0 }, "arguments.context_dim"],
      [{ n_arms: 2.5 }, "arguments.n_arms"],
      [{ noise_rate: 0 }, "arguments.noise_rate"],
      [{ propensity_draws: 200000 }, "arguments.propensity_draws"],
    ] as const) {
      await expectFailure(
        app.models.createInstance({ model: "contextual-bandits-v1", arguments: args }),
        Code.InvalidArgument,
        "ARGUMENTS_NOT_VALID",
        field,
      );
    }
  });

  it("publishes its schema: defaults for every argument, stochastic, the outputs", async () => {
    const { modelType } = await app.models.getModelType({ name: "contextual-bandits-v1" });
    expect(modelType?.stochastic).toBe(true);
    expect(modelType?.arguments.map((a) => [a.name, a.defaultValue?.kind.value])).toEqual([
      ["n_arms", 3],
      ["context_dim", 2],
      ["intercept", true],
      ["prior_precision", 1],
      ["noise_shape", 1],
      ["noise_rate", 1],
      ["propensity_draws", 1000],
    ]);
    expect(modelType?.outputs.map((o) => o.name)).toEqual(["arm", "propensity", "arm_probabilities", "sampled_rewards", "expected_reward"]);
  });
});
