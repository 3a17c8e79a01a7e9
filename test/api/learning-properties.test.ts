// For exact conjugate models: batch A then batch B, A and B in two episodes, and a relearn of
// everything all give the posterior of learning A ∪ B at once — through the public API.
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Distribution } from "../../gen/posterior/v1/values_pb.ts";
import { inMemoryApp } from "../support/harness.ts";

let app: Awaited<ReturnType<typeof inMemoryApp>>;
beforeAll(async () => {
  app = await inMemoryApp();
});
afterAll(() => app.close());

interface ExactModel {
  readonly model: string;
  readonly arguments: fc.Arbitrary<Record<string, number | number[]>>;
  readonly event: (args: Record<string, number | number[]>) => fc.Arbitrary<Record<string, { values: number[] }>>;
}

const exactModels: ExactModel[] = [
  {
    model: "beta-bernoulli-v1",
    arguments: fc.record({ prior_a: fc.double({ min: 0.1, max: 10, noNaN: true }), prior_b: fc.double({ min: 0.1, max: 10, noNaN: true }) }),
    event: () => fc.constantFrom(0, 1).map((y) => ({ y: { values: [y] } })),
  },
  {
    model: "dirichlet-categorical-v1",
    arguments: fc.array(fc.double({ min: 0.1, max: 10, noNaN: true }), { minLength: 2, maxLength: 5 }).map((prior_alpha) => ({ prior_alpha })),
    event: (args) => fc.nat({ max: (args.prior_alpha as number[]).length - 1 }).map((y) => ({ y: { values: [y] } })),
  },
  {
    // Moderate ranges keep the reported covariance rate/(shape − 1)·Λ⁻¹ well conditioned, so that
    // the 1e-9 comparison measures the learning, not rounding amplified by a near-singular Λ.
    model: "linear-regression-v1",
    arguments: fc.record({
      input_dim: fc.integer({ min: 1, max: 2 }),
      prior_precision: fc.double({ min: 0.5, max: 10, noNaN: true }),
      noise_shape: fc.double({ min: 2, max: 10, noNaN: true }),
      noise_rate: fc.double({ min: 0.1, max: 2, noNaN: true }),
    }),
    event: (args) =>
      fc
        .record({
          x: fc.array(fc.double({ min: -2, max: 2, noNaN: true }), { minLength: args.input_dim as number, maxLength: args.input_dim as number }),
          y: fc.double({ min: -3, max: 3, noNaN: true }),
        })
        .map(({ x, y }) => ({ x: { shape: [x.length], values: x }, y: { values: [y] } })),
  },
];

const numbers = (d: Distribution | undefined): number[] => Object.values(d?.kind.value ?? {}).flat().filter((v) => typeof v === "number");

async function posteriorAfter(model: string, args: Record<string, unknown>, plan: (id: string) => Promise<void>) {
  const { instance } = await app.models.createInstance({ model, arguments: args as never });
  await plan(instance!.instanceId);
  const { parameters } = await app.models.getParameters({ instanceId: instance!.instanceId });
  return Object.fromEntries(Object.entries(parameters).map(([k, d]) => [k, numbers(d)]));
}

const attach = (instanceId: string, events: Array<Record<string, { values: number[] }>>, episode = "default") =>
  events.length > 0 ? app.models.attachEvents({ instanceId, episode, events: events.map((data) => ({ data })) }) : undefined;
const learn = (instanceId: string, relearn = false) => app.learning.learn({ instanceId, wait: true, relearn });

describe.each(exactModels)("$model learns exactly", ({ model, arguments: argumentsArb, event }) => {
  it("in any split, across episodes, and on relearn", async () => {
    const scenario = argumentsArb.chain((args) =>
      fc.record({ args: fc.constant(args), a: fc.array(event(args), { maxLength: 20 }), b: fc.array(event(args), { maxLength: 20 }) }),
    );
    await fc.assert(
      fc.asyncProperty(scenario, async ({ args, a, b }) => {
        const together = await posteriorAfter(model, args, async (id) => {
          await attach(id, [...a, ...b]);
          await learn(id);
        });
        const sequential = await posteriorAfter(model, args, async (id) => {
          await attach(id, a);
          await learn(id);
          await attach(id, b);
          await learn(id);
        });
        const episodes = await posteriorAfter(model, args, async (id) => {
          await app.models.createEpisode({ instanceId: id, name: "second" });
          await attach(id, a);
          await attach(id, b, "second");
          await learn(id);
        });
        const relearned = await posteriorAfter(model, args, async (id) => {
          await attach(id, a);
          await learn(id);
          await attach(id, b);
          await learn(id, true);
        });
        for (const other of [sequential, episodes, relearned]) {
          for (const [name, values] of Object.entries(together)) {
            values.forEach((v, i) => expect(other[name]![i]).toBeCloseTo(v, 9));
          }
        }
      }),
      { numRuns: 15, seed: 20261123 },
    );
  });
});
