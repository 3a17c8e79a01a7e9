// Per-call cost of every registered model's pure functions (no server, no database):
//   node bench/models.ts
// Inputs come from each schema's examples under default arguments, so new model types are
// measured without touching this file.
import { Random } from "../src/math/random.ts";
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

/**
 * Median over 5 repetitions of the per-iteration time in µs, each repetition running ≥ 100 ms, after
 * up to 50 warm-up calls (fewer when they take over a second: some learns take seconds each).
 */
function measure(run: () => void): number {
  const warmupEnd = performance.now() + 1000;
  for (let i = 0; i < 50 && performance.now() < warmupEnd; i++) run();
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

/** The noisy rotation of bench/data.ts: x_{t+1} = R(0.1) x_t + N(0, 0.01² I), y_t = x_t + N(0, 0.05² I). */
function rotationEvents(n: number): Fields[] {
  const random = new Random(3);
  const [cos, sin] = [Math.cos(0.1), Math.sin(0.1)];
  let [a, b] = [1, 0];
  return Array.from({ length: n }, () => {
    [a, b] = [cos * a - sin * b + 0.01 * random.normal(), sin * a + cos * b + 0.01 * random.normal()];
    return { y: { shape: [2], values: [a + 0.05 * random.normal(), b + 0.05 * random.normal()] } };
  });
}

// The API learning benchmark's case (bench/data.ts) without the server. Timed per call (median of 3 after a
// warm-up on 1 000 events) rather than through measure(), whose 50 warm-up calls would take minutes whenever a
// learn on 100 000 points takes seconds.
{
  const model = modelTypes.get("linear-state-space-model-v1")!;
  const { arguments: args } = resolveArguments(model.schema, {});
  const prior = model.initialParameters(args, 1);
  const state = model.initialState(args);
  const learnOn = (events: Fields[]) => model.learn({ arguments: args, prior, state, events, seed: 1, options: {} });
  sink = learnOn(rotationEvents(1_000));
  const events = rotationEvents(100_000);
  const samples = Array.from({ length: 3 }, () => {
    const start = performance.now();
    sink = learnOn(events);
    return performance.now() - start;
  });
  console.log(
    `\nlinear-state-space-model-v1 learn, 100 000 points of a noisy rotation (bench/data.ts), default arguments (${String(args.iterations)} EM iterations): ` +
      `${samples.sort((x, y) => x - y)[1]!.toFixed(0)} ms (median of 3)`,
  );
}
