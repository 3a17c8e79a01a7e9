import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Distribution } from "../../gen/posterior/v1/values_pb.ts";
import { scalar } from "../../src/math/tensor.ts";
import { type Arguments, hmm } from "../../src/models/hmm/index.ts";
import { expectFailure, testRandom } from "../support/assertions.ts";
import { inMemoryApp, tensor } from "../support/harness.ts";

let app: Awaited<ReturnType<typeof inMemoryApp>>;
beforeAll(async () => {
  app = await inMemoryApp();
});
afterAll(() => app.close());

const MODEL = "hmm-v1";
const DEFAULTS: Arguments = {
  states: 2,
  symbols: 3,
  initial_concentration: 1,
  transition_concentration: 1,
  emission_concentration: 1,
  iterations: 100,
  tolerance: 1e-8,
};

const create = async (seed = 42, args = {}) =>
  (await app.models.createInstance({ model: MODEL, arguments: args, seed })).instance!.instanceId;

const alphaOf = (d: Distribution | undefined): number[] => {
  if (d?.kind.case !== "dirichlet") throw new Error(`expected a Dirichlet, got ${d?.kind.case}`);
  return d.kind.value.alpha;
};
const rowsOf = (d: Distribution | undefined): number[][] => {
  if (d?.kind.case !== "product") throw new Error(`expected a product, got ${d?.kind.case}`);
  return d.kind.value.factors.map(alphaOf);
};
const probabilitiesOf = (d: Distribution | undefined): number[] => {
  if (d?.kind.case !== "categorical") throw new Error(`expected a Categorical, got ${d?.kind.case}`);
  return d.kind.value.probabilities;
};
const parameters = async (instanceId: string) => {
  const { parameters: p } = await app.models.getParameters({ instanceId });
  return { initial: alphaOf(p.initial), transition: rowsOf(p.transition), emission: rowsOf(p.emission) };
};
const infer = async (instanceId: string, y: number, start = false) => {
  const r = await app.inference.infer({ instanceId, observation: start ? { y: tensor(y), start: tensor(1) } : { y: tensor(y) } });
  return { state: probabilitiesOf(r.posteriors.state), next: probabilitiesOf(r.predictions.y), logPredictive: r.values.log_predictive?.values[0] };
};

function simulate(t: number, seed: number): number[] {
  const a = [[0.9, 0.1], [0.2, 0.8]];
  const b = [[0.7, 0.2, 0.1], [0.1, 0.2, 0.7]];
  const u = testRandom(seed);
  const pick = (p: number[]) => {
    const v = u();
    let c = 0;
    return p.findIndex((q) => (c += q) > v);
  };
  let z = pick([0.5, 0.5]);
  const ys: number[] = [];
  for (let s = 0; s < t; s++) {
    if (s > 0) z = pick(a[z]!);
    ys.push(pick(b[z]!));
  }
  return ys;
}

const mean = (row: number[]) => row.map((v) => v / row.reduce((s, x) => s + x, 0));

describe("hmm-v1 through the API", () => {
  it("learns by VB-EM with a non-increasing free energy, exactly as the model does with the instance seed", async () => {
    const id = await create(42);
    const ys = simulate(1500, 8);
    await app.models.attachEvents({ instanceId: id, events: ys.map((y) => ({ data: { y: tensor(y) } })) });
    const { run } = await app.learning.learn({ instanceId: id, wait: true });
    const f = run!.metrics!.freeEnergy;
    expect(f.length).toBeGreaterThan(2);
    expect(Number(run!.metrics!.iterations)).toBe(f.length);
    for (let i = 1; i < f.length; i++) expect(f[i]!).toBeLessThanOrEqual(f[i - 1]! + 1e-9 * Math.abs(f[i]!));

    const local = hmm.learn({
      arguments: DEFAULTS,
      prior: hmm.initialParameters(DEFAULTS, 42),
      state: hmm.initialState(DEFAULTS),
      events: ys.map((y) => ({ y: scalar(y) })),
      seed: 42,
      options: {},
    });
    expect(await parameters(id)).toEqual(local.parameters);
    const learned = await parameters(id);
    expect(learned.transition).toHaveLength(2);
    expect(learned.emission.map((r) => r.length)).toEqual([3, 3]);
  });

  it("carries the filtered belief over between infer calls: each answer is the Bayes update of the previous one", async () => {
    const id = await create(7);
    await app.models.attachEvents({ instanceId: id, events: simulate(800, 9).map((y) => ({ data: { y: tensor(y) } })) });
    await app.learning.learn({ instanceId: id, wait: true });
    const p = await parameters(id);
    const pi = mean(p.initial);
    const A = p.transition.map(mean);
    const B = p.emission.map(mean);

    let belief: number[] | undefined;
    for (const y of [2, 2, 0, 1, 0]) {
      const before = belief === undefined ? pi : [0, 1].map((j) => belief!.reduce((s, b, i) => s + b * A[i]![j]!, 0));
      const joint = before.map((q, i) => q * B[i]![y]!);
      const evidence = joint.reduce((s, v) => s + v, 0);
      const expected = joint.map((v) => v / evidence);
      const r = await infer(id, y);
      r.state.forEach((v, k) => expect(v).toBeCloseTo(expected[k]!, 12));
      expect(r.logPredictive).toBeCloseTo(Math.log(evidence), 12);
      const next = [0, 1, 2].map((s) => [0, 1].reduce((acc, j) => acc + expected.reduce((t, b, i) => t + b * A[i]![j]!, 0) * B[j]![s]!, 0));
      r.next.forEach((v, s) => expect(v).toBeCloseTo(next[s]!, 12));
      belief = expected;
    }
    // start = 1 begins a new sequence from E[π], whatever came before.
    const restarted = await infer(id, 2, true);
    const joint = pi.map((q, i) => q * B[i]![2]!);
    restarted.state.forEach((v, k) => expect(v).toBeCloseTo(joint[k]! / (joint[0]! + joint[1]!), 12));
  });

  it("reports symmetric created priors as a Dirichlet and products of Dirichlet rows", async () => {
    const id = await create(1, { states: 3, symbols: 4, transition_concentration: 0.5 });
    expect(await parameters(id)).toEqual({
      initial: [1, 1, 1],
      transition: [[0.5, 0.5, 0.5], [0.5, 0.5, 0.5], [0.5, 0.5, 0.5]],
      emission: [[1, 1, 1, 1], [1, 1, 1, 1], [1, 1, 1, 1]],
    });
  });

  it("rejects symbols out of range, non-integers, a missing y and bad arguments, naming the field, and stores nothing", async () => {
    const id = await create(3, { symbols: 4 });
    const call = (observation: Record<string, { values: number[] }>) => app.inference.infer({ instanceId: id, observation });
    await expectFailure(call({ y: tensor(4) }), Code.InvalidArgument, "DATA_NOT_VALID", "observation.y");
    await expectFailure(call({ y: tensor(1.5) }), Code.InvalidArgument, "DATA_NOT_VALID", "observation.y");
    await expectFailure(call({ y: tensor(-1) }), Code.InvalidArgument, "DATA_NOT_VALID", "observation.y");
    await expectFailure(call({ y: tensor(0), start: tensor(2) }), Code.InvalidArgument, "DATA_NOT_VALID", "observation.start");
    await expectFailure(call({}), Code.InvalidArgument, "DATA_INCOMPLETE", "observation.y");
    await expectFailure(
      app.models.attachEvents({ instanceId: id, events: [{ data: { y: tensor(1) } }, { data: { y: tensor(9) } }] }),
      Code.InvalidArgument,
      "DATA_NOT_VALID",
      "events[1].data.y",
    );
    await expectFailure(
      app.models.createInstance({ model: MODEL, arguments: { states: 0 } }),
      Code.InvalidArgument,
      "ARGUMENTS_NOT_VALID",
      "arguments.states",
    );
    await expectFailure(
      app.models.createInstance({ model: MODEL, arguments: { emission_concentration: 0 } }),
      Code.InvalidArgument,
      "ARGUMENTS_NOT_VALID",
      "arguments.emission_concentration",
    );
    expect((await app.models.getEpisode({ instanceId: id, name: "default" })).episode?.eventCount).toBe(0n);
    // The belief is untouched by the failures: the first good observation starts the sequence.
    const first = await infer(id, 3);
    expect(first.state).toEqual([0.5, 0.5]);
  });
});
