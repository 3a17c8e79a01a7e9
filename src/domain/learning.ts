import { randomUUID } from "node:crypto";
import { LockMode } from "@mikro-orm/core";
import type { Logger } from "pino";
import type { JsonObject } from "../models/types.ts";
import type { Database } from "../persistence/database.ts";
import { announceInstanceChange } from "../persistence/changes.ts";
import { Episode, Run } from "../persistence/entities.ts";
import { CALLBACK_QUEUE, LEARN_QUEUE } from "../persistence/jobs.ts";
import { type CallbackOptions, checkCallbackUrl, deliverCallback } from "./callbacks.ts";
import { appendRows, type EventInput, validEvents } from "./episodes.ts";
import { DomainError, invalidRequest, notFound } from "./errors.ts";
import type { InstanceCache } from "./instance-cache.ts";
import { LearnerPool } from "./learner-pool.ts";
import { callArguments, DEFAULT_EPISODE, findInstance, findRun, modelOf, pageSize, pageToken } from "./records.ts";
import { RunExecutor } from "./run-executor.ts";
import { isFinished, RunEvents, type RunStatus, type RunView, runView } from "./runs.ts";

export type { RunStatus, RunView } from "./runs.ts";

export interface LearnInput {
  readonly instanceId: string;
  readonly episodes: readonly string[];
  readonly relearn: boolean;
  readonly parameters: readonly string[];
  readonly wait: boolean;
  readonly callbackUrl: string;
  readonly inlineEpisode: string;
  readonly inlineEvents: readonly EventInput[];
  readonly options: JsonObject;
}

export interface LearningOptions {
  /** Runs executed at once by this process, each on a thread of its own. */
  readonly concurrency: number;
  readonly callbacks: CallbackOptions;
}

/** How often waiting and watching re-read a run that may be executing in another process. */
const POLL_MS = 500;
/** How long CancelRun waits for a running learner to stop before answering. */
const CANCEL_WAIT_MS = 10_000;
/** How often runs whose job was lost are looked for. */
const RECOVERY_INTERVAL_MS = 30_000;

/**
 * Learning runs: created and queued atomically, executed by the job queue's workers (in this or
 * any replica on the same database), observable while they run, cancellable and reversible.
 */
export class LearningService {
  readonly #db: Database;
  readonly #options: LearningOptions;
  readonly #logger: Logger;
  readonly #events = new RunEvents();
  readonly #learners = new LearnerPool();
  readonly #executor: RunExecutor;
  readonly #cache: InstanceCache;
  #recovery?: NodeJS.Timeout;

  constructor(db: Database, cache: InstanceCache, options: LearningOptions, logger: Logger) {
    this.#db = db;
    this.#cache = cache;
    this.#options = options;
    this.#logger = logger;
    this.#executor = new RunExecutor(db.orm, db.jobs, this.#learners, this.#events, cache, logger);
  }

  /** Starts this process's workers for runs and callbacks. */
  async start(): Promise<void> {
    await this.#db.jobs.start();
    // With the embedded database this process is the only one, so active jobs lost their worker.
    const recovered = await this.#executor.recover(this.#db.kind === "pglite");
    if (recovered > 0) this.#logger.warn({ runs: recovered }, "failed runs that were interrupted too often");
    await this.#db.jobs.work(LEARN_QUEUE, this.#options.concurrency, (job) => this.#executor.execute(job.data.runId, job.signal));
    await this.#db.jobs.work(CALLBACK_QUEUE, 2, (job) =>
      deliverCallback(this.#db.orm, job.data.runId, this.#options.callbacks, this.#logger),
    );
    this.#recovery = setInterval(() => {
      this.#executor.recover(false).catch((error: unknown) => this.#logger.warn({ err: error }, "run recovery failed"));
    }, RECOVERY_INTERVAL_MS);
    this.#recovery.unref();
  }

  /** Sends runs executing here back to the queue and ends the learner threads. */
  async stop(): Promise<void> {
    clearInterval(this.#recovery);
    this.#executor.stopAll();
    await this.#db.jobs.stop();
    await this.#learners.close();
  }

  async learn(input: LearnInput, signal?: AbortSignal): Promise<RunView> {
    if (input.callbackUrl) checkCallbackUrl(input.callbackUrl, this.#options.callbacks.allow);
    await this.#db.jobs.start();
    const runId = await this.#db.orm.em.fork().transactional(async (em) => {
      const instance = await findInstance(em, input.instanceId, true);
      const model = modelOf(instance.model);
      const known = model.schema.parameters.map((p) => p.name);
      const unknown = input.parameters.filter((p) => !known.includes(p));
      if (unknown.length > 0) {
        throw invalidRequest("parameters", `unknown parameter ${JSON.stringify(unknown[0])}; this model has ${known.join(", ")}`);
      }
      if (input.parameters.length > 0 && known.some((p) => !input.parameters.includes(p))) {
        throw new DomainError("unimplemented", "PARAMETER_SUBSET_UNAVAILABLE", "learning a subset of the parameters is not available yet");
      }
      callArguments(model, instance, input.options, "options");
      const requested = [...new Set(input.episodes.map((n) => n || DEFAULT_EPISODE))];
      const existing = new Set((await em.find(Episode, { instance, name: { $in: requested } })).map((e) => e.name));
      const missing = requested.find((n) => !existing.has(n));
      if (missing !== undefined) throw notFound("EPISODE", "episode", missing);
      if (input.inlineEvents.length > 0) await appendRows(em, instance.id, input.inlineEpisode, validEvents(instance, input.inlineEvents));
      const run = em.create(Run, {
        id: randomUUID(),
        instance,
        kind: "learn",
        status: "queued",
        relearn: input.relearn,
        requestedEpisodes: requested,
        episodes: [],
        parameterNames: input.parameters.length > 0 ? [...input.parameters] : known,
        options: input.options,
        callbackUrl: input.callbackUrl || null,
      });
      await em.flush();
      await this.#db.jobs.send(em, LEARN_QUEUE, run.id, { id: run.id, singletonKey: instance.id });
      return run.id;
    });
    this.#logger.debug({ runId, instance: input.instanceId }, "run queued");
    if (!input.wait) return this.getRun(runId);
    return this.#untilFinished(runId, signal);
  }

  async getRun(runId: string): Promise<RunView> {
    const run = await findRun(this.#db.orm.em.fork(), runId);
    return runView(run, this.#executor.progressOf(run.id));
  }

  /** Runs newest first, optionally of one instance and in one status. */
  async listRuns(request: { instanceId: string; status?: RunStatus; pageSize: number; pageToken: string }) {
    const limit = pageSize(request.pageSize, 100, 1000);
    const offset = pageToken.decode(request.pageToken);
    const em = this.#db.orm.em.fork();
    const instance = request.instanceId ? await findInstance(em, request.instanceId) : undefined;
    const where = { ...(instance ? { instance } : {}), ...(request.status ? { status: request.status } : {}) };
    const [runs, total] = await em.findAndCount(Run, where, { orderBy: { createdAt: "desc", id: "asc" }, limit, offset });
    return {
      runs: runs.map((r) => runView(r, this.#executor.progressOf(r.id))),
      nextPageToken: offset + runs.length < total ? pageToken.encode(offset + runs.length) : "",
    };
  }

  /** The run now, then each time it changes, ending with its final state. */
  async *watch(runId: string, signal: AbortSignal): AsyncGenerator<RunView> {
    let previous = "";
    for (;;) {
      const view = await this.getRun(runId);
      const key = JSON.stringify([view.status, view.progress, view.attempts, view.error]);
      if (key !== previous) yield view;
      previous = key;
      if (isFinished(view.status)) return;
      await this.#events.next(runId, POLL_MS, signal);
      signal.throwIfAborted();
    }
  }

  /**
   * A queued run is cancelled at once; a running one stops at its learner's next iteration (this
   * waits up to CANCEL_WAIT_MS for that). A finished run cannot be cancelled.
   */
  async cancelRun(runId: string, signal?: AbortSignal): Promise<RunView> {
    await this.#db.jobs.start();
    const status = await this.#db.orm.em.fork().transactional(async (em) => {
      const run = await findRun(em, runId);
      await em.lock(run, LockMode.PESSIMISTIC_WRITE);
      await em.refresh(run);
      if (isFinished(run.status)) {
        throw new DomainError("failed_precondition", "RUN_FINISHED", `run ${run.id} has already ${run.status === "succeeded" ? "succeeded" : `ended ${run.status}`}`);
      }
      run.cancelRequested = true;
      if (run.status === "queued") {
        await this.#db.jobs.cancel(em, LEARN_QUEUE, run.id);
        await this.#executor.finishIn(em, run, "cancelled", "cancelled by request");
      }
      return run.status;
    });
    this.#events.changed(runId);
    if (status === "running") {
      this.#executor.cancelLocal(runId);
      return this.#untilFinished(runId, AbortSignal.any([AbortSignal.timeout(CANCEL_WAIT_MS), ...(signal ? [signal] : [])]));
    }
    return this.getRun(runId);
  }

  /**
   * Puts the instance's parameters and learned cursors back to what they were before or after an
   * earlier run, recorded as a restore run. The filter state, which follows the live system, stays.
   */
  async restoreParameters(instanceId: string, runId: string, point: "before" | "after"): Promise<RunView> {
    const view = await this.#db.orm.em.fork().transactional(async (em) => {
      const instance = await findInstance(em, instanceId, true);
      const source = await findRun(em, runId, instance);
      const parameters = point === "before" ? source.parametersBefore : source.parametersAfter;
      const cursors = point === "before" ? source.cursorsBefore : source.cursorsAfter;
      const version = point === "before" ? source.versionBefore : source.versionAfter;
      if (!parameters || version == null) {
        throw new DomainError(
          "failed_precondition",
          "RUN_HAS_NO_PARAMETERS",
          `run ${source.id} (${source.status}) recorded no parameters ${point} it; only succeeded runs can be restored`,
          { violations: [{ field: "run_id", description: `has no parameters ${point} it` }] },
        );
      }
      const episodes = await em.find(Episode, { instance });
      const now = new Date();
      const run = em.create(Run, {
        id: randomUUID(),
        instance,
        kind: "restore",
        status: "succeeded",
        episodes: [],
        parameterNames: modelOf(instance.model).schema.parameters.map((p) => p.name),
        options: {},
        restoredRunId: source.id,
        restorePoint: point,
        parametersBefore: instance.parameters,
        stateBefore: instance.state,
        versionBefore: instance.parametersVersion,
        cursorsBefore: Object.fromEntries(episodes.map((e) => [e.id, e.learnedCount])),
        attempts: 1,
        startedAt: now,
        finishedAt: now,
      });
      instance.parameters = parameters;
      instance.parametersVersion += 1;
      instance.parametersRunId = run.id;
      // Events learned after that point count as unlearned again; episodes made since then had learned nothing.
      if (cursors) for (const episode of episodes) episode.learnedCount = Math.min(cursors[episode.id] ?? 0, episode.eventCount);
      Object.assign(run, {
        parametersAfter: parameters,
        stateAfter: instance.state,
        versionAfter: instance.parametersVersion,
        cursorsAfter: Object.fromEntries(episodes.map((e) => [e.id, e.learnedCount])),
        metrics: { dataPoints: 0, durationSeconds: 0 },
      });
      await announceInstanceChange(em, instance.id);
      await em.flush();
      return runView(run);
    });
    this.#cache.invalidate(view.instanceId);
    this.#logger.info({ instance: instanceId, from: runId, point, runId: view.id }, "parameters restored");
    return view;
  }

  async #untilFinished(runId: string, signal?: AbortSignal): Promise<RunView> {
    for (;;) {
      const view = await this.getRun(runId);
      if (isFinished(view.status) || signal?.aborted) return view;
      await this.#events.next(runId, POLL_MS, signal);
    }
  }
}
