import type { LearnMetrics } from "../models/types.ts";
import { Run, type StoredEpisodeRange } from "../persistence/entities.ts";

export type RunStatus = "queued" | "running" | "succeeded" | "failed" | "cancelled";

export const isFinished = (status: string) => status === "succeeded" || status === "failed" || status === "cancelled";

export interface RunProgress {
  readonly iteration: number;
  readonly totalIterations: number;
  readonly dataPoints: number;
}

export interface CallbackRecord {
  readonly attempts: number;
  readonly lastStatusCode: number;
  readonly lastError: string;
  readonly deliveredAt: string | null;
}

export interface RunView {
  readonly id: string;
  readonly instanceId: string;
  readonly kind: "learn" | "restore";
  readonly status: RunStatus;
  readonly episodes: readonly Readonly<StoredEpisodeRange>[];
  readonly relearn: boolean;
  readonly parameterNames: readonly string[];
  readonly createdAt: Date;
  readonly startedAt: Date | null;
  readonly finishedAt: Date | null;
  readonly progress: RunProgress | null;
  readonly metrics: (LearnMetrics & { durationSeconds: number }) | null;
  readonly error: string;
  readonly versionBefore: number | null;
  readonly versionAfter: number | null;
  readonly attempts: number;
  readonly worker: string;
  readonly callbackUrl: string;
  readonly callback: CallbackRecord | null;
  readonly restoredRunId: string;
}

export const runView = (run: Run, progress?: RunProgress): RunView => ({
  id: run.id,
  instanceId: run.instance.id,
  kind: run.kind as RunView["kind"],
  status: run.status as RunStatus,
  episodes: run.episodes,
  relearn: run.relearn,
  parameterNames: run.parameterNames,
  createdAt: run.createdAt,
  startedAt: run.startedAt ?? null,
  finishedAt: run.finishedAt ?? null,
  progress: progress ?? (run.progress as RunProgress | null | undefined) ?? null,
  metrics: (run.metrics as RunView["metrics"]) ?? null,
  error: run.error ?? "",
  versionBefore: run.versionBefore ?? null,
  versionAfter: run.versionAfter ?? null,
  attempts: run.attempts,
  worker: run.worker ?? "",
  callbackUrl: run.callbackUrl ?? "",
  callback: (run.callback as CallbackRecord | null | undefined) ?? null,
  restoredRunId: run.restoredRunId ?? "",
});

/**
 * Change notices for runs handled in this process, so that waiting and watching react at once;
 * changes made by other replicas are picked up by re-reading the run on a timer.
 */
export class RunEvents {
  readonly #listeners = new Map<string, Set<() => void>>();

  changed(runId: string): void {
    for (const listener of this.#listeners.get(runId) ?? []) listener();
  }

  /** Resolves at the run's next local change, after `ms`, or when `signal` aborts. */
  next(runId: string, ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const set = this.#listeners.get(runId) ?? new Set();
      this.#listeners.set(runId, set);
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", done);
        set.delete(done);
        if (set.size === 0) this.#listeners.delete(runId);
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal?.addEventListener("abort", done, { once: true });
      set.add(done);
    });
  }
}
