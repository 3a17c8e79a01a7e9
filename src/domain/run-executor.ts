import { hostname } from "node:os";
import { LockMode } from "@mikro-orm/core";
import type { EntityManager } from "@mikro-orm/sql";
import type { Logger } from "pino";
import type { JsonObject } from "../models/types.ts";
import type { AppOrm } from "../persistence/database.ts";
import { Episode, Run, type StoredEpisodeRange } from "../persistence/entities.ts";
import { announceInstanceChange } from "../persistence/changes.ts";
import { readEventData } from "../persistence/events.ts";
import { CALLBACK_QUEUE, type JobQueue, LEARN_QUEUE } from "../persistence/jobs.ts";
import { DomainError, notFound } from "./errors.ts";
import type { InstanceCache } from "./instance-cache.ts";
import { type Learner, LearnerFailure, type LearnerPool, type LearnResult } from "./learner-pool.ts";
import { callArguments, DEFAULT_EPISODE, findInstance, modelOf } from "./records.ts";
import { isFinished, type RunEvents, type RunProgress } from "./runs.ts";

/** Asked for through CancelRun. */
export class RunCancelled extends Error {
  constructor() {
    super("cancelled by request");
  }
}

/** This process is stopping; the run goes back to the queue. */
class ServerStopping extends Error {
  constructor() {
    super("interrupted because the server stopped; it will be retried");
  }
}

/** How often a running run's progress is written and a cancel from another replica is looked for. */
const PROGRESS_WRITE_MS = 1000;
/** Times a run starts over because another change to the instance committed first. */
const MAX_ROUNDS = 5;

interface Snapshot {
  readonly instanceId: string;
  readonly model: string;
  readonly arguments: JsonObject;
  readonly prior: JsonObject;
  readonly state: JsonObject;
  readonly seed: number;
  readonly relearn: boolean;
  readonly parametersVersion: number;
  readonly rowVersion: number;
  readonly selected: ReadonlyArray<{ id: string; learnedCount: number; toSeq: number }>;
  readonly ranges: StoredEpisodeRange[];
  readonly eventCount: number;
  /** The thread that learns: each page of events was sent to it as soon as it was read. */
  readonly learner: Learner;
  readonly sequenceStarts: number[];
}

/**
 * Executes learning runs delivered by the job queue. The learner reads a snapshot of the data,
 * learns on a thread outside any transaction, then commits parameters, cursors and the run record
 * in one short transaction, provided nothing else changed the instance meanwhile (else it starts
 * over from the new parameters). The run row is the user-visible truth; the queue only delivers.
 */
export class RunExecutor {
  readonly #orm: AppOrm;
  readonly #jobs: JobQueue;
  readonly #learners: LearnerPool;
  readonly #events: RunEvents;
  readonly #logger: Logger;
  readonly #cache: InstanceCache;
  readonly #worker = `${hostname()}:${process.pid}`;
  /** Runs executing in this process: how to stop them, and their latest progress. */
  readonly #local = new Map<string, { controller: AbortController; progress: RunProgress }>();

  constructor(orm: AppOrm, jobs: JobQueue, learners: LearnerPool, events: RunEvents, cache: InstanceCache, logger: Logger) {
    this.#orm = orm;
    this.#cache = cache;
    this.#jobs = jobs;
    this.#learners = learners;
    this.#events = events;
    this.#logger = logger;
  }

  get maxAttempts(): number {
    return this.#jobs.options.learnRetries + 1;
  }

  progressOf(runId: string): RunProgress | undefined {
    return this.#local.get(runId)?.progress;
  }

  /** Stops a run executing here at its learner's next iteration. */
  cancelLocal(runId: string): void {
    this.#local.get(runId)?.controller.abort(new RunCancelled());
  }

  /** Sends every run executing here back to the queue. */
  stopAll(): void {
    for (const { controller } of this.#local.values()) controller.abort(new ServerStopping());
  }

  /** One delivery of a run's job. Throws only to have the queue deliver it again later. */
  async execute(runId: string, jobSignal: AbortSignal): Promise<void> {
    const attempt = await this.#claim(runId);
    if (attempt === undefined) return;
    const controller = new AbortController();
    const local = { controller, progress: { iteration: 0, totalIterations: 0, dataPoints: 0 } };
    this.#local.set(runId, local);
    const signal = AbortSignal.any([controller.signal, jobSignal]);
    const writer = setInterval(() => void this.#writeProgress(runId, local), PROGRESS_WRITE_MS);
    try {
      for (let round = 1; ; round++) {
        const snapshot = await this.#snapshot(runId);
        local.progress = { ...local.progress, dataPoints: snapshot.eventCount };
        this.#events.changed(runId);
        const learned = await this.#learn(snapshot, signal, (iteration, totalIterations) => {
          local.progress = { iteration, totalIterations, dataPoints: snapshot.eventCount };
          this.#events.changed(runId);
        });
        if (await this.#commit(runId, snapshot, learned, local.progress)) return;
        if (round === MAX_ROUNDS) throw new Error(`the instance changed during each of ${MAX_ROUNDS} attempts to commit`);
        this.#logger.info({ runId, round }, "instance changed while learning; learning again from its new parameters");
      }
    } catch (error) {
      await this.#settleFailure(runId, attempt, signal.aborted ? signal.reason : error, local.progress);
    } finally {
      clearInterval(writer);
      this.#local.delete(runId);
      this.#events.changed(runId);
    }
  }

  /** Marks the run running; undefined when there is nothing (more) to do for it. */
  async #claim(runId: string): Promise<number | undefined> {
    const claimed = await this.#orm.em.fork().transactional(async (em) => {
      const run = await em.findOne(Run, runId, { lockMode: LockMode.PESSIMISTIC_WRITE });
      if (!run || isFinished(run.status)) return undefined;
      if (run.cancelRequested) {
        await this.finishIn(em, run, "cancelled", new RunCancelled().message);
        return undefined;
      }
      if (run.status === "running") {
        this.#logger.warn({ runId, attempts: run.attempts, worker: run.worker }, "run was interrupted; running it again");
        if (run.attempts >= this.maxAttempts) {
          await this.finishIn(em, run, "failed", `interrupted ${run.attempts} times (the server stopped or crashed during the run)`);
          return undefined;
        }
      }
      run.status = "running";
      run.attempts += 1;
      run.startedAt ??= new Date();
      run.worker = this.#worker;
      run.progress = null;
      return run.attempts;
    });
    this.#events.changed(runId);
    return claimed;
  }

  async #snapshot(runId: string): Promise<Snapshot> {
    const em = this.#orm.em.fork();
    const run = await em.findOneOrFail(Run, runId, { populate: ["instance"] });
    const instance = run.instance;
    const model = modelOf(instance.model);
    const all = await em.find(Episode, { instance }, { orderBy: { createdAt: "asc", name: "asc" } });
    const selected =
      run.requestedEpisodes.length === 0
        ? all
        : run.requestedEpisodes.map((name) => all.find((e) => e.name === name) ?? throwMissing(name));
    const ranges: StoredEpisodeRange[] = [];
    const sequenceStarts: number[] = [];
    let eventCount = 0;
    // The learner parses each page while the next one is read.
    const learner = this.#learners.reserve();
    try {
      for (const episode of selected) {
        const fromSeq = run.relearn ? 1 : episode.learnedCount + 1;
        ranges.push({ episode: episode.name, fromSeq, toSeq: episode.eventCount });
        if (fromSeq <= episode.eventCount) sequenceStarts.push(eventCount);
        for await (const page of readEventData(em, episode.id, fromSeq, episode.eventCount)) {
          learner.send(page.arrays);
          eventCount += page.length;
        }
      }
      return {
        instanceId: instance.id,
        model: instance.model,
        arguments: callArguments(model, instance, run.options, "options"),
        prior: run.relearn ? model.initialParameters(instance.arguments, instance.seed) : instance.parameters,
        state: instance.state,
        seed: instance.seed,
        relearn: run.relearn,
        parametersVersion: instance.parametersVersion,
        rowVersion: instance.version,
        selected: selected.map((e) => ({ id: e.id, learnedCount: e.learnedCount, toSeq: e.eventCount })),
        ranges,
        eventCount,
        learner,
        sequenceStarts,
      };
    } catch (error) {
      learner.release();
      throw error;
    }
  }

  async #learn(snapshot: Snapshot, signal: AbortSignal, onProgress: (iteration: number, total: number) => void): Promise<LearnResult> {
    const { learner } = snapshot;
    if (snapshot.eventCount === 0 && !snapshot.relearn) {
      learner.release();
      return { parameters: snapshot.prior, metrics: { dataPoints: 0, iterations: 0, freeEnergy: [] } };
    }
    const task = {
      model: snapshot.model,
      arguments: snapshot.arguments,
      prior: snapshot.prior,
      state: snapshot.state,
      sequenceStarts: snapshot.sequenceStarts,
      seed: snapshot.seed,
      options: {},
    };
    try {
      return await learner.learn(task, signal, onProgress);
    } catch (error) {
      if (!(error instanceof LearnerFailure)) throw error;
      if (error.numerical) {
        throw new DomainError(
          "failed_precondition",
          "NUMERICAL_FAILURE",
          `learning failed: ${error.message}; the data may be degenerate (for example identical inputs fitted exactly)`,
        );
      }
      throw new DomainError("failed_precondition", "LEARNING_FAILED", `learning failed: ${error.message}`);
    }
  }

  /** Applies the result unless the instance changed since the snapshot; false means learn again. */
  async #commit(runId: string, snapshot: Snapshot, learned: LearnResult, progress: RunProgress): Promise<boolean> {
    const committed = await this.#orm.em.fork().transactional(async (em) => {
      const instance = await findInstance(em, snapshot.instanceId, true);
      const run = await em.findOneOrFail(Run, runId, { lockMode: LockMode.PESSIMISTIC_WRITE });
      if (run.cancelRequested) throw new RunCancelled();
      if (instance.parametersVersion !== snapshot.parametersVersion) return false;
      if (learned.state !== undefined && instance.version !== snapshot.rowVersion) return false;
      const episodes = await em.find(Episode, { instance });
      const byId = new Map(episodes.map((e) => [e.id, e]));
      for (const s of snapshot.selected) {
        const episode = byId.get(s.id);
        if (!episode || episode.learnedCount !== s.learnedCount || episode.eventCount < s.toSeq) return false;
      }
      const cursorsBefore = Object.fromEntries(episodes.map((e) => [e.id, e.learnedCount]));
      Object.assign(run, {
        parametersBefore: instance.parameters,
        stateBefore: instance.state,
        versionBefore: instance.parametersVersion,
        cursorsBefore,
      });
      if (snapshot.relearn || snapshot.eventCount > 0) {
        instance.parameters = learned.parameters;
        if (learned.state !== undefined) instance.state = learned.state;
        instance.parametersVersion += 1;
        instance.parametersRunId = run.id;
      }
      const learnedTo = new Map(snapshot.selected.map((s) => [s.id, s.toSeq]));
      for (const episode of episodes) {
        // Only what was learned counts as learned; on relearn the others now count as unlearned.
        const toSeq = learnedTo.get(episode.id);
        if (toSeq !== undefined) episode.learnedCount = toSeq;
        else if (snapshot.relearn) episode.learnedCount = 0;
      }
      const finished = new Date();
      Object.assign(run, {
        status: "succeeded",
        episodes: snapshot.ranges,
        parametersAfter: instance.parameters,
        stateAfter: instance.state,
        versionAfter: instance.parametersVersion,
        cursorsAfter: Object.fromEntries(episodes.map((e) => [e.id, e.learnedCount])),
        progress,
        error: null,
        finishedAt: finished,
        metrics: { ...learned.metrics, durationSeconds: (finished.getTime() - run.startedAt!.getTime()) / 1000 },
      });
      await this.#sendCallback(em, run);
      await announceInstanceChange(em, instance.id);
      return true;
    });
    if (committed) this.#cache.invalidate(snapshot.instanceId);
    if (committed) this.#logger.info({ runId, instance: snapshot.instanceId, dataPoints: snapshot.eventCount }, "run succeeded");
    return committed;
  }

  async #settleFailure(runId: string, attempt: number, error: unknown, progress: RunProgress): Promise<void> {
    const permanent = error instanceof DomainError;
    const cancelled = error instanceof RunCancelled;
    const message = error instanceof Error ? error.message : String(error);
    const retry = !permanent && !cancelled && attempt < this.maxAttempts;
    if (!permanent && !cancelled) this.#logger.warn({ runId, attempt, err: error }, "run attempt failed");
    await this.#orm.em.fork().transactional(async (em) => {
      const run = await em.findOne(Run, runId, { lockMode: LockMode.PESSIMISTIC_WRITE });
      if (!run || isFinished(run.status)) return;
      run.progress = { ...progress };
      if (retry) Object.assign(run, { status: "queued", error: `attempt ${attempt} failed: ${message}` });
      else await this.finishIn(em, run, cancelled ? "cancelled" : "failed", message);
    });
    this.#events.changed(runId);
    if (retry) throw error; // the queue delivers it again after its backoff
  }

  /** Ends a run without new parameters, and queues its callback. Call inside a transaction. */
  async finishIn(em: EntityManager, run: Run, status: "failed" | "cancelled", error: string): Promise<void> {
    Object.assign(run, { status, error, finishedAt: new Date() });
    await this.#sendCallback(em, run);
    this.#logger.info({ runId: run.id, status, error }, "run finished without new parameters");
  }

  async #sendCallback(em: EntityManager, run: Run): Promise<void> {
    if (run.callbackUrl) await this.#jobs.send(em, CALLBACK_QUEUE, run.id);
  }

  async #writeProgress(runId: string, local: { controller: AbortController; progress: RunProgress }): Promise<void> {
    try {
      const em = this.#orm.em.fork();
      await em.nativeUpdate(Run, { id: runId, status: "running" }, { progress: { ...local.progress } });
      const run = await em.findOne(Run, runId, { fields: ["cancelRequested"] });
      if (run?.cancelRequested) local.controller.abort(new RunCancelled());
    } catch (error) {
      this.#logger.warn({ runId, err: error }, "could not record run progress");
    }
  }

  /**
   * Runs left RUNNING or QUEUED whose job the queue no longer holds (its retries ran out while no
   * worker was alive) are failed. With `orphaned`, active jobs are known to have lost their worker
   * (the embedded database has one process, so at start-up none is alive) and are failed at once,
   * so that their retry policy applies instead of waiting for missed heartbeats.
   */
  async recover(orphaned: boolean): Promise<number> {
    const em = this.#orm.em.fork();
    const open = await em.find(Run, { status: { $in: ["queued", "running"] }, kind: "learn" });
    let failed = 0;
    for (const run of open) {
      const job = await this.#jobs.state(LEARN_QUEUE, run.id);
      if (job?.state === "active" && orphaned && !this.#local.has(run.id)) {
        await this.#jobs.fail(LEARN_QUEUE, run.id, "the server stopped during the run");
        continue;
      }
      if (job && !["failed", "cancelled", "completed"].includes(job.state)) continue;
      await this.#orm.em.fork().transactional(async (tx) => {
        const locked = await tx.findOne(Run, run.id, { lockMode: LockMode.PESSIMISTIC_WRITE });
        if (!locked || isFinished(locked.status)) return;
        failed += 1;
        await this.finishIn(tx, locked, "failed", `interrupted ${locked.attempts} times (the server stopped or crashed during the run)`);
      });
      this.#events.changed(run.id);
    }
    return failed;
  }
}

function throwMissing(name: string): never {
  throw notFound("EPISODE", "episode", name || DEFAULT_EPISODE);
}
