import { describe, expect, it } from "vitest";
import { scalar } from "../../src/math/tensor.ts";
import { betaBernoulli } from "../../src/models/beta-bernoulli/index.ts";
import { testRandom } from "../support/assertions.ts";

const args = { prior_a: 2, prior_b: 3 };
const events = (ys: number[]) => ys.map((y) => ({ y: scalar(y) }));
const learn = (prior: { alpha: number; beta: number }, ys: number[]) =>
  betaBernoulli.learn({ arguments: args, prior, state: {}, events: events(ys), seed: 0, options: {} });

describe("beta-bernoulli-v1", () => {
  it("starts from the prior pseudo-counts", () => {
    expect(betaBernoulli.initialParameters(args, 0)).toEqual({ alpha: 2, beta: 3 });
    expect(betaBernoulli.parameterPosteriors({ alpha: 2, beta: 3 })).toEqual({ p: { kind: "beta", alpha: 2, beta: 3 } });
  });

  it("infers the posterior and predictive after conditioning on y", () => {
    const out = betaBernoulli.infer({
      arguments: args,
      parameters: { alpha: 2, beta: 3 },
      state: {},
      observation: { y: scalar(1) },
      goal: {},
      seed: 0,
      decisionIndex: 1,
    });
    expect(out.posteriors).toEqual({ p: { kind: "beta", alpha: 3, beta: 3 } });
    expect(out.predictions).toEqual({ y: { kind: "bernoulli", p: 0.5 } });
    expect(out.state).toBeUndefined();
  });

  it("adds successes to alpha and failures to beta", () => {
    expect(learn({ alpha: 2, beta: 3 }, [1, 1, 0, 1]).parameters).toEqual({ alpha: 5, beta: 4 });
    expect(learn({ alpha: 2, beta: 3 }, []).parameters).toEqual({ alpha: 2, beta: 3 });
  });

  it("learning A then B equals learning A and B together", () => {
    const rand = testRandom(7);
    for (let trial = 0; trial < 50; trial++) {
      const ys = Array.from({ length: 1 + Math.floor(rand() * 40) }, () => (rand() < 0.3 ? 1 : 0));
      const cut = Math.floor(rand() * ys.length);
      const prior = { alpha: 0.5 + rand() * 5, beta: 0.5 + rand() * 5 };
      const sequential = learn(learn(prior, ys.slice(0, cut)).parameters, ys.slice(cut)).parameters;
      const together = learn(prior, ys).parameters;
      expect(sequential.alpha).toBeCloseTo(together.alpha, 12);
      expect(sequential.beta).toBeCloseTo(together.beta, 12);
    }
  });

  it("reports the negative log evidence, equal to the sum of sequential predictive surprises", () => {
    const ys = [1, 0, 1, 1, 0, 1, 1, 1, 0, 0, 1];
    let { alpha, beta } = { alpha: 2, beta: 3 };
    let surprise = 0;
    for (const y of ys) {
      const p1 = alpha / (alpha + beta);
      surprise -= Math.log(y === 1 ? p1 : 1 - p1);
      if (y === 1) alpha += 1;
      else beta += 1;
    }
    const { metrics } = learn({ alpha: 2, beta: 3 }, ys);
    expect(metrics.dataPoints).toBe(ys.length);
    expect(metrics.freeEnergy).toHaveLength(1);
    expect(metrics.freeEnergy![0]).toBeCloseTo(surprise, 10);
  });
});
