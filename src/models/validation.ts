// Schema-driven checks of arguments and data, shared by every model type.
import { effectiveShape, elementCount, type Tensor } from "../math/tensor.ts";
import type { AnyModelType, ArgumentSpec, DataKind, Dimension, FieldSpec, JsonObject, JsonValue, ModelSchema } from "./types.ts";

export type ViolationReason = "DATA_INCOMPLETE" | "DATA_LAYOUT_NOT_COMPATIBLE" | "DATA_NOT_VALID" | "ARGUMENTS_NOT_VALID";

export interface Violation {
  /** Path of the offending field in the request, e.g. `observation.y` or `arguments.prior_a`. */
  readonly field: string;
  readonly description: string;
  readonly reason: ViolationReason;
}

/** Fills in defaults and checks every argument; unknown arguments are violations. */
export function resolveArguments(
  schema: ModelSchema,
  given: JsonObject,
  path = "arguments",
): { arguments: JsonObject; violations: Violation[] } {
  const violations: Violation[] = [];
  const resolved: JsonObject = {};
  const bad = (name: string, description: string) =>
    violations.push({ field: `${path}.${name}`, description, reason: "ARGUMENTS_NOT_VALID" });

  for (const name of Object.keys(given)) {
    if (!schema.arguments.some((a) => a.name === name)) bad(name, `unknown argument for model ${schema.name}`);
  }
  for (const spec of schema.arguments) {
    const value = given[spec.name] ?? spec.default;
    if (value === undefined || value === null) {
      bad(spec.name, "is required");
      continue;
    }
    const problem = checkArgument(spec, value);
    if (problem) bad(spec.name, problem);
    else resolved[spec.name] = value;
  }
  // Length checks need the other arguments resolved first.
  for (const spec of schema.arguments) {
    const value = resolved[spec.name];
    if (spec.length === undefined || !Array.isArray(value)) continue;
    const expected = resolveDimension(spec.length, resolved);
    if (expected !== undefined && value.length !== expected) {
      bad(spec.name, `must have ${expected} elements, got ${value.length}`);
    }
  }
  return { arguments: resolved, violations };
}

function checkArgument(spec: ArgumentSpec, value: JsonValue): string | undefined {
  switch (spec.type) {
    case "boolean":
      return typeof value === "boolean" ? undefined : "must be a boolean";
    case "string":
      if (typeof value !== "string") return "must be a string";
      return checkChoice(spec, value);
    case "string[]":
      if (!Array.isArray(value) || value.some((v) => typeof v !== "string")) return "must be an array of strings";
      return value.map((v) => checkChoice(spec, v as string)).find((p) => p !== undefined);
    case "number":
    case "integer":
      return checkNumber(spec, value);
    case "number[]":
      if (!Array.isArray(value) || value.length === 0) return "must be a non-empty array of numbers";
      return value.map((v) => checkNumber(spec, v)).find((p) => p !== undefined);
  }
}

function checkChoice(spec: ArgumentSpec, value: string): string | undefined {
  if (!spec.choices || spec.choices.includes(value)) return undefined;
  return `must be one of ${spec.choices.join(", ")}; got ${JSON.stringify(value)}`;
}

function checkNumber(spec: ArgumentSpec, value: JsonValue): string | undefined {
  if (typeof value !== "number" || !Number.isFinite(value)) return "must be a finite number";
  if (spec.type === "integer" && !Number.isInteger(value)) return `must be an integer, got ${value}`;
  return checkBounds(spec, value, spec.exclusiveMinimum);
}

function checkBounds(
  spec: { minimum?: number; maximum?: number },
  value: number,
  exclusiveMinimum = false,
): string | undefined {
  if (spec.minimum !== undefined && (exclusiveMinimum ? value <= spec.minimum : value < spec.minimum)) {
    return `must be ${exclusiveMinimum ? ">" : ">="} ${spec.minimum}, got ${value}`;
  }
  if (spec.maximum !== undefined && value > spec.maximum) return `must be <= ${spec.maximum}, got ${value}`;
  return undefined;
}

/** A fixed size, an integer argument's value, or an array argument's length. */
function resolveDimension(dim: Dimension, args: JsonObject): number | undefined {
  if (typeof dim === "number") return dim;
  const value = args[dim];
  if (typeof value === "number") return value;
  return Array.isArray(value) ? value.length : undefined;
}

export function resolveShape(shape: readonly Dimension[], args: JsonObject): number[] {
  return shape.map((d) => resolveDimension(d, args) ?? -1);
}

/**
 * Checks data fields against their specs: unknown fields and wrong shapes make the layout
 * incompatible, missing required fields make it incomplete, and non-finite or out-of-range
 * values make it invalid.
 */
export function validateFields(
  specs: readonly FieldSpec[],
  fields: Readonly<Record<string, Tensor>>,
  args: JsonObject,
  path: string,
): Violation[] {
  const violations: Violation[] = [];
  for (const name of Object.keys(fields)) {
    if (!specs.some((s) => s.name === name)) {
      const known = specs.map((s) => s.name).join(", ") || "none";
      violations.push({
        field: `${path}.${name}`,
        description: `unknown field; expected one of: ${known}`,
        reason: "DATA_LAYOUT_NOT_COMPATIBLE",
      });
    }
  }
  for (const spec of specs) {
    const tensor = fields[spec.name];
    const field = `${path}.${spec.name}`;
    if (tensor === undefined) {
      if (spec.required) violations.push({ field, description: "is required", reason: "DATA_INCOMPLETE" });
      continue;
    }
    const layout = checkLayout(spec, tensor, args);
    if (layout) {
      violations.push({ field, description: layout, reason: "DATA_LAYOUT_NOT_COMPATIBLE" });
      continue;
    }
    const value = checkValues(spec, tensor);
    if (value) violations.push({ field, description: value, reason: "DATA_NOT_VALID" });
  }
  return violations;
}

function checkLayout(spec: FieldSpec, tensor: Tensor, args: JsonObject): string | undefined {
  if (tensor.shape.length > 0 && elementCount(tensor.shape) !== tensor.values.length) {
    return `shape [${tensor.shape.join(", ")}] needs ${elementCount(tensor.shape)} values, got ${tensor.values.length}`;
  }
  const expected = resolveShape(spec.shape, args);
  // A one-element tensor serves a scalar field whatever its declared shape.
  if (expected.length === 0) {
    return tensor.values.length === 1 ? undefined : `must be a scalar, got ${tensor.values.length} values`;
  }
  // Without a shape, the values are read in the field's declared shape.
  if (tensor.shape.length === 0) {
    const count = elementCount(expected);
    return tensor.values.length === count
      ? undefined
      : `must have ${count} values (shape [${expected.join(", ")}]), got ${tensor.values.length}`;
  }
  const actual = effectiveShape(tensor);
  const same = actual.length === expected.length && actual.every((d, i) => d === expected[i]);
  return same ? undefined : `must have shape [${expected.join(", ")}], got [${actual.join(", ")}]`;
}

function checkValues(spec: FieldSpec, tensor: Tensor): string | undefined {
  for (let i = 0; i < tensor.values.length; i++) {
    const v = tensor.values[i]!;
    const at = tensor.values.length === 1 ? "" : ` at index ${i}`;
    if (!Number.isFinite(v)) return `must be finite, got ${v}${at}`;
    if (spec.integer && !Number.isInteger(v)) return `must be a whole number, got ${v}${at}`;
    const bounds = checkBounds(spec, v);
    if (bounds) return `${bounds}${at}`;
  }
  return undefined;
}

/** Resolves arguments by the schema, then checks them with the model's own consistency rules. */
export function resolveModelArguments(model: AnyModelType, given: JsonObject, path = "arguments") {
  const resolved = resolveArguments(model.schema, given, path);
  if (resolved.violations.length === 0 && model.checkArguments) {
    for (const p of model.checkArguments(resolved.arguments)) {
      resolved.violations.push({ field: `${path}.${p.argument}`, description: p.description, reason: "ARGUMENTS_NOT_VALID" });
    }
  }
  return resolved;
}

/** The schema's checks of one data map, then (when those pass) the model's own. */
export function validateData(
  model: AnyModelType,
  kind: DataKind,
  fields: Readonly<Record<string, Tensor>>,
  args: JsonObject,
  path: string,
): Violation[] {
  const violations = validateFields(model.schema[kind], fields, args, path);
  if (violations.length > 0 || !model.checkData) return violations;
  return model.checkData(kind, fields, args).map((p) => ({ ...p, field: `${path}.${p.field}` }));
}
