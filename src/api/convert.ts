// protobuf ↔ domain translations. No decisions are made here.
import { create, fromJson, type MessageInitShape } from "@bufbuild/protobuf";
import { type Timestamp, timestampDate, timestampFromDate, ValueSchema } from "@bufbuild/protobuf/wkt";
import {
  type ArgumentSpecSchema,
  ArgumentType,
  type DimensionSchema,
  type EpisodeSchema,
  type FieldSpecSchema,
  type InstanceSchema,
  type ModelTypeSchema,
  OutputKind,
} from "../../gen/posterior/v1/model_service_pb.ts";
import {
  type Distribution as DistributionMessage,
  type DistributionSchema,
  type Tensor as TensorMessage,
  TensorSchema,
} from "../../gen/posterior/v1/values_pb.ts";
import { invalidRequest } from "../domain/errors.ts";
import type { EpisodeView, InstanceView } from "../domain/records.ts";
import type { Distribution } from "../math/distribution.ts";
import type { Tensor } from "../math/tensor.ts";
import type { ArgumentSpec, Dimension, FieldSpec, ModelSchema, OutputKind as DomainOutputKind } from "../models/types.ts";

type Init<S extends Parameters<typeof create>[0]> = MessageInitShape<S>;

export const tensorIn = (t: TensorMessage): Tensor => ({ shape: t.shape, values: t.values });

export const fieldsIn = (map: { [key: string]: TensorMessage }): Record<string, Tensor> =>
  Object.fromEntries(Object.entries(map).map(([k, t]) => [k, tensorIn(t)]));

export const tensorOut = (t: Tensor): Init<typeof TensorSchema> => ({ shape: [...t.shape], values: [...t.values] });

export const tensorsOut = (map: Record<string, Tensor> = {}) =>
  Object.fromEntries(Object.entries(map).map(([k, t]) => [k, tensorOut(t)]));

export function distributionOut(d: Distribution): Init<typeof DistributionSchema> {
  switch (d.kind) {
    case "pointMass":
      return { kind: { case: "pointMass", value: { value: tensorOut(d.value) } } };
    case "sampleList":
      return { kind: { case: "sampleList", value: { samples: tensorOut(d.samples), weights: d.weights } } };
    case "product":
      return { kind: { case: "product", value: { factors: d.factors.map(distributionOut) } } };
    default: {
      const { kind, ...value } = d;
      return { kind: { case: kind, value } } as Init<typeof DistributionSchema>;
    }
  }
}

/** The domain form of a wire distribution (the inverse of `distributionOut`). */
export function distributionIn(d: DistributionMessage, field = "distribution"): Distribution {
  const { kind } = d;
  switch (kind.case) {
    case "pointMass":
      return { kind: "pointMass", value: tensorIn(kind.value.value ?? create(TensorSchema)) };
    case "normal":
      return { kind: "normal", mean: kind.value.mean, variance: kind.value.variance };
    case "mvNormal":
      return { kind: "mvNormal", mean: kind.value.mean, covariance: kind.value.covariance };
    case "gamma":
      return { kind: "gamma", shape: kind.value.shape, rate: kind.value.rate };
    case "beta":
      return { kind: "beta", alpha: kind.value.alpha, beta: kind.value.beta };
    case "dirichlet":
      return { kind: "dirichlet", alpha: kind.value.alpha };
    case "categorical":
      return { kind: "categorical", probabilities: kind.value.probabilities };
    case "bernoulli":
      return { kind: "bernoulli", p: kind.value.p };
    case "wishart":
      return { kind: "wishart", degreesOfFreedom: kind.value.degreesOfFreedom, scale: kind.value.scale };
    case "studentT":
      return { kind: "studentT", degreesOfFreedom: kind.value.degreesOfFreedom, location: kind.value.location, scale: kind.value.scale };
    case "sampleList":
      return { kind: "sampleList", samples: tensorIn(kind.value.samples ?? create(TensorSchema)), weights: kind.value.weights };
    case "product":
      return { kind: "product", factors: kind.value.factors.map((f, i) => distributionIn(f, `${field}.product.factors[${i}]`)) };
    case undefined:
      throw invalidRequest(field, "must set one distribution kind");
  }
}

export const distributionsOut = (map: Record<string, Distribution> = {}) =>
  Object.fromEntries(Object.entries(map).map(([k, d]) => [k, distributionOut(d)]));

export const timestampIn = (t: Timestamp | undefined): Date | undefined => (t ? timestampDate(t) : undefined);
export const timestampOut = (d: Date | null | undefined): Timestamp | undefined => (d ? timestampFromDate(d) : undefined);

const dimensionOut = (d: Dimension): Init<typeof DimensionSchema> =>
  typeof d === "number" ? { size: { case: "fixed", value: d } } : { size: { case: "argument", value: d } };

const argumentTypes = {
  number: ArgumentType.NUMBER,
  integer: ArgumentType.INTEGER,
  boolean: ArgumentType.BOOLEAN,
  string: ArgumentType.STRING,
  "number[]": ArgumentType.NUMBER_ARRAY,
  "string[]": ArgumentType.STRING_ARRAY,
} as const;

const outputKinds: Record<DomainOutputKind, OutputKind> = {
  posterior: OutputKind.POSTERIOR,
  prediction: OutputKind.PREDICTION,
  action: OutputKind.ACTION,
  value: OutputKind.VALUE,
  label: OutputKind.LABEL,
};

const argumentOut = (a: ArgumentSpec): Init<typeof ArgumentSpecSchema> => ({
  name: a.name,
  type: argumentTypes[a.type],
  description: a.description,
  defaultValue: a.default === undefined ? undefined : fromJson(ValueSchema, a.default),
  required: a.default === undefined,
  minimum: a.minimum,
  maximum: a.maximum,
  exclusiveMinimum: a.exclusiveMinimum ?? false,
  choices: a.choices ? [...a.choices] : [],
  length: a.length === undefined ? undefined : dimensionOut(a.length),
  overridable: a.overridable ?? false,
});

const fieldOut = (f: FieldSpec): Init<typeof FieldSpecSchema> => ({
  name: f.name,
  description: f.description,
  shape: f.shape.map(dimensionOut),
  required: f.required ?? false,
  integer: f.integer ?? false,
  minimum: f.minimum,
  maximum: f.maximum,
  example: { values: [...f.example] },
});

export const modelTypeOut = (s: ModelSchema): Init<typeof ModelTypeSchema> => ({
  name: s.name,
  description: s.description,
  category: s.category,
  arguments: s.arguments.map(argumentOut),
  parameters: s.parameters.map((p) => ({ ...p, shape: p.shape.map(dimensionOut) })),
  observation: s.observation.map(fieldOut),
  goal: s.goal.map(fieldOut),
  event: s.event.map(fieldOut),
  outputs: s.outputs.map((o) => ({
    name: o.name,
    kind: outputKinds[o.kind],
    description: o.description,
    family: o.family ?? "",
    shape: (o.shape ?? []).map(dimensionOut),
  })),
  stochastic: s.stochastic ?? false,
  learning: s.learning,
});

export const instanceOut = (i: InstanceView): Init<typeof InstanceSchema> => ({
  instanceId: i.id,
  model: i.model,
  description: i.description,
  arguments: i.arguments,
  seed: i.seed,
  parametersVersion: i.parametersVersion,
  createTime: timestampOut(i.createdAt),
  updateTime: timestampOut(i.updatedAt),
  episodeCount: i.episodeCount,
});

export const episodeOut = (e: EpisodeView): Init<typeof EpisodeSchema> => ({
  instanceId: e.instanceId,
  name: e.name,
  eventCount: BigInt(e.eventCount),
  learnedCount: BigInt(e.learnedCount),
  firstEventTime: timestampOut(e.firstEventAt),
  lastEventTime: timestampOut(e.lastEventAt),
  createTime: timestampOut(e.createdAt),
  updateTime: timestampOut(e.updatedAt),
});
