// π ~ Dirichlet(prior_alpha), y_i | π ~ Categorical(π). Exact conjugate updates.
import type { Distribution } from "../../math/distribution.ts";
import { gammaln } from "../../math/special.ts";
import type { DataProblem, FieldSpec, Fields, ModelType } from "../types.ts";

interface Arguments {
  prior_alpha: number[];
}

interface Parameters {
  alpha: number[];
}

type State = Record<string, never>;

const ONE_HOT_TOLERANCE = 1e-9;

/** The observation as per-category counts: an index becomes a one-hot vector; soft vectors pass through. */
function counts(fields: Fields, k: number): number[] | undefined {
  const index = fields.y?.values[0];
  if (index !== undefined) return Array.from({ length: k }, (_, i) => (i === index ? 1 : 0));
  const soft = fields.y_one_hot?.values;
  return soft ? [...soft] : undefined;
}

const dirichlet = (alpha: number[]): Distribution => ({ kind: "dirichlet", alpha });

// Observations and events carry the category the same way.
const categoryFields: FieldSpec[] = [
  { name: "y", description: "Observed category, 0..K-1 (or send y_one_hot)", shape: [], integer: true, minimum: 0, example: [2] },
  {
    name: "y_one_hot",
    description: "Observed category as a one-hot, or soft, vector of K non-negative weights summing to 1",
    shape: ["prior_alpha"],
    minimum: 0,
    example: [0, 1, 0],
  },
];

export const dirichletCategorical: ModelType<Arguments, Parameters, State> = {
  schema: {
    name: "dirichlet-categorical-v1",
    description:
      "Probabilities of K categories: π ~ Dirichlet(prior_alpha), y ~ Categorical(π). K is the length of prior_alpha. Exact conjugate learning.",
    category: "conjugate",
    arguments: [
      {
        name: "prior_alpha",
        type: "number[]",
        description: "Prior pseudo-count of each category; its length is the number of categories K",
        default: [1, 1, 1],
        minimum: 0,
        exclusiveMinimum: true,
      },
    ],
    parameters: [{ name: "p", description: "Category probabilities", family: "dirichlet", shape: ["prior_alpha"] }],
    observation: categoryFields,
    goal: [],
    event: categoryFields,
    outputs: [
      { name: "p", kind: "posterior", family: "dirichlet", description: "Posterior of π, after also conditioning on the observation if one is given" },
      { name: "y", kind: "prediction", family: "categorical", description: "Predictive probabilities of the next category" },
    ],
    learning:
      "Exact. Each event adds its (one-hot or soft) counts to the Dirichlet concentration once, so batches, incremental learning and several episodes give the same posterior as learning all events at once. The free energy is the negative log evidence of the batch's category sequence.",
  },

  initialParameters: (args) => ({ alpha: [...args.prior_alpha] }),

  initialState: () => ({}),

  parameterPosteriors: ({ alpha }) => ({ p: dirichlet(alpha) }),

  checkData(kind, fields, args) {
    const k = args.prior_alpha.length;
    const problems: DataProblem[] = [];
    if (fields.y !== undefined && fields.y_one_hot !== undefined) {
      problems.push({ field: "y_one_hot", description: "give either y or y_one_hot, not both", reason: "DATA_LAYOUT_NOT_COMPATIBLE" });
    } else if (kind === "event" && fields.y === undefined && fields.y_one_hot === undefined) {
      problems.push({ field: "y", description: "is required (or y_one_hot)", reason: "DATA_INCOMPLETE" });
    }
    const index = fields.y?.values[0];
    if (index !== undefined && index > k - 1) {
      problems.push({ field: "y", description: `must be a category from 0 to ${k - 1}, got ${index}`, reason: "DATA_NOT_VALID" });
    }
    const soft = fields.y_one_hot?.values;
    if (soft && Math.abs(soft.reduce((s, v) => s + v, 0) - 1) > ONE_HOT_TOLERANCE) {
      problems.push({ field: "y_one_hot", description: "must sum to 1", reason: "DATA_NOT_VALID" });
    }
    return problems;
  },

  infer({ parameters, observation }) {
    const k = parameters.alpha.length;
    const seen = counts(observation, k) ?? new Array<number>(k).fill(0);
    const alpha = parameters.alpha.map((a, i) => a + seen[i]!);
    const total = alpha.reduce((s, a) => s + a, 0);
    return {
      posteriors: { p: dirichlet(alpha) },
      predictions: { y: { kind: "categorical", probabilities: alpha.map((a) => a / total) } },
    };
  },

  learn({ prior, events }) {
    const k = prior.alpha.length;
    const n = new Array<number>(k).fill(0);
    for (const event of events) {
      const c = counts(event, k);
      if (c) for (let i = 0; i < k; i++) n[i]! += c[i]!;
    }
    const alpha = prior.alpha.map((a, i) => a + n[i]!);
    const sum = (v: number[]) => v.reduce((s, x) => s + x, 0);
    // −log p(sequence) = −[lnΓ(Σα0) − lnΓ(Σα0 + N) + Σ_k (lnΓ(α0k + n_k) − lnΓ(α0k))]
    const logEvidence =
      gammaln(sum(prior.alpha)) - gammaln(sum(alpha)) + prior.alpha.reduce((s, a, i) => s + gammaln(alpha[i]!) - gammaln(a), 0);
    return {
      parameters: { alpha },
      metrics: { dataPoints: events.length, iterations: 1, freeEnergy: [-logEvidence] },
    };
  },
};
