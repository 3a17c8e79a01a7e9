import { Worker } from "node:worker_threads";
import type { JsonObject, LearnMetrics } from "../models/types.ts";

export interface LearnTask {
  readonly model: string;
  readonly arguments: JsonObject;
  readonly prior: JsonObject;
  readonly state: JsonObject;
  /** Event data as stored. */
  readonly events: readonly JsonObject[];
  readonly sequenceStarts: readonly number[];
  readonly seed: number;
  readonly options: JsonObject;
  /** One Int32: set to 1 to stop the learner at its next iteration. */
  readonly stop: SharedArrayBuffer;
}

export interface LearnResult {
  readonly parameters: JsonObject;
  readonly state?: JsonObject;
  readonly metrics: LearnMetrics;
}

export type LearnerMessage =
  | { kind: "progress"; iteration: number; total: number }
  | { kind: "done"; output: LearnResult }
  | { kind: "stopped" }
  | { kind: "failed"; numerical: boolean; message: string };

/** The model's learn function threw: the same data would fail again. */
export class LearnerFailure extends Error {
  readonly numerical: boolean;
  constructor(message: string, numerical: boolean) {
    super(message);
    this.numerical = numerical;
  }
}

/** A learner that ignores its stop flag for this long after the stop is given up on and its thread ended. */
const STOP_GRACE_MS = 2000;

/**
 * Threads that run model learn functions, reused between runs. Each learn has a thread to itself;
 * the job queue's concurrency bounds how many run at once.
 */
export class LearnerPool {
  readonly #idle: Worker[] = [];
  readonly #busy = new Set<Worker>();

  /**
   * Learns on a thread. When `signal` aborts, the learner stops at its next iteration (or its thread
   * is ended) and the promise rejects with the signal's reason.
   */
  learn(task: Omit<LearnTask, "stop">, signal: AbortSignal, onProgress: (iteration: number, total: number) => void): Promise<LearnResult> {
    signal.throwIfAborted();
    const stop = new SharedArrayBuffer(4);
    const worker = this.#idle.pop() ?? new Worker(new URL("./learner-thread.ts", import.meta.url));
    this.#busy.add(worker);
    return new Promise<LearnResult>((resolve, reject) => {
      let forced: NodeJS.Timeout | undefined;
      const settle = (reuse: boolean, outcome: () => void) => {
        clearTimeout(forced);
        signal.removeEventListener("abort", onAbort);
        worker.off("message", onMessage).off("error", onError).off("exit", onExit);
        this.#busy.delete(worker);
        if (reuse) this.#idle.push(worker);
        else void worker.terminate();
        outcome();
      };
      const onMessage = (message: LearnerMessage) => {
        if (message.kind === "progress") return onProgress(message.iteration, message.total);
        if (message.kind === "done") return settle(true, () => resolve(message.output));
        if (message.kind === "stopped") return settle(true, () => reject(signal.reason));
        settle(true, () => reject(new LearnerFailure(message.message, message.numerical)));
      };
      const onError = (error: Error) => settle(false, () => reject(new Error(`learner thread failed: ${error.message}`)));
      const onExit = (code: number) => settle(false, () => reject(new Error(`learner thread exited with code ${code}`)));
      const onAbort = () => {
        Atomics.store(new Int32Array(stop), 0, 1);
        forced = setTimeout(() => settle(false, () => reject(signal.reason)), STOP_GRACE_MS);
      };
      worker.on("message", onMessage).on("error", onError).on("exit", onExit);
      signal.addEventListener("abort", onAbort, { once: true });
      worker.postMessage({ ...task, stop } satisfies LearnTask);
    });
  }

  async close(): Promise<void> {
    const all = [...this.#idle, ...this.#busy];
    this.#idle.length = 0;
    await Promise.all(all.map((w) => w.terminate()));
  }
}
