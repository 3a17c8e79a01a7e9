// A dense row-major array of doubles: the numeric currency between the API, the models and storage.
export interface Tensor {
  readonly shape: readonly number[];
  readonly values: readonly number[];
}

export function scalar(value: number): Tensor {
  return { shape: [], values: [value] };
}

export function vector(values: readonly number[]): Tensor {
  return { shape: [values.length], values };
}

export function elementCount(shape: readonly number[]): number {
  return shape.reduce((n, d) => n * d, 1);
}

/** The tensor's shape with the wire convention applied: an empty shape means scalar (one value) or vector. */
export function effectiveShape(t: Tensor): readonly number[] {
  if (t.shape.length > 0) return t.shape;
  return t.values.length === 1 ? [] : [t.values.length];
}

export type TensorJson = number | number[] | { shape: number[]; values: number[] };

/** Compact portable JSON: scalars as numbers, vectors as arrays, everything else with its shape. */
export function tensorToJson(t: Tensor): TensorJson {
  const shape = effectiveShape(t);
  if (shape.length === 0) return t.values[0]!;
  if (shape.length === 1) return [...t.values];
  return { shape: [...shape], values: [...t.values] };
}

export function tensorFromJson(json: TensorJson): Tensor {
  if (typeof json === "number") return scalar(json);
  if (Array.isArray(json)) return vector(json);
  return { shape: json.shape, values: json.values };
}

/** Named tensors (an observation, an event) as stored JSON, and back. */
export const fieldsToJson = (fields: Readonly<Record<string, Tensor>>): Record<string, TensorJson> =>
  Object.fromEntries(Object.entries(fields).map(([k, t]) => [k, tensorToJson(t)]));

// A plain loop: building entry arrays about doubled the time to convert a million stored events.
export function fieldsFromJson(json: Readonly<Record<string, unknown>>): Record<string, Tensor> {
  const fields: Record<string, Tensor> = {};
  for (const name in json) fields[name] = tensorFromJson(json[name] as TensorJson);
  return fields;
}
