// Discrete hidden Markov model with Dirichlet priors (MacKay 1997; Beal 2003):
// z_1 ~ Cat(π), z_t | z_{t−1} ~ Cat(A_{z_{t−1},·}), y_t | z_t ~ Cat(B_{z_t,·}),
// π ~ Dir, A_i ~ Dir, B_i ~ Dir. Learned by variational Bayes EM, q(z)·q(π)·Π_i q(A_i)·q(B_i);
// inference is a forward-filter step with the posterior-mean parameters.
import type { Distribution } from "../../math/distribution.ts";
import { Random } from "../../math/random.ts";
import { digamma, gammaln } from "../../math/special.ts";
import { scalar } from "../../math/tensor.ts";
import type { DataProblem, FieldSpec, Fields, ModelType } from "../types.ts";

export interface Arguments {
  states: number;
  symbols: number;
  initial_concentration: number;
  transition_concentration: number;
  emission_concentration: number;
  iterations: number;
  tolerance: number;
}

/** Dirichlet concentrations: of π (K), of each row of A (K×K) and of each row of B (K×M). */
export interface Parameters {
  initial: number[];
  transition: number[][];
  emission: number[][];
}

/** The filtered distribution over the hidden state after the last observation; null before the first. */
export interface State {
  filtered: number[] | null;
}

/** Sufficient statistics of one or more sequences under q(z): expected counts and Σ log Z̃. */
export interface Statistics {
  initial: number[];
  transition: number[][];
  emission: number[][];
  logZ: number;
}

/** Log-space model: log π (K), log A (K×K), log B (K×M); may be sub-normalised (VB's exp E[log θ]). */
export interface LogModel {
  initial: readonly number[];
  transition: readonly (readonly number[])[];
  emission: readonly (readonly number[])[];
}

// ---------------------------------------------------------------------------------------------
// Forward–backward

/**
 * Forward–backward entirely in log space (exp E[log θ] can underflow for small concentrations,
 * which would zero a scaled recursion's normaliser). Adds the expected counts of `ys` to `stats`.
 * Flat typed arrays and no closures in the O(T·K²) loops: this is where learning spends its time.
 */
export function forwardBackward(model: LogModel, ys: readonly number[], stats: Statistics): void {
  const k = model.initial.length;
  const t = ys.length;
  if (t === 0) return;
  const logA = new Float64Array(k * k);
  for (let i = 0; i < k; i++) for (let j = 0; j < k; j++) logA[i * k + j] = model.transition[i]![j]!;
  const emit = new Float64Array(t * k);
  for (let s = 0; s < t; s++) for (let i = 0; i < k; i++) emit[s * k + i] = model.emission[i]![ys[s]!]!;
  const terms = new Float64Array(k);
  // ln Σ terms, max-shifted.
  const logSum = (): number => {
    let max = -Infinity;
    for (let i = 0; i < k; i++) if (terms[i]! > max) max = terms[i]!;
    if (max === -Infinity) return max;
    let total = 0;
    for (let i = 0; i < k; i++) total += Math.exp(terms[i]! - max);
    return max + Math.log(total);
  };

  const alpha = new Float64Array(t * k);
  for (let i = 0; i < k; i++) alpha[i] = model.initial[i]! + emit[i]!;
  for (let s = 1; s < t; s++) {
    for (let j = 0; j < k; j++) {
      for (let i = 0; i < k; i++) terms[i] = alpha[(s - 1) * k + i]! + logA[i * k + j]!;
      alpha[s * k + j] = logSum() + emit[s * k + j]!;
    }
  }
  for (let i = 0; i < k; i++) terms[i] = alpha[(t - 1) * k + i]!;
  const logZ = logSum();

  const beta = new Float64Array(t * k); // β_T = 1
  for (let s = t - 2; s >= 0; s--) {
    for (let i = 0; i < k; i++) {
      for (let j = 0; j < k; j++) terms[j] = logA[i * k + j]! + emit[(s + 1) * k + j]! + beta[(s + 1) * k + j]!;
      beta[s * k + i] = logSum();
    }
  }

  for (let s = 0; s < t; s++) {
    const y = ys[s]!;
    for (let i = 0; i < k; i++) {
      const gamma = Math.exp(alpha[s * k + i]! + beta[s * k + i]! - logZ);
      if (s === 0) stats.initial[i]! += gamma;
      stats.emission[i]![y]! += gamma;
    }
    if (s === 0) continue;
    for (let i = 0; i < k; i++) {
      const row = stats.transition[i]!;
      const from = alpha[(s - 1) * k + i]! - logZ;
      for (let j = 0; j < k; j++) row[j]! += Math.exp(from + logA[i * k + j]! + emit[s * k + j]! + beta[s * k + j]!);
    }
  }
  stats.logZ += logZ;
}

export function emptyStatistics(k: number, m: number): Statistics {
  const zeros = (n: number) => new Array<number>(n).fill(0);
  return { initial: zeros(k), transition: Array.from({ length: k }, () => zeros(k)), emission: Array.from({ length: k }, () => zeros(m)), logZ: 0 };
}

// ---------------------------------------------------------------------------------------------
// Dirichlet helpers

const sum = (v: readonly number[]) => v.reduce((s, x) => s + x, 0);

/** E[log θ] under Dir(a): ψ(a_i) − ψ(Σa). */
function expectedLog(a: readonly number[]): number[] {
  const total = digamma(sum(a));
  return a.map((x) => digamma(x) - total);
}

const mean = (a: readonly number[]): number[] => {
  const total = sum(a);
  return a.map((x) => x / total);
};

/** KL(Dir(a) ‖ Dir(a0)). */
export function dirichletKl(a: readonly number[], a0: readonly number[]): number {
  const total = sum(a);
  const psiTotal = digamma(total);
  let kl = gammaln(total) - gammaln(sum(a0));
  for (let i = 0; i < a.length; i++) kl += gammaln(a0[i]!) - gammaln(a[i]!) + (a[i]! - a0[i]!) * (digamma(a[i]!) - psiTotal);
  return kl;
}

const logModelOf = (q: Parameters): LogModel => ({
  initial: expectedLog(q.initial),
  transition: q.transition.map(expectedLog),
  emission: q.emission.map(expectedLog),
});

const addCounts = (prior: Parameters, stats: Statistics): Parameters => ({
  initial: prior.initial.map((a, i) => a + stats.initial[i]!),
  transition: prior.transition.map((row, i) => row.map((a, j) => a + stats.transition[i]![j]!)),
  emission: prior.emission.map((row, i) => row.map((a, y) => a + stats.emission[i]![y]!)),
});

function klToPrior(q: Parameters, prior: Parameters): number {
  let kl = dirichletKl(q.initial, prior.initial);
  for (let i = 0; i < q.transition.length; i++) kl += dirichletKl(q.transition[i]!, prior.transition[i]!);
  for (let i = 0; i < q.emission.length; i++) kl += dirichletKl(q.emission[i]!, prior.emission[i]!);
  return kl;
}

/** The E-step over every sequence and the free energy F = −Σ log Z̃ + KL(q(θ) ‖ p(θ)) of q with q(z) optimal. */
export function eStep(q: Parameters, prior: Parameters, sequences: readonly (readonly number[])[]): { stats: Statistics; freeEnergy: number } {
  const stats = emptyStatistics(q.initial.length, q.emission[0]!.length);
  const log = logModelOf(q);
  for (const ys of sequences) forwardBackward(log, ys, stats);
  return { stats, freeEnergy: -stats.logZ + klToPrior(q, prior) };
}

// ---------------------------------------------------------------------------------------------
// Symmetry breaking

/** States i and j can be swapped without changing the prior, so VB-EM started from it would keep them identical. */
function exchangeable(p: Parameters, i: number, j: number): boolean {
  const a = p.transition;
  const same = (x: readonly number[], y: readonly number[]) => x.every((v, n) => v === y[n]);
  if (p.initial[i] !== p.initial[j] || !same(p.emission[i]!, p.emission[j]!)) return false;
  if (a[i]![i] !== a[j]![j] || a[i]![j] !== a[j]![i]) return false;
  for (let n = 0; n < a.length; n++) {
    if (n === i || n === j) continue;
    if (a[i]![n] !== a[j]![n] || a[n]![i] !== a[n]![j]) return false;
  }
  return true;
}

/**
 * Where VB-EM starts. A prior that already tells the states apart (e.g. the posterior of an earlier
 * learn) is used as it is, so incremental learning keeps its state labels. A label-symmetric prior
 * is a fixed point of VB-EM, so each emission row gets seeded Dirichlet(1) pseudo-counts of total
 * weight N/K (N observations): as strong as an even share of the data, so the first E-step sees
 * distinct states whatever the prior's concentration.
 */
export function startingPoint(prior: Parameters, observations: number, seed: number): Parameters {
  const k = prior.initial.length;
  let symmetric = false;
  for (let i = 0; i < k && !symmetric; i++) for (let j = i + 1; j < k && !symmetric; j++) symmetric = exchangeable(prior, i, j);
  if (!symmetric) return prior;
  const random = new Random(seed >>> 0);
  const weight = observations / k;
  return {
    ...prior,
    emission: prior.emission.map((row) => {
      const draw = random.dirichlet(row.map(() => 1));
      return row.map((a, y) => a + weight * draw[y]!);
    }),
  };
}

export interface VbemResult {
  posterior: Parameters;
  freeEnergy: number[];
  converged: boolean;
}

/**
 * VB-EM over several sequences (E-step per sequence, one shared M-step). Each iteration is an
 * M-step from the previous E-step's counts followed by the E-step of the new q(θ), whose free
 * energy is recorded; coordinate ascent makes the trace non-increasing. Stops after `iterations`
 * or once |ΔF| ≤ tolerance·|F|. The posterior returned is the last one evaluated.
 */
export function vbem(
  prior: Parameters,
  sequences: readonly (readonly number[])[],
  options: { iterations: number; tolerance: number; seed: number; onIteration?: (iteration: number, total: number) => void },
): VbemResult {
  const observations = sequences.reduce((n, s) => n + s.length, 0);
  const start = startingPoint(prior, observations, options.seed);
  let { stats } = eStep(start, prior, sequences);
  let posterior = start;
  const freeEnergy: number[] = [];
  let converged = false;
  for (let it = 0; it < options.iterations; it++) {
    posterior = addCounts(prior, stats);
    const step = eStep(posterior, prior, sequences);
    stats = step.stats;
    const previous = freeEnergy.at(-1);
    freeEnergy.push(step.freeEnergy);
    options.onIteration?.(it + 1, options.iterations);
    if (previous !== undefined && Math.abs(previous - step.freeEnergy) <= options.tolerance * Math.abs(step.freeEnergy)) {
      converged = true;
      break;
    }
  }
  return { posterior, freeEnergy, converged };
}

/** Events split into sequences: a new one at the batch's start, at each episode's start and at every event with start = 1. */
export function sequencesOf(events: readonly Fields[], episodeStarts: readonly number[] = []): number[][] {
  const starts = new Set(episodeStarts);
  const sequences: number[][] = [];
  events.forEach((event, i) => {
    const y = event.y?.values[0];
    if (y === undefined) return;
    if (sequences.length === 0 || starts.has(i) || event.start?.values[0] === 1) sequences.push([]);
    sequences.at(-1)!.push(y);
  });
  return sequences;
}

// ---------------------------------------------------------------------------------------------
// Model type

const dirichlet = (alpha: number[]): Distribution => ({ kind: "dirichlet", alpha: [...alpha] });

const observationFields: FieldSpec[] = [
  { name: "y", description: "Observed symbol, 0..symbols−1", shape: [], required: true, integer: true, minimum: 0, example: [2] },
  {
    name: "start",
    description:
      "1: this observation begins a new sequence (inference forgets the filtered belief and starts from the initial distribution; learning starts a new sequence here). Default 0: it continues the previous one",
    shape: [],
    integer: true,
    minimum: 0,
    maximum: 1,
    example: [0],
  },
];

export const hmm: ModelType<Arguments, Parameters, State> = {
  schema: {
    name: "hmm-v1",
    description:
      "Discrete hidden Markov model: K hidden states, M symbols. z_1 ~ Categorical(π), z_t | z_{t−1} ~ Categorical(A[z_{t−1}]), y_t | z_t ~ Categorical(B[z_t]); " +
      "π, each row of A and each row of B have symmetric Dirichlet priors. Inference filters the hidden state observation by observation; learning is variational Bayes EM.",
    category: "time-series",
    arguments: [
      { name: "states", type: "integer", description: "Number of hidden states K", default: 2, minimum: 1, maximum: 64 },
      { name: "symbols", type: "integer", description: "Number of observable symbols M (observations are 0..M−1)", default: 3, minimum: 1, maximum: 4096 },
      {
        name: "initial_concentration",
        type: "number",
        description: "Prior Dirichlet concentration of each entry of the initial distribution π (1: uniform over distributions)",
        default: 1,
        minimum: 0,
        exclusiveMinimum: true,
      },
      {
        name: "transition_concentration",
        type: "number",
        description: "Prior Dirichlet concentration of each entry of each transition row A[i]",
        default: 1,
        minimum: 0,
        exclusiveMinimum: true,
      },
      {
        name: "emission_concentration",
        type: "number",
        description: "Prior Dirichlet concentration of each entry of each emission row B[i]",
        default: 1,
        minimum: 0,
        exclusiveMinimum: true,
      },
      { name: "iterations", type: "integer", description: "Maximum VB-EM iterations per learn", default: 100, minimum: 1, maximum: 10000, overridable: true },
      {
        name: "tolerance",
        type: "number",
        description: "VB-EM stops early once the free energy changes by at most tolerance·|F| between iterations",
        default: 1e-8,
        minimum: 0,
        overridable: true,
      },
    ],
    parameters: [
      { name: "initial", description: "Initial-state distribution π: Dirichlet over K states", family: "dirichlet", shape: ["states"] },
      {
        name: "transition",
        description: "Transition matrix A: a product of K Dirichlet factors, factor i being row i, the distribution of the next state after state i",
        family: "product",
        shape: ["states", "states"],
      },
      {
        name: "emission",
        description: "Emission matrix B: a product of K Dirichlet factors, factor i being row i, the distribution of the symbol emitted in state i",
        family: "product",
        shape: ["states", "symbols"],
      },
    ],
    observation: observationFields,
    goal: [],
    event: observationFields,
    outputs: [
      {
        name: "state",
        kind: "posterior",
        family: "categorical",
        shape: ["states"],
        description:
          "Filtered distribution of the current hidden state given every observation of the sequence so far, with the posterior-mean parameters E[π], E[A], E[B]",
      },
      {
        name: "y",
        kind: "prediction",
        family: "categorical",
        shape: ["symbols"],
        description: "Predictive distribution of the next observation: filtered state · E[A] · E[B]",
      },
      { name: "log_predictive", kind: "value", description: "ln p(y | earlier observations of the sequence) of this observation, before conditioning on it" },
    ],
    learning:
      "Approximate: variational Bayes EM with q(z)·q(π)·Π_i q(A_i)·q(B_i), forward–backward in log space, at most `iterations` rounds, stopping early once " +
      "|ΔF| ≤ tolerance·|F|; the free energy (−ELBO, q(z) optimal for each q(θ)) after each round is reported and never increases. A learn's events form " +
      "one sequence per episode, split further where an event has start = 1; all sequences share one M-step. Each learn starts new sequences (no " +
      "transition is counted into a batch's or an episode's first event). A label-symmetric prior (as created) " +
      "is a fixed point, so VB-EM then starts from seeded random emission pseudo-counts (deterministic given the instance seed); a prior that already " +
      "distinguishes the states is used as the starting point, so later learns keep the state labels. The stored posterior is the next learn's prior " +
      "(streaming VB: close to, not equal to, learning all events at once); relearn starts from the initial prior on all selected events and is the " +
      "reference. Learning does not change the filtered belief.",
  },

  initialParameters: (args) => ({
    initial: new Array<number>(args.states).fill(args.initial_concentration),
    transition: Array.from({ length: args.states }, () => new Array<number>(args.states).fill(args.transition_concentration)),
    emission: Array.from({ length: args.states }, () => new Array<number>(args.symbols).fill(args.emission_concentration)),
  }),

  initialState: () => ({ filtered: null }),

  parameterPosteriors: ({ initial, transition, emission }) => ({
    initial: dirichlet(initial),
    transition: { kind: "product", factors: transition.map(dirichlet) },
    emission: { kind: "product", factors: emission.map(dirichlet) },
  }),

  checkData(_kind, fields, args) {
    const problems: DataProblem[] = [];
    const y = fields.y?.values[0];
    if (y !== undefined && y > args.symbols - 1) {
      problems.push({ field: "y", description: `must be a symbol from 0 to ${args.symbols - 1}, got ${y}`, reason: "DATA_NOT_VALID" });
    }
    return problems;
  },

  infer({ parameters, state, observation }) {
    const y = observation.y!.values[0]!;
    const a = parameters.transition.map(mean);
    const b = parameters.emission.map(mean);
    const k = a.length;
    const restart = state.filtered === null || observation.start?.values[0] === 1;
    // The first observation of a sequence is emitted by z_1 ~ π; later ones after a transition.
    const before = restart
      ? mean(parameters.initial)
      : Array.from({ length: k }, (_, j) => state.filtered!.reduce((s, p, i) => s + p * a[i]![j]!, 0));
    const joint = before.map((p, i) => p * b[i]![y]!);
    const evidence = sum(joint);
    const filtered = joint.map((p) => p / evidence);
    const next = Array.from({ length: k }, (_, j) => filtered.reduce((s, p, i) => s + p * a[i]![j]!, 0));
    const predictive = b[0]!.map((_, symbol) => next.reduce((s, p, i) => s + p * b[i]![symbol]!, 0));
    return {
      posteriors: { state: { kind: "categorical", probabilities: filtered } },
      predictions: { y: { kind: "categorical", probabilities: predictive } },
      values: { log_predictive: scalar(Math.log(evidence)) },
      state: { filtered },
    };
  },

  learn({ arguments: args, prior, events, sequenceStarts, seed, onIteration }) {
    const sequences = sequencesOf(events, sequenceStarts);
    const dataPoints = sequences.reduce((n, s) => n + s.length, 0);
    if (dataPoints === 0) return { parameters: prior, metrics: { dataPoints: 0, iterations: 0, freeEnergy: [] } };
    const { posterior, freeEnergy, converged } = vbem(prior, sequences, { iterations: args.iterations, tolerance: args.tolerance, seed, onIteration });
    return {
      parameters: posterior,
      metrics: { dataPoints, iterations: freeEnergy.length, freeEnergy, values: { converged: converged ? 1 : 0, sequences: sequences.length } },
    };
  },
};
