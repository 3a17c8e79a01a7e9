import { deriveSeed } from "../math/random.ts";
import type { Tensor } from "../math/tensor.ts";
import type { InferOutput, JsonObject } from "../models/types.ts";
import { type Violation, validateData } from "../models/validation.ts";
import type { AppOrm } from "../persistence/database.ts";
import { announceInstanceChange } from "../persistence/changes.ts";
import { Instance } from "../persistence/entities.ts";
import type { NewEvent } from "../persistence/events.ts";
import { DomainError, invalidData, invalidRequest, numerically } from "./errors.ts";
import { appendRows } from "./episodes.ts";
import { EventWriter } from "./event-writer.ts";
import type { InstanceCache, InstanceSnapshot } from "./instance-cache.ts";
import { InferenceStream, type StreamStart } from "./streams.ts";
import { fieldsToJson } from "../math/tensor.ts";
import { callArguments, DEFAULT_EPISODE, findEpisode, modelOf, parametersAfterRun } from "./records.ts";

export interface InferInput {
  readonly instanceId: string;
  readonly observation: Readonly<Record<string, Tensor>>;
  readonly goal: Readonly<Record<string, Tensor>>;
  readonly timestamp?: Date;
  readonly episode: string;
  readonly arguments: JsonObject;
  readonly storeEvent: boolean;
  readonly runId: string;
  readonly metadata?: JsonObject;
  /** Identifies a stochastic decision; the episode's next event number when absent. */
  readonly decisionIndex?: number;
}

export interface InferResult extends Omit<InferOutput<unknown>, "state"> {
  readonly instanceId: string;
  readonly episode: string;
  /** 0 when the observation was not stored. */
  readonly eventSeq: number;
  readonly parametersVersion: number;
  readonly parametersRunId: string;
  readonly seed: number;
}

export type BatchRow = { ok: true; result: InferResult } | { ok: false; error: unknown };

export class InferenceService {
  readonly #orm: AppOrm;
  readonly #batchLimit: number;
  readonly #cache: InstanceCache;
  readonly #events: EventWriter;
  readonly #streams = new Set<InferenceStream>();

  constructor(orm: AppOrm, cache: InstanceCache, options: { batchLimit: number }) {
    this.#orm = orm;
    this.#cache = cache;
    this.#events = new EventWriter(orm);
    this.#batchLimit = options.batchLimit;
  }

  async infer(input: InferInput): Promise<InferResult> {
    const computed = await this.#compute(input);
    return { ...computed.result, eventSeq: await computed.persist() };
  }

  /** Infers without writing; `persist` then stores the observation and any new state, and gives the event number. */
  async #compute(input: InferInput) {
    const episodeName = input.episode || DEFAULT_EPISODE;
    const instance = await this.#cache.get(input.instanceId);
    const model = modelOf(instance.model);
    const args = callArguments(model, instance, input.arguments);
    const violations: Violation[] = [
      ...validateData(model, "observation", input.observation, args, "observation"),
      ...validateData(model, "goal", input.goal, args, "goal"),
    ];
    if (violations.length > 0) throw invalidData(violations);

    const pinned = input.runId
      ? await parametersAfterRun(this.#orm.em.fork(), instance.id, input.runId)
      : { parameters: instance.parameters, version: instance.parametersVersion, runId: instance.parametersRunId };
    // A stochastic decision's randomness depends only on (instance seed, episode, decision index),
    // so the same decision comes out the same on any replica and after any restart.
    if (input.decisionIndex !== undefined && !Number.isSafeInteger(input.decisionIndex)) {
      throw invalidRequest("decision_index", `must be at most ${Number.MAX_SAFE_INTEGER}`);
    }
    let decisionIndex = input.decisionIndex ?? 0;
    if (input.decisionIndex === undefined && model.schema.stochastic) {
      const em = this.#orm.em.fork();
      decisionIndex = (await findEpisode(em, em.getReference(Instance, instance.id), episodeName)).eventCount + 1;
    }
    const seed = model.schema.stochastic ? deriveSeed(instance.seed, episodeName, decisionIndex) : 0;
    const output = numerically("inference", () =>
      model.infer({
        arguments: args,
        parameters: pinned.parameters,
        state: instance.state,
        observation: input.observation,
        goal: input.goal,
        seed,
        decisionIndex,
      }),
    );

    const event = input.storeEvent
      ? { timestamp: input.timestamp ?? new Date(), data: fieldsToJson(input.observation), metadata: input.metadata ?? null }
      : undefined;
    const { state, ...outputs } = output;
    const persist = (): Promise<number> => {
      if (state !== undefined) return this.#writeState(instance, state as JsonObject, episodeName, event);
      return event ? this.#events.append(instance.id, episodeName, event) : Promise.resolve(0);
    };
    const result = {
      ...outputs,
      instanceId: instance.id,
      episode: input.storeEvent ? episodeName : "",
      parametersVersion: pinned.version,
      parametersRunId: pinned.runId,
      seed,
    };
    return { result, persist, writesState: state !== undefined };
  }

  /** The new filter state, with the observation when it is stored, in one transaction. */
  async #writeState(instance: InstanceSnapshot, state: JsonObject, episodeName: string, event: NewEvent | undefined): Promise<number> {
    const seq = await this.#orm.em.fork().transactional(async (tx) => {
      let first = 0;
      if (event) {
        first = (await appendRows(tx, instance.id, episodeName, [event])).firstSeq;
      }
      // State read from an older version of the row: another writer came first, and the client retries.
      const updated = await tx.nativeUpdate(
        Instance,
        { id: instance.id, version: instance.version },
        { state, version: instance.version + 1, updatedAt: new Date() },
      );
      if (updated === 0) {
        throw new DomainError("aborted", "CONCURRENT_MODIFICATION", "the instance was changed concurrently; retry");
      }
      await announceInstanceChange(tx, instance.id);
      await tx.flush();
      return first;
    });
    // The row is now `instance` with this state and the next version (the update checked the version).
    this.#cache.update(instance, { ...instance, state, version: instance.version + 1 });
    return seq;
  }

  /** Opens a control-loop stream; `drain` waits for its final commit. */
  async openStream(start: StreamStart): Promise<InferenceStream> {
    const stream = await InferenceStream.open(this.#orm, this.#events, start);
    this.#streams.add(stream);
    return stream;
  }

  async closeStream(stream: InferenceStream): Promise<void> {
    try {
      await stream.close();
    } finally {
      this.#streams.delete(stream);
      this.#cache.invalidate(stream.instanceId);
    }
  }

  /** Commits what every open stream and the event writer still hold (at shutdown, before the database closes). */
  async drain(): Promise<void> {
    await Promise.allSettled([...this.#streams].map((s) => this.closeStream(s)));
    await this.#events.flush();
  }

  /** Rows are independent: each succeeds or fails on its own, in request order. */
  async inferBatch(inputs: readonly InferInput[]): Promise<BatchRow[]> {
    if (inputs.length === 0) throw invalidRequest("requests", "must contain at least one request");
    if (inputs.length > this.#batchLimit) {
      throw invalidRequest("requests", `must contain at most ${this.#batchLimit} requests, got ${inputs.length}`);
    }
    const rows: Array<Promise<BatchRow>> = [];
    for (const input of inputs) {
      let computed;
      try {
        computed = await this.#compute(input);
      } catch (error) {
        rows.push(Promise.resolve({ ok: false, error }));
        continue;
      }
      const { result } = computed;
      const row = computed.persist().then(
        (eventSeq): BatchRow => ({ ok: true, result: { ...result, eventSeq } }),
        (error: unknown): BatchRow => ({ ok: false, error }),
      );
      // A row that changes the filter state is committed before the next row reads it. Other rows'
      // events are queued in row order and share group commits.
      if (computed.writesState) await row;
      rows.push(row);
    }
    return Promise.all(rows);
  }
}
