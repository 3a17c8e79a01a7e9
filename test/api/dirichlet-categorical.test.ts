import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Distribution } from "../../gen/posterior/v1/values_pb.ts";
import { expectFailure, testRandom } from "../support/assertions.ts";
import { inMemoryApp, tensor } from "../support/harness.ts";

let app: Awaited<ReturnType<typeof inMemoryApp>>;
beforeAll(async () => {
  app = await inMemoryApp();
});
afterAll(() => app.close());

const create = async (prior_alpha: number[]) =>
  (await app.models.createInstance({ model: "dirichlet-categorical-v1", arguments: { prior_alpha } })).instance!.instanceId;

const alphaOf = (d: Distribution | undefined) => {
  if (d?.kind.case !== "dirichlet") throw new Error(`expected a Dirichlet, got ${d?.kind.case}`);
  return d.kind.value.alpha;
};
const alpha = async (instanceId: string) => alphaOf((await app.models.getParameters({ instanceId })).parameters.p);
const probabilities = async (instanceId: string, observation = {}) => {
  const r = await app.inference.infer({ instanceId, observation, storeEvent: false });
  if (r.predictions.y?.kind.case !== "categorical") throw new Error("expected a Categorical prediction");
  return r.predictions.y.kind.value.probabilities;
};
const attach = (instanceId: string, categories: number[]) =>
  app.models.attachEvents({ instanceId, events: categories.map((y) => ({ data: { y: tensor(y) } })) });
const learn = (instanceId: string) => app.learning.learn({ instanceId, wait: true });

describe("dirichlet-categorical-v1 reference behaviour (RxInferServer checks; categories here are 0-based)", () => {
  it("continual learning: [7,3,2,2] then [7,7,6,4]", async () => {
    const id = await create([1, 1, 1, 1]);
    await attach(id, [1, 1, 2, 1, 3, 1, 2, 1, 4, 1].map((c) => c - 1));
    await learn(id);
    expect(await alpha(id)).toEqual([7, 3, 2, 2]);
    await attach(id, [2, 2, 3, 2, 3, 3, 4, 4, 3, 2].map((c) => c - 1));
    await learn(id);
    expect(await alpha(id)).toEqual([7, 7, 6, 4]);
  });

  it("learns exact counts, and predicts α/Σα summing to one", async () => {
    const rand = testRandom(99);
    for (const n of [500, 1000]) {
      for (const truth of [[0.2, 0.3, 0.5], [0.6, 0.2, 0.2], [1 / 3, 1 / 3, 1 / 3]]) {
        for (const prior of [[1, 1, 1], [2, 3, 4], [10, 1, 5]]) {
          const id = await create(prior);
          const ys = Array.from({ length: n }, () => {
            const u = rand();
            return u < truth[0]! ? 0 : u < truth[0]! + truth[1]! ? 1 : 2;
          });
          await attach(id, ys);
          await learn(id);
          const expected = prior.map((a, k) => a + ys.filter((y) => y === k).length);
          expect(await alpha(id)).toEqual(expected);
          const p = await probabilities(id);
          const total = expected.reduce((s, a) => s + a, 0);
          p.forEach((pk, k) => expect(pk).toBeCloseTo(expected[k]! / total, 12));
          expect(p.reduce((s, v) => s + v, 0)).toBeCloseTo(1, 6);
        }
      }
    }
  });

  it("a fresh instance predicts α/Σα", async () => {
    for (const prior of [[2, 2], [1, 1, 1], [5, 3, 2, 10]]) {
      const total = prior.reduce((s, a) => s + a, 0);
      const p = await probabilities(await create(prior));
      p.forEach((pk, k) => expect(pk).toBeCloseTo(prior[k]! / total, 12));
    }
  });
});

describe("dirichlet-categorical-v1 observations", () => {
  it("accepts an index or a one-hot (or soft) vector, the same way", async () => {
    const id = await create([1, 2, 3]);
    expect(await probabilities(id, { y: tensor(2) })).toEqual(await probabilities(id, { y_one_hot: tensor(0, 0, 1) }));
    await app.models.attachEvents({
      instanceId: id,
      events: [{ data: { y: tensor(0) } }, { data: { y_one_hot: tensor(0, 1, 0) } }, { data: { y_one_hot: tensor(0.5, 0, 0.5) } }],
    });
    const { run } = await learn(id);
    expect(await alpha(id)).toEqual([2.5, 3, 3.5]);
    expect(run?.metrics?.freeEnergy).toHaveLength(1);
  });

  it("rejects categories out of range, both forms at once, unnormalised vectors and missing data", async () => {
    const id = await create([1, 1, 1]);
    const infer = (observation: Record<string, { values: number[] }>) => app.inference.infer({ instanceId: id, observation });
    await expectFailure(infer({ y: tensor(3) }), Code.InvalidArgument, "DATA_NOT_VALID", "observation.y");
    await expectFailure(infer({ y: tensor(1.5) }), Code.InvalidArgument, "DATA_NOT_VALID", "observation.y");
    await expectFailure(infer({ y_one_hot: tensor(1, 1, 0) }), Code.InvalidArgument, "DATA_NOT_VALID", "observation.y_one_hot");
    await expectFailure(infer({ y_one_hot: tensor(1, 0) }), Code.InvalidArgument, "DATA_LAYOUT_NOT_COMPATIBLE", "observation.y_one_hot");
    await expectFailure(
      infer({ y: tensor(0), y_one_hot: tensor(1, 0, 0) }),
      Code.InvalidArgument,
      "DATA_LAYOUT_NOT_COMPATIBLE",
      "observation.y_one_hot",
    );
    await expectFailure(
      app.models.attachEvents({ instanceId: id, events: [{ data: {} }] }),
      Code.InvalidArgument,
      "DATA_INCOMPLETE",
      "events[0].data.y",
    );
    await expectFailure(
      app.models.createInstance({ model: "dirichlet-categorical-v1", arguments: { prior_alpha: [1, 0] } }),
      Code.InvalidArgument,
      "ARGUMENTS_NOT_VALID",
      "arguments.prior_alpha",
    );
    expect((await app.models.getEpisode({ instanceId: id, name: "default" })).episode?.eventCount).toBe(0n);
  });
});
