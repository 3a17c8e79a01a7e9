import { Worker } from "node:worker_threads";
import type { JsonObject, LearnMetrics } from "../models/types.ts";

export interface LearnTask {
  readonly model: string;
  readonly arguments: JsonObject;
  readonly prior: JsonObject;
  readonly state: JsonObject;
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

/** To the thread: event data (JSON array texts of stored event data) ahead of the task that learns from it all. */
export type LearnerRequest =
  | { kind: "data"; arrays: readonly string[] }
  | { kind: "discard" }
  | { kind: "learn"; task: LearnTask };

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

// Beside this module in the sources; beside the bundle's chunks in dist/ (scripts/build.ts).
const LEARNER_THREAD = new URL(import.meta.url.endsWith(".ts") ? "./learner-thread.ts" : "./learner-thread.js", import.meta.url);

/**
 * Threads that run model learn functions, reused between runs. Each learn has a thread to itself;
 * the job queue's concurrency bounds how many run at once.
 */
export class LearnerPool {
  readonly #idle: Worker[] = [];
  readonly #busy = new Set<Worker>();

  /** A thread for one learn, kept until the learn ends or `release` is called. */
  reserve(): Learner {
    const worker = this.#idle.pop() ?? new Worker(LEARNER_THREAD);
    this.#busy.add(worker);
    return new Learner(worker, (reuse) => {
      this.#busy.delete(worker);
      if (reuse) this.#idle.push(worker);
      else void worker.terminate();
    });
  }

  async close(): Promise<void> {
    const all = [...this.#idle, ...this.#busy];
    this.#idle.length = 0;
    await Promise.all(all.map((w) => w.terminate()));
  }
}

/**
 * A reserved thread. Event data sent while the rest is read is parsed there meanwhile; `learn`
 * then learns from all of it, in the order sent.
 */
export class Learner {
  readonly #worker: Worker;
  readonly #giveBack: (reuse: boolean) => void;
  /** Why the thread ended, if it did (parsing a snapshot can run it out of memory before `learn`). */
  #ended: Error | undefined;
  #onEnded = () => {};
  readonly #onError = (error: Error) => this.#end(new Error(`learner thread failed: ${error.message}`));
  readonly #onExit = (code: number) => this.#end(new Error(`learner thread exited with code ${code}`));

  constructor(worker: Worker, giveBack: (reuse: boolean) => void) {
    this.#worker = worker;
    this.#giveBack = giveBack;
    worker.on("error", this.#onError).on("exit", this.#onExit);
  }

  send(arrays: readonly string[]): void {
    this.#post({ kind: "data", arrays });
  }

  /** Returns the thread without learning, dropping the data sent. */
  release(): void {
    if (!this.#ended) this.#post({ kind: "discard" });
    this.#return(true);
  }

  /**
   * Learns on the thread, which is then returned to the pool. When `signal` aborts, the learner
   * stops at its next iteration (or its thread is ended) and the promise rejects with the signal's reason.
   */
  learn(task: Omit<LearnTask, "stop">, signal: AbortSignal, onProgress: (iteration: number, total: number) => void): Promise<LearnResult> {
    if (this.#ended || signal.aborted) {
      const reason: unknown = this.#ended ?? signal.reason;
      this.release();
      return Promise.reject(reason);
    }
    const stop = new SharedArrayBuffer(4);
    const worker = this.#worker;
    return new Promise<LearnResult>((resolve, reject) => {
      let forced: NodeJS.Timeout | undefined;
      const settle = (reuse: boolean, outcome: () => void) => {
        clearTimeout(forced);
        signal.removeEventListener("abort", onAbort);
        worker.off("message", onMessage);
        this.#return(reuse);
        outcome();
      };
      const onMessage = (message: LearnerMessage) => {
        if (message.kind === "progress") return onProgress(message.iteration, message.total);
        if (message.kind === "done") return settle(true, () => resolve(message.output));
        if (message.kind === "stopped") return settle(true, () => reject(signal.reason));
        settle(true, () => reject(new LearnerFailure(message.message, message.numerical)));
      };
      const onAbort = () => {
        Atomics.store(new Int32Array(stop), 0, 1);
        forced = setTimeout(() => settle(false, () => reject(signal.reason)), STOP_GRACE_MS);
      };
      this.#onEnded = () => settle(false, () => reject(this.#ended));
      worker.on("message", onMessage);
      signal.addEventListener("abort", onAbort, { once: true });
      this.#post({ kind: "learn", task: { ...task, stop } });
    });
  }

  #end(error: Error): void {
    this.#ended ??= error;
    this.#onEnded();
  }

  /** Gives the thread back: to be reused unless it ended or is to be ended. */
  #return(reuse: boolean): void {
    this.#worker.off("error", this.#onError).off("exit", this.#onExit);
    this.#giveBack(reuse && !this.#ended);
  }

  #post(request: LearnerRequest): void {
    this.#worker.postMessage(request);
  }
}
