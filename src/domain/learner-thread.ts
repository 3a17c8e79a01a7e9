// Runs a model's learn function off the main thread, so that serving goes on during long runs and
// a run can be stopped at its next iteration. No database access here: the main thread reads the
// data (and sends it as text, parsed here while it reads on) and persists the result.
import { parentPort } from "node:worker_threads";
import { NotPositiveDefiniteError } from "../math/linalg.ts";
import { loadSpecialFunctions } from "../math/special.ts";
import { fieldsFromJson, type Tensor } from "../math/tensor.ts";
import { modelTypes } from "../models/registry.ts";
import type { JsonObject } from "../models/types.ts";
import type { LearnerMessage, LearnerRequest, LearnTask } from "./learner-pool.ts";

const PROGRESS_INTERVAL_MS = 100;

// A thread starts when a run has claimed it, and its first data is still being read: load now
// what the main thread loads on first use.
loadSpecialFunctions();

class Stopped extends Error {}

function run(task: LearnTask, events: ReadonlyArray<Record<string, Tensor>>): LearnerMessage {
  const model = modelTypes.get(task.model);
  if (!model) return { kind: "failed", numerical: false, message: `unknown model ${task.model}` };
  const stop = new Int32Array(task.stop);
  let reported = 0;
  try {
    const output = model.learn({
      arguments: task.arguments,
      prior: task.prior,
      state: task.state,
      events,
      sequenceStarts: task.sequenceStarts,
      seed: task.seed,
      options: task.options,
      onIteration(iteration, total) {
        if (Atomics.load(stop, 0) !== 0) throw new Stopped();
        const now = performance.now();
        if (now - reported >= PROGRESS_INTERVAL_MS || iteration === total) {
          reported = now;
          parentPort!.postMessage({ kind: "progress", iteration, total } satisfies LearnerMessage);
        }
      },
    });
    return { kind: "done", output: { parameters: output.parameters, state: output.state, metrics: output.metrics } };
  } catch (error) {
    if (error instanceof Stopped) return { kind: "stopped" };
    const message = error instanceof Error ? error.message : String(error);
    return { kind: "failed", numerical: error instanceof NotPositiveDefiniteError, message };
  }
}

/** The events sent for the next learn; a failure to parse them is reported by that learn. */
let events: Array<Record<string, Tensor>> = [];
let unreadable: string | undefined;

function receive(arrays: readonly string[]): void {
  try {
    for (const text of arrays) for (const data of JSON.parse(text) as JsonObject[]) events.push(fieldsFromJson(data));
  } catch (error) {
    unreadable ??= error instanceof Error ? error.message : String(error);
  }
}

parentPort!.on("message", (request: LearnerRequest) => {
  if (request.kind === "data") return receive(request.arrays);
  if (request.kind === "learn") {
    const reply: LearnerMessage =
      unreadable === undefined
        ? run(request.task, events)
        : { kind: "failed", numerical: false, message: `unreadable event data: ${unreadable}` };
    parentPort!.postMessage(reply);
  }
  events = [];
  unreadable = undefined;
});
