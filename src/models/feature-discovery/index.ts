// Regression on fixed basis functions of x ∈ R^D (RxInferServer's FeatureDiscovery-v1):
// y = φ(x)ᵀω + ε, ε ~ N(0, 1/τ), learned by mean-field variational Bayes q(ω) q(τ).
import { addObservation, emptyStats, type GaussianGamma, meanFieldUpdate } from "../../math/linear-gaussian.ts";
import { logistic } from "../../math/special.ts";
import { scalar } from "../../math/tensor.ts";
import type { ModelType } from "../types.ts";

interface Arguments {
  functions: string[];
  input_dim: number;
  number_of_iterations: number;
}

/** q(ω) = N(mean, covariance) and q(τ) = Gamma(shape, rate), stored as they are. */
type Parameters = GaussianGamma;

type State = Record<string, never>;

// The reference server spells the third family "tripplewise"; both spellings are accepted so its
// clients keep working.
const FAMILIES = ["linear", "quadratic", "pairwise", "triplewise", "tripplewise"] as const;
const MODIFIERS = ["tanh", "abs", "sigmoid"] as const;
type Family = (typeof FAMILIES)[number];
type Modifier = (typeof MODIFIERS)[number];

const CHOICES: readonly string[] = [...FAMILIES, ...FAMILIES.flatMap((f) => MODIFIERS.map((m) => `${f}:${m}`))];

// The reference's initial prior: ω ~ N(0, 1e6·I), τ ~ Gamma(shape 1e-12, scale 1e8), i.e. rate 1e-8.
const PRIOR_VARIANCE = 1e6;
const PRIOR_NOISE_SHAPE = 1e-12;
const PRIOR_NOISE_RATE = 1e-8;

function parse(spec: string): { family: Family; modifier: Modifier | undefined } {
  const [family, modifier] = spec.split(":") as [Family, Modifier | undefined];
  return { family, modifier };
}

/** Adjacent products of `order` consecutive inputs (order 1: the inputs themselves). */
function products(x: readonly number[], order: number, square = false): number[] {
  if (square) return x.map((v) => v * v);
  const out: number[] = [];
  for (let i = order - 1; i < x.length; i++) {
    let p = 1;
    for (let k = i - order + 1; k <= i; k++) p *= x[k]!;
    out.push(p);
  }
  return out;
}

function family(x: readonly number[], name: Family): number[] {
  switch (name) {
    case "linear":
      return products(x, 1);
    case "quadratic":
      return products(x, 1, true);
    case "pairwise":
      return products(x, 2);
    case "triplewise":
    case "tripplewise":
      return products(x, 3);
  }
}

const modify: Record<Modifier, (v: number) => number> = { tanh: Math.tanh, abs: Math.abs, sigmoid: logistic };

/** φ(x): each listed family in order, its modifier applied after the product. */
export function basis(x: readonly number[], functions: readonly string[]): number[] {
  return functions.flatMap((spec) => {
    const { family: name, modifier } = parse(spec);
    const values = family(x, name);
    return modifier === undefined ? values : values.map(modify[modifier]);
  });
}

/** Number of basis functions for inputs of dimension d. */
export function basisSize(functions: readonly string[], d: number): number {
  return basis(new Array<number>(d).fill(0), functions).length;
}

const X_DESCRIPTION = "Input vector x of input_dim numbers";

export const featureDiscovery: ModelType<Arguments, Parameters, State> = {
  schema: {
    name: "feature-discovery-v1",
    description:
      "Regression on basis functions of x ∈ R^D: y = φ(x)ᵀω + ε, ε ~ N(0, 1/τ). φ concatenates, in the order of `functions`: linear x_i (D), " +
      "quadratic x_i² (D), pairwise x_{i−1}x_i (D − 1 adjacent pairs), triplewise x_{i−2}x_{i−1}x_i (D − 2 adjacent triples); `name:modifier` " +
      "applies tanh, abs or sigmoid (1/(1 + e^−v)) after the product. No intercept. Initial prior ω ~ N(0, 1e6·I), τ ~ Gamma(shape 1e-12, rate 1e-8). " +
      "Mean-field variational Bayes, compatible with RxInferServer's FeatureDiscovery-v1.",
    category: "regression",
    arguments: [
      {
        name: "functions",
        type: "string[]",
        description:
          "Basis function families, each optionally with a modifier (e.g. pairwise:abs); 'tripplewise' is accepted as the reference server's spelling of triplewise",
        default: ["linear", "quadratic", "pairwise", "triplewise"],
        choices: CHOICES,
      },
      { name: "input_dim", type: "integer", description: "Number of elements D of the input x", default: 2, minimum: 1 },
      {
        name: "number_of_iterations",
        type: "integer",
        description: "Rounds of mean-field coordinate ascent per learn (fixed count, as the reference server)",
        default: 25,
        minimum: 1,
        overridable: true,
      },
    ],
    parameters: [
      {
        name: "omega",
        description:
          "Basis-function weights ω, one per basis function in φ's order (4·input_dim − 3 with the default functions and input_dim ≥ 2): the Gaussian factor q(ω)",
        family: "mvNormal",
        // The size depends on `functions` and input_dim together, which a Dimension cannot express; the description gives it.
        shape: [],
      },
      { name: "noise_precision", description: "Noise precision τ: the Gamma factor q(τ) (shape/rate)", family: "gamma", shape: [] },
    ],
    observation: [{ name: "x", description: X_DESCRIPTION, shape: ["input_dim"], required: true, example: [0.3, 0.7] }],
    goal: [],
    event: [
      { name: "x", description: X_DESCRIPTION, shape: ["input_dim"], required: true, example: [0.3, 0.7] },
      {
        name: "y",
        description: "Observed target; events without y (e.g. stored inference observations) are skipped by learning",
        shape: [],
        example: [1.1],
      },
    ],
    outputs: [
      {
        name: "y",
        kind: "prediction",
        family: "normal",
        description:
          "Predictive of y at x: Normal with mean φᵀm and variance φᵀSφ + b/a (q(ω) = N(m, S), q(τ) = Gamma(a, b); the noise enters at 1/E[τ], " +
          "as in the reference's structured q(μ, y)q(τ) predictive). Before any learning it is the prior predictive.",
      },
      { name: "y_mean", kind: "value", description: "φᵀm" },
      { name: "y_variance", kind: "value", description: "φᵀSφ + b/a" },
    ],
    learning:
      "Approximate: mean-field variational Bayes, q(ω)q(τ), number_of_iterations rounds from E[τ] = a/b of the prior; the free energy (−ELBO) after " +
      "each round is reported and never increases. The stored posterior is the prior of the next learn (streaming VB), so learning in two batches " +
      "is close to, but not the same as, learning both at once; relearn starts again from the initial prior on all selected events. Several " +
      "episodes are learned as one batch. Events without y are skipped; a learn with none leaves the parameters bit-identical. " +
      "Before any learning, inference answers with the prior predictive (the reference server fails there).",
  },

  initialParameters(args) {
    const k = basisSize(args.functions, args.input_dim);
    const covariance = new Array<number>(k * k).fill(0);
    for (let i = 0; i < k; i++) covariance[i * k + i] = PRIOR_VARIANCE;
    return { mean: new Array<number>(k).fill(0), covariance, shape: PRIOR_NOISE_SHAPE, rate: PRIOR_NOISE_RATE };
  },

  initialState: () => ({}),

  parameterPosteriors: ({ mean, covariance, shape, rate }) => ({
    omega: { kind: "mvNormal", mean: [...mean], covariance: [...covariance] },
    noise_precision: { kind: "gamma", shape, rate },
  }),

  infer({ arguments: args, parameters, observation }) {
    const phi = basis(observation.x!.values, args.functions);
    const k = phi.length;
    let mean = 0;
    let spread = 0;
    for (let i = 0; i < k; i++) {
      mean += phi[i]! * parameters.mean[i]!;
      let row = 0;
      for (let j = 0; j < k; j++) row += parameters.covariance[i * k + j]! * phi[j]!;
      spread += phi[i]! * row;
    }
    const variance = spread + parameters.rate / parameters.shape;
    return {
      predictions: { y: { kind: "normal", mean, variance } },
      values: { y_mean: scalar(mean), y_variance: scalar(variance) },
    };
  },

  learn({ arguments: args, prior, events, onIteration }) {
    const stats = emptyStats(prior.mean.length);
    for (const event of events) {
      const y = event.y?.values[0];
      if (y === undefined) continue;
      addObservation(stats, basis(event.x!.values, args.functions), y);
    }
    if (stats.n === 0) return { parameters: prior, metrics: { dataPoints: 0, iterations: 0, freeEnergy: [] } };
    const { posterior, freeEnergy } = meanFieldUpdate(prior, stats, args.number_of_iterations, onIteration);
    return { parameters: posterior, metrics: { dataPoints: stats.n, iterations: args.number_of_iterations, freeEnergy } };
  },
};
