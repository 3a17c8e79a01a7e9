// p ~ Beta(prior_a, prior_b), y_i | p ~ Bernoulli(p). Exact conjugate updates.
import { betaln } from "../../math/special.ts";
import type { Fields, ModelType } from "../types.ts";

interface Arguments {
  prior_a: number;
  prior_b: number;
}

interface Parameters {
  alpha: number;
  beta: number;
}

type State = Record<string, never>;

const outcome = (fields: Fields): number => fields.y!.values[0]!;

export const betaBernoulli: ModelType<Arguments, Parameters, State> = {
  schema: {
    name: "beta-bernoulli-v1",
    description:
      "Success probability of a binary outcome: p ~ Beta(prior_a, prior_b), y ~ Bernoulli(p). Exact conjugate learning.",
    category: "conjugate",
    arguments: [
      { name: "prior_a", type: "number", description: "Prior pseudo-count of successes", default: 1, minimum: 0, exclusiveMinimum: true },
      { name: "prior_b", type: "number", description: "Prior pseudo-count of failures", default: 1, minimum: 0, exclusiveMinimum: true },
    ],
    parameters: [{ name: "p", description: "Success probability", family: "beta", shape: [] }],
    observation: [{ name: "y", description: "Observed outcome, 0 or 1", shape: [], required: true, integer: true, minimum: 0, maximum: 1, example: [1] }],
    goal: [],
    event: [{ name: "y", description: "Observed outcome, 0 or 1", shape: [], required: true, integer: true, minimum: 0, maximum: 1, example: [1] }],
    outputs: [
      { name: "p", kind: "posterior", family: "beta", description: "Posterior of p after also conditioning on the observed y" },
      { name: "y", kind: "prediction", family: "bernoulli", description: "Predictive probability that the next outcome is 1" },
    ],
    learning:
      "Exact. Each event adds its outcome to the Beta pseudo-counts once, so learning in batches, incrementally or across episodes gives the same posterior as learning all events at once.",
  },

  initialParameters: (args) => ({ alpha: args.prior_a, beta: args.prior_b }),

  initialState: () => ({}),

  parameterPosteriors: ({ alpha, beta }) => ({ p: { kind: "beta", alpha, beta } }),

  infer({ parameters, observation }) {
    const y = outcome(observation);
    const alpha = parameters.alpha + y;
    const beta = parameters.beta + 1 - y;
    return {
      posteriors: { p: { kind: "beta", alpha, beta } },
      predictions: { y: { kind: "bernoulli", p: alpha / (alpha + beta) } },
    };
  },

  learn({ prior, events }) {
    let successes = 0;
    for (const event of events) successes += outcome(event);
    const failures = events.length - successes;
    const alpha = prior.alpha + successes;
    const beta = prior.beta + failures;
    // Exact model: the free energy is the negative log evidence of the batch under the prior.
    const freeEnergy = -(betaln(alpha, beta) - betaln(prior.alpha, prior.beta));
    return {
      parameters: { alpha, beta },
      metrics: { dataPoints: events.length, iterations: 1, freeEnergy: [freeEnergy] },
    };
  },
};
