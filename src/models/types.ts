// The contract between the server and a model type. A model type is pure: given arguments,
// parameters, state, data and a seed it computes; it never touches storage, transport, clocks or
// Math.random. Everything it returns is plain JSON so it can be stored portably.
import type { Distribution, DistributionKind } from "../math/distribution.ts";
import type { Tensor } from "../math/tensor.ts";

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };
export type JsonObject = { [key: string]: JsonValue };

/** A fixed size, or the name of an argument giving the size: an integer's value or an array's length. */
export type Dimension = number | string;

export type ArgumentType = "number" | "integer" | "boolean" | "string" | "number[]" | "string[]";

export interface ArgumentSpec {
  readonly name: string;
  readonly type: ArgumentType;
  readonly description: string;
  /** Absent for required arguments. */
  readonly default?: JsonValue;
  readonly minimum?: number;
  readonly maximum?: number;
  readonly exclusiveMinimum?: boolean;
  readonly choices?: readonly string[];
  readonly length?: Dimension;
  /** May be overridden for a single inference call. */
  readonly overridable?: boolean;
}

export interface FieldSpec {
  readonly name: string;
  readonly description: string;
  /** Empty for scalars. */
  readonly shape: readonly Dimension[];
  readonly required?: boolean;
  readonly integer?: boolean;
  readonly minimum?: number;
  readonly maximum?: number;
  /** A valid value (row-major) under the default arguments, for documentation, examples and benchmarks. */
  readonly example: readonly number[];
}

export interface ParameterSpec {
  readonly name: string;
  readonly description: string;
  readonly family: DistributionKind;
  readonly shape: readonly Dimension[];
}

export type OutputKind = "posterior" | "prediction" | "action" | "value" | "label";

export interface OutputSpec {
  readonly name: string;
  readonly kind: OutputKind;
  readonly description: string;
  readonly family?: DistributionKind;
  readonly shape?: readonly Dimension[];
}

export interface ModelSchema {
  readonly name: string;
  readonly description: string;
  readonly category: string;
  readonly arguments: readonly ArgumentSpec[];
  readonly parameters: readonly ParameterSpec[];
  readonly observation: readonly FieldSpec[];
  readonly goal: readonly FieldSpec[];
  readonly event: readonly FieldSpec[];
  readonly outputs: readonly OutputSpec[];
  /** Inference makes random choices (from the seed it is given). */
  readonly stochastic?: boolean;
  /** How learning works: exact or approximate, incremental and multi-episode behaviour. */
  readonly learning: string;
}

export type DataKind = "observation" | "goal" | "event";

/** An inconsistency between arguments, named by the argument at fault. */
export interface ArgumentProblem {
  readonly argument: string;
  readonly description: string;
}

/** A problem with one field of the data, relative to its map (e.g. `y`); the server adds the path. */
export interface DataProblem {
  readonly field: string;
  readonly description: string;
  readonly reason: "DATA_INCOMPLETE" | "DATA_LAYOUT_NOT_COMPATIBLE" | "DATA_NOT_VALID";
}

/** Validated data: every field present conforms to the schema. */
export type Fields = Readonly<Record<string, Tensor>>;

export interface InferInput<A, P, S> {
  readonly arguments: A;
  readonly parameters: P;
  readonly state: S;
  readonly observation: Fields;
  readonly goal: Fields;
  /** Seed of this decision's random choices: derived from (instance seed, episode, decision index). */
  readonly seed: number;
  /** The decision's number within its episode: the client's, or the episode's next event number. */
  readonly decisionIndex: number;
}

export interface InferOutput<S> {
  readonly posteriors?: Record<string, Distribution>;
  readonly predictions?: Record<string, Distribution>;
  readonly actions?: Record<string, Tensor>;
  readonly values?: Record<string, Tensor>;
  readonly labels?: Record<string, string>;
  /** The new instance state; omit when unchanged. */
  readonly state?: S;
}

export interface LearnInput<A, P, S> {
  readonly arguments: A;
  /** The posterior so far (or the initial prior on relearn), used as the prior. */
  readonly prior: P;
  readonly state: S;
  /** Unlearned events of every selected episode, episode by episode, each in sequence order. */
  readonly events: readonly Fields[];
  /**
   * Where each episode's events begin in `events` (the server always sets it). Sequence models start a
   * new sequence there: nothing links one episode's last event to the next episode's first.
   */
  readonly sequenceStarts?: readonly number[];
  readonly seed: number;
  readonly options: JsonObject;
  /** Called after each iteration of an iterative learner; it may throw to stop the learner. */
  readonly onIteration?: (iteration: number, total: number) => void;
}

export interface LearnMetrics {
  readonly dataPoints: number;
  readonly iterations?: number;
  /** Free energy (negative ELBO, or negative log evidence for exact models) per iteration, in nats. */
  readonly freeEnergy?: readonly number[];
  readonly values?: Readonly<Record<string, number>>;
}

export interface LearnOutput<P, S> {
  readonly parameters: P;
  readonly state?: S;
  readonly metrics: LearnMetrics;
}

export interface ModelType<A = JsonObject, P = JsonObject, S = JsonObject> {
  readonly schema: ModelSchema;
  initialParameters(args: A, seed: number): P;
  initialState(args: A): S;
  /** The posterior of every learnable parameter, keyed by the schema's parameter names. */
  parameterPosteriors(parameters: P): Record<string, Distribution>;
  infer(input: InferInput<A, P, S>): InferOutput<S>;
  learn(input: LearnInput<A, P, S>): LearnOutput<P, S>;
  /** Consistency between arguments the schema cannot express; checked at creation and for per-call overrides. */
  checkArguments?(args: A): ArgumentProblem[];
  /** Checks the schema cannot express (e.g. a category index below an argument's length); runs after the schema's. */
  checkData?(kind: DataKind, fields: Fields, args: A): DataProblem[];
}

/**
 * A model type with its generic parameters erased, as the registry holds it. Each model
 * module declares its own argument, parameter and state types; they are JSON-compatible by
 * construction and the schema-driven validation guarantees the arguments' shape.
 */
export type AnyModelType = ModelType<any, any, any>;
