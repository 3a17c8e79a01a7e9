import type { EntityManager } from "@mikro-orm/sql";
import type { PgliteConnection } from "@mikro-orm/pglite";
import { fromKysely, fromPglite, type Job, PgBoss } from "pg-boss";
import type { Logger } from "pino";
import type { AppOrm } from "./database.ts";

/** Learning runs; at most one active job per instance (the job's singleton key). */
export const LEARN_QUEUE = "learn";
/** Completion callbacks of finished runs. */
export const CALLBACK_QUEUE = "run-callback";

export interface JobQueueOptions {
  /** Redeliveries of a learning run after a transient failure or a crash. */
  readonly learnRetries: number;
  readonly learnRetryDelaySeconds: number;
  /** A run still going after this long is stopped and failed. */
  readonly learnTimeoutSeconds: number;
  readonly callbackRetries: number;
  readonly callbackRetryDelaySeconds: number;
}

export const DEFAULT_JOB_OPTIONS: JobQueueOptions = {
  learnRetries: 2,
  learnRetryDelaySeconds: 5,
  learnTimeoutSeconds: 3600,
  callbackRetries: 5,
  callbackRetryDelaySeconds: 2,
};

export interface RunJob {
  readonly runId: string;
}

export type JobState = "created" | "retry" | "active" | "completed" | "cancelled" | "failed";

/**
 * pg-boss on the application's own database: on PGlite through the ORM's in-process instance, on
 * PostgreSQL through its own small pool. Jobs are sent inside the caller's ORM transaction, so a job
 * exists exactly when the row that asked for it was committed.
 */
export class JobQueue {
  readonly #boss: PgBoss;
  readonly options: JobQueueOptions;

  private constructor(boss: PgBoss, options: JobQueueOptions) {
    this.#boss = boss;
    this.options = options;
  }

  static async open(orm: AppOrm, url: string | undefined, options: JobQueueOptions, logger?: Logger): Promise<JobQueue> {
    const common = {
      schema: "pgboss",
      useListenNotify: true,
      // A dead worker's job is noticed through missed heartbeats; check for them often.
      monitorIntervalSeconds: 5,
      superviseIntervalSeconds: 5,
    };
    const boss = url
      ? new PgBoss({ ...common, connectionString: url, max: 4, application_name: "posterior-jobs" })
      : new PgBoss({
          ...common,
          backend: "pglite",
          db: fromPglite(await (orm.em.getConnection() as unknown as PgliteConnection).getNativeClient()),
        });
    boss.on("error", (error) => logger?.error({ err: error }, "job queue error"));
    await boss.start();
    const queue = new JobQueue(boss, options);
    await queue.#ensureQueue(LEARN_QUEUE, {
      policy: "singleton",
      retryLimit: options.learnRetries,
      retryDelay: options.learnRetryDelaySeconds,
      retryBackoff: true,
      expireInSeconds: options.learnTimeoutSeconds,
      heartbeatSeconds: 10,
    });
    await queue.#ensureQueue(CALLBACK_QUEUE, {
      retryLimit: options.callbackRetries,
      retryDelay: options.callbackRetryDelaySeconds,
      retryBackoff: true,
      expireInSeconds: 60,
    });
    return queue;
  }

  async #ensureQueue(name: string, options: Parameters<PgBoss["createQueue"]>[1] & object) {
    const { policy, heartbeatSeconds, ...updatable } = options;
    // Options are fixed when a queue is created; later starts apply the configuration's.
    if (await this.#boss.getQueue(name)) await this.#boss.updateQueue(name, { ...updatable, notify: true });
    else await this.#boss.createQueue(name, { ...options, notify: true });
  }

  /** Sends a job about run `runId` as part of `em`'s open transaction. */
  async send(em: EntityManager, queue: string, runId: string, options: { id?: string; singletonKey?: string } = {}): Promise<void> {
    await this.#boss.send(queue, { runId }, { ...options, db: fromKysely(em.getKysely<never>() as never) });
  }

  async cancel(em: EntityManager, queue: string, id: string): Promise<void> {
    await this.#boss.cancel(queue, id, { db: fromKysely(em.getKysely<never>() as never) });
  }

  /** Hands the jobs of a queue, one at a time per slot, to `handler`. */
  async work(queue: string, concurrency: number, handler: (job: Job<RunJob>) => Promise<void>): Promise<void> {
    await this.#boss.work<RunJob>(
      queue,
      // NOTIFY wakes workers for new jobs only; retries and jobs a singleton held back wait for a poll.
      { localConcurrency: concurrency, batchSize: 1, pollingIntervalSeconds: 1, notifyPollingIntervalSeconds: 1 },
      async ([job]) => {
        if (job) await handler(job);
      },
    );
  }

  /** The job's state, or undefined when pg-boss no longer has it. */
  async state(queue: string, id: string): Promise<{ state: JobState; retryCount: number } | undefined> {
    const [job] = await this.#boss.findJobs(queue, { id });
    return job ? { state: job.state, retryCount: job.retryCount } : undefined;
  }

  /** Fails an active job whose worker is gone, so that its retry policy applies. */
  async fail(queue: string, id: string, reason: string): Promise<void> {
    await this.#boss.fail(queue, id, { reason });
  }

  #stopping?: Promise<void>;

  /** Waits (up to 5 s) for the handlers in progress, then stops; later calls share the first. */
  stop(): Promise<void> {
    this.#stopping ??= this.#boss.stop({ graceful: true, timeout: 5000, close: true });
    return this.#stopping;
  }
}
