import type { EntityManager } from "@mikro-orm/sql";
import type { PgliteConnection } from "@mikro-orm/pglite";
import type { Job, PgBoss } from "pg-boss";
import type { Logger } from "pino";
import type { AppOrm } from "./database.ts";
import { withAdvisoryLock } from "./lock.ts";

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
  readonly options: JobQueueOptions;
  readonly #orm: AppOrm;
  readonly #url?: string;
  readonly #logger?: Logger;
  #starting?: Promise<Started>;
  #started?: Started;

  constructor(orm: AppOrm, url: string | undefined, options: JobQueueOptions, logger?: Logger) {
    this.#orm = orm;
    this.#url = url;
    this.options = options;
    this.#logger = logger;
  }

  /**
   * Starts pg-boss (creating or updating its schema) and its queues; calls while it starts, or
   * after, share that start, and a call after a failed one tries again. The server calls this once
   * it listens. Every other method needs a started queue; call this before opening a transaction
   * that sends or cancels a job, since on PGlite starting needs the connection it would hold.
   */
  start(): Promise<void> {
    this.#starting ??= (this.#url ? withAdvisoryLock(this.#url, "posterior-jobs", () => this.#start()) : this.#start()).then(
      (started) => (this.#started = started),
      (error: unknown) => {
        this.#starting = undefined; // the next call tries again
        throw error;
      },
    );
    return this.#starting.then(() => {});
  }

  async #start(): Promise<Started> {
    // Loaded here rather than at start-up: the server answers calls while this loads.
    const { fromKysely, fromPglite, PgBoss } = await import("pg-boss");
    const common = {
      schema: "pgboss",
      useListenNotify: true,
      // A dead worker's job is noticed through missed heartbeats; check for them often.
      monitorIntervalSeconds: 5,
      superviseIntervalSeconds: 5,
      // No cron schedules here. Without this, every start creates pg-boss's scheduling queue and
      // reads the clock skew, and a worker polls that queue every 5 s. On PGlite those queries run
      // on the thread that answers calls: about 80 ms at start, which delayed the first Infer.
      schedule: false,
    };
    const boss = this.#url
      ? new PgBoss({ ...common, connectionString: this.#url, max: 4, application_name: "posterior-jobs" })
      : new PgBoss({
          ...common,
          backend: "pglite",
          db: fromPglite(await (this.#orm.em.getConnection() as unknown as PgliteConnection).getNativeClient()),
        });
    boss.on("error", (error) => this.#logger?.error({ err: error }, "job queue error"));
    await boss.start();
    const started = { boss, inTransaction: (em: EntityManager) => fromKysely(em.getKysely<never>() as never) };
    try {
      await ensureQueue(boss, LEARN_QUEUE, {
        policy: "singleton",
        retryLimit: this.options.learnRetries,
        retryDelay: this.options.learnRetryDelaySeconds,
        retryBackoff: true,
        expireInSeconds: this.options.learnTimeoutSeconds,
        heartbeatSeconds: 10,
      });
      await ensureQueue(boss, CALLBACK_QUEUE, {
        retryLimit: this.options.callbackRetries,
        retryDelay: this.options.callbackRetryDelaySeconds,
        retryBackoff: true,
        expireInSeconds: 60,
      });
    } catch (error) {
      await boss.stop({ graceful: false, close: true }).catch(() => {});
      throw error;
    }
    return started;
  }

  /** The started queue; throws when `start()` has not finished (in a transaction it would deadlock). */
  get #ready(): Started {
    if (!this.#started) throw new Error("the job queue is not started: await start() first");
    return this.#started;
  }

  /** Sends a job about run `runId` as part of `em`'s open transaction. */
  async send(em: EntityManager, queue: string, runId: string, options: { id?: string; singletonKey?: string } = {}): Promise<void> {
    const { boss, inTransaction } = this.#ready;
    await boss.send(queue, { runId }, { ...options, db: inTransaction(em) });
  }

  async cancel(em: EntityManager, queue: string, id: string): Promise<void> {
    const { boss, inTransaction } = this.#ready;
    await boss.cancel(queue, id, { db: inTransaction(em) });
  }

  /** Hands the jobs of a queue, one at a time per slot, to `handler`. */
  async work(queue: string, concurrency: number, handler: (job: Job<RunJob>) => Promise<void>): Promise<void> {
    await this.#ready.boss.work<RunJob>(
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
    const [job] = await this.#ready.boss.findJobs(queue, { id });
    return job ? { state: job.state, retryCount: job.retryCount } : undefined;
  }

  /** Fails an active job whose worker is gone, so that its retry policy applies. */
  async fail(queue: string, id: string, reason: string): Promise<void> {
    await this.#ready.boss.fail(queue, id, { reason });
  }

  #stopping?: Promise<void>;

  /** Waits (up to 5 s) for the handlers in progress, then stops; later calls share the first. */
  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      const started = await this.#starting?.catch(() => undefined);
      await started?.boss.stop({ graceful: true, timeout: 5000, close: true });
    })();
    return this.#stopping;
  }
}

interface Started {
  readonly boss: PgBoss;
  /** pg-boss's handle on an open ORM transaction. */
  readonly inTransaction: (em: EntityManager) => ReturnType<typeof import("pg-boss").fromKysely>;
}

async function ensureQueue(boss: PgBoss, name: string, options: Parameters<PgBoss["createQueue"]>[1] & object) {
  const { policy, heartbeatSeconds, ...updatable } = options;
  // Options are fixed when a queue is created; later starts apply the configuration's.
  if (await boss.getQueue(name)) await boss.updateQueue(name, { ...updatable, notify: true });
  else await boss.createQueue(name, { ...options, notify: true });
}
