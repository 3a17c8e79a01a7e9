// Per-call cost of every registered model's pure functions (no server, no database):
//   node bench/models.ts
// Inputs come from each schema's examples under default arguments, so new model types are
// measured without touching this file.
import { tensorFromJson } from "../src/math/tensor.ts";
import { modelTypes } from "../src/models/registry.ts";
import type { AnyModelType, FieldSpec, Fields, JsonObject } from "../src/models/types.ts";
import { resolveArguments, resolveShape } from "../src/models/validation.ts";

/** The given fields at their example values. */
function exampleFields(chosen: readonly FieldSpec[], args: JsonObject): Fields {
  return Object.fromEntries(
    chosen.map((s) => {
      const shape = resolveShape(s.shape, args);
      return [s.name, shape.length === 0 ? tensorFromJson(s.example[0]!) : { shape, values: [...s.example] }];
    }),
  );
}

// Results are kept here so the optimiser cannot drop the calls being measured.
export let sink: unknown;

/** Median over 5 repetitions of the per-iteration time in µs, each repetition running ≥ 100 ms. */
function measure(run: () => void): number {
  for (let i = 0; i < 50; i++) run();
  let iterations = 1;
  for (let t = 0; t < 100; iterations *= 2) {
    const start = performance.now();
    for (let i = 0; i < iterations; i++) run();
    t = performance.now() - start;
    if (t >= 100) break;
  }
  const samples = Array.from({ length: 5 }, () => {
    const start = performance.now();
    for (let i = 0; i < iterations; i++) run();
    return ((performance.now() - start) * 1000) / iterations;
  });
  return samples.sort((a, b) => a - b)[2]!;
}

function bench(model: AnyModelType) {
  const { arguments: args, violations } = resolveArguments(model.schema, {});
  if (violations.length > 0) throw new Error(`${model.schema.name}: default arguments are not valid: ${violations[0]!.description}`);
  const parameters = model.initialParameters(args, 1);
  const state = model.initialState(args);
  // Inference gets the fields it needs; events get every field, so that learning uses them.
  const needed = (specs: readonly FieldSpec[]) => (specs.some((s) => s.required) ? specs.filter((s) => s.required) : specs.slice(0, 1));
  const observation = exampleFields(needed(model.schema.observation), args);
  const goal = exampleFields(needed(model.schema.goal), args);
  const event = exampleFields(model.schema.event, args);
  // Events vary a little around the example: identical events are a degenerate (exactly fitted) data set.
  const varied = (i: number): Fields =>
    Object.fromEntries(
      Object.entries(event).map(([name, t]) => {
        const spec = model.schema.event.find((f) => f.name === name);
        const scale = 1 + (((i * 7919) % 97) - 48) / 480;
        return [name, spec?.integer ? t : { ...t, values: t.values.map((v) => v * scale) }];
      }),
    );
  const learnOn = (n: number) => {
    const events = Array.from({ length: n }, (_, i) => varied(i));
    return () => {
      sink = model.learn({ arguments: args, prior: parameters, state, events, seed: 1, options: {} });
    };
  };
  return {
    model: model.schema.name,
    inferMicros: measure(() => {
      sink = model.infer({ arguments: args, parameters, state, observation, goal, seed: 1, decisionIndex: 1 });
    }),
    learn1kMicros: measure(learnOn(1_000)),
    learn100kMillis: measure(learnOn(100_000)) / 1000,
  };
}

const rows = [...modelTypes.values()].map(bench);
console.log(`node ${process.version}, ${new Date().toISOString()}`);
console.log("| model | infer (µs/call) | learn 1 000 events (µs) | learn 100 000 events (ms) |");
console.log("|---|---|---|---|");
for (const r of rows) {
  console.log(`| ${r.model} | ${r.inferMicros.toPrecision(3)} | ${r.learn1kMicros.toPrecision(3)} | ${r.learn100kMillis.toPrecision(3)} |`);
}
