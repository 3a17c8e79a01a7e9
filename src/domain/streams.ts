// A control loop's session: one instance and episode, the instance state held in memory for the
// stream's life, observations written in group commits so that a tick never waits on the database.
import { LockMode } from "@mikro-orm/core";
import { deriveSeed } from "../math/random.ts";
import { fieldsToJson, type Tensor } from "../math/tensor.ts";
import type { AnyModelType, Fields, JsonObject } from "../models/types.ts";
import { type Violation, validateData } from "../models/validation.ts";
import type { AppOrm } from "../persistence/database.ts";
import { Instance } from "../persistence/entities.ts";
import { announceInstanceChange } from "../persistence/changes.ts";
import type { NewEvent } from "../persistence/events.ts";
import type { EventWriter } from "./event-writer.ts";
import { invalidData, numerically } from "./errors.ts";
import type { InferResult } from "./inference.ts";
import { callArguments, DEFAULT_EPISODE, findEpisode, findInstance, modelOf } from "./records.ts";

export interface StreamStart {
  readonly instanceId: string;
  readonly episode: string;
  readonly storeEvent: boolean;
  readonly arguments: JsonObject;
  readonly tickDeadlineMs?: number;
}

export interface StreamTick {
  readonly observation: Readonly<Record<string, Tensor>>;
  readonly goal: Readonly<Record<string, Tensor>>;
  readonly timestamp?: Date;
  readonly deadlineMs?: number;
}

export interface TickOutcome {
  readonly tick: number;
  readonly result?: InferResult;
  readonly error?: unknown;
  readonly deadlineExceeded: boolean;
  /** Every tick up to this one has its event committed. */
  readonly durableTick: number;
  /** Every event of the episode up to this sequence number is committed. */
  readonly durableEventSeq: number;
}

/** A group commit happens after this many events, or at most this long after the first pending one. */
const GROUP_COMMIT_EVENTS = 256;
const GROUP_COMMIT_MS = 25;
/** Ticks wait for the database once this many events are pending, so memory stays bounded. */
const MAX_PENDING_EVENTS = 8 * GROUP_COMMIT_EVENTS;

export class InferenceStream {
  readonly #orm: AppOrm;
  readonly #events: EventWriter;
  readonly #model: AnyModelType;
  readonly #instance: Instance;
  readonly #args: JsonObject;
  readonly #episodeName: string;
  readonly #storeEvents: boolean;
  readonly #tickDeadlineMs: number | undefined;
  /** Decision indices continue the episode's event numbering as it was when the stream opened. */
  readonly #firstDecisionIndex: number;
  #state: JsonObject;
  #stateDirty = false;
  #tick = 0;
  #pending: Array<{ tick: number; event: NewEvent }> = [];
  #flushing: Promise<void> = Promise.resolve();
  #timer: NodeJS.Timeout | undefined;
  #failure: unknown;
  /** The state is written once, when the stream closes: group commits during the stream carry events only. */
  #closing = false;
  #durableTick = 0;
  #durableEventSeq = 0;

  private constructor(fields: {
    orm: AppOrm;
    events: EventWriter;
    model: AnyModelType;
    instance: Instance;
    args: JsonObject;
    episodeName: string;
    storeEvents: boolean;
    tickDeadlineMs: number | undefined;
    firstDecisionIndex: number;
  }) {
    this.#orm = fields.orm;
    this.#events = fields.events;
    this.#model = fields.model;
    this.#instance = fields.instance;
    this.#args = fields.args;
    this.#episodeName = fields.episodeName;
    this.#storeEvents = fields.storeEvents;
    this.#tickDeadlineMs = fields.tickDeadlineMs;
    this.#firstDecisionIndex = fields.firstDecisionIndex;
    this.#state = fields.instance.state;
  }

  static async open(orm: AppOrm, events: EventWriter, start: StreamStart): Promise<InferenceStream> {
    const em = orm.em.fork();
    const instance = await findInstance(em, start.instanceId);
    const model = modelOf(instance.model);
    const args = callArguments(model, instance, start.arguments);
    const episodeName = start.episode || DEFAULT_EPISODE;
    const episode = start.storeEvent || model.schema.stochastic ? await findEpisode(em, instance, episodeName) : undefined;
    return new InferenceStream({
      orm,
      events,
      model,
      instance,
      args,
      episodeName,
      storeEvents: start.storeEvent,
      tickDeadlineMs: start.tickDeadlineMs,
      firstDecisionIndex: (episode?.eventCount ?? 0) + 1,
    });
  }

  /** Infers one tick with the in-memory state; the tick's event is committed later, in order. */
  async tick(input: StreamTick): Promise<TickOutcome> {
    if (this.#failure) throw this.#failure;
    const tick = ++this.#tick;
    const started = performance.now();
    let result: InferResult | undefined;
    let error: unknown;
    try {
      result = this.#infer(input, tick);
    } catch (e) {
      error = e;
    }
    const deadline = input.deadlineMs ?? this.#tickDeadlineMs;
    const deadlineExceeded = deadline !== undefined && performance.now() - started > deadline;
    if (result && this.#storeEvents) {
      const event = { timestamp: input.timestamp ?? new Date(), data: fieldsToJson(input.observation), metadata: null };
      this.#pending.push({ tick, event });
      this.#scheduleFlush();
      if (this.#pending.length >= MAX_PENDING_EVENTS) await this.#flushing;
    }
    return { tick, result, error, deadlineExceeded, durableTick: this.#durableTick, durableEventSeq: this.#durableEventSeq };
  }

  get instanceId(): string {
    return this.#instance.id;
  }

  /** What is committed: every tick up to `tick`, every event of the episode up to `eventSeq`. */
  get durable(): { tick: number; eventSeq: number } {
    return { tick: this.#durableTick, eventSeq: this.#durableEventSeq };
  }

  /** Commits everything pending, including the final state. Safe to call more than once. */
  async close(): Promise<void> {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#closing = true;
    await this.#flush();
    if (this.#failure) throw this.#failure;
  }

  #infer(input: StreamTick, tick: number): InferResult {
    const violations: Violation[] = [
      ...validateData(this.#model, "observation", input.observation, this.#args, "observation"),
      ...validateData(this.#model, "goal", input.goal, this.#args, "goal"),
    ];
    if (violations.length > 0) throw invalidData(violations);
    const stochastic = this.#model.schema.stochastic ?? false;
    const decisionIndex = this.#firstDecisionIndex + tick - 1;
    const seed = stochastic ? deriveSeed(this.#instance.seed, this.#episodeName, decisionIndex) : 0;
    const output = numerically("inference", () =>
      this.#model.infer({
        arguments: this.#args,
        parameters: this.#instance.parameters,
        state: this.#state,
        observation: input.observation as Fields,
        goal: input.goal as Fields,
        seed,
        decisionIndex,
      }),
    );
    const { state, ...outputs } = output;
    if (state !== undefined) {
      this.#state = state as JsonObject;
      this.#stateDirty = true;
    }
    return {
      ...outputs,
      instanceId: this.#instance.id,
      episode: this.#storeEvents ? this.#episodeName : "",
      eventSeq: 0,
      parametersVersion: this.#instance.parametersVersion,
      parametersRunId: this.#instance.parametersRunId ?? "",
      seed,
    };
  }

  #scheduleFlush() {
    if (this.#pending.length >= GROUP_COMMIT_EVENTS) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
      void this.#flush();
    } else {
      // Every stream's timer ends on the same GROUP_COMMIT_MS boundary of the process clock, so the
      // shared writer puts all streams' events into one commit instead of one commit per stream.
      this.#timer ??= setTimeout(
        () => {
          this.#timer = undefined;
          void this.#flush();
        },
        GROUP_COMMIT_MS - (performance.now() % GROUP_COMMIT_MS),
      );
    }
  }

  /** Group commits run one after another, so events keep their tick order. */
  #flush(): Promise<void> {
    this.#flushing = this.#flushing.then(() => this.#commit()).catch((error: unknown) => {
      this.#failure ??= error;
    });
    return this.#flushing;
  }

  async #commit(): Promise<void> {
    if (this.#failure) return;
    const batch = this.#pending;
    const stateDirty = this.#closing && this.#stateDirty;
    if (batch.length === 0 && !stateDirty) return;
    this.#pending = [];
    if (stateDirty) this.#stateDirty = false;
    if (batch.length > 0) {
      // Through the writer shared by every stream and unary call: one commit carries many streams' events.
      const seqs = await Promise.all(batch.map((b) => this.#events.append(this.#instance.id, this.#episodeName, b.event)));
      this.#durableTick = batch.at(-1)!.tick;
      this.#durableEventSeq = Math.max(...seqs);
    }
    if (stateDirty) {
      const state = this.#state;
      await this.#orm.em.fork().transactional(async (tx) => {
        // While a stream is open it owns the instance state: the last tick's belief is what is kept.
        const instance = await tx.findOneOrFail(Instance, { id: this.#instance.id }, { lockMode: LockMode.PESSIMISTIC_WRITE });
        instance.state = state;
        await announceInstanceChange(tx, instance.id);
        await tx.flush();
      });
    }
  }
}
