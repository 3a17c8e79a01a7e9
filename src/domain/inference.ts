import { deriveSeed } from "../math/random.ts";
import type { Tensor } from "../math/tensor.ts";
import type { InferOutput, JsonObject } from "../models/types.ts";
import { type Violation, validateData } from "../models/validation.ts";
import type { AppOrm } from "../persistence/database.ts";
import { appendEvents } from "../persistence/events.ts";
import { invalidData, invalidRequest, numerically } from "./errors.ts";
import { InferenceStream, type StreamStart } from "./streams.ts";
import { callArguments, DEFAULT_EPISODE, fieldsToJson, findEpisode, findInstance, modelOf, parametersAfterRun } from "./records.ts";

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
  readonly #streams = new Set<InferenceStream>();

  constructor(orm: AppOrm, options: { batchLimit: number }) {
    this.#orm = orm;
    this.#batchLimit = options.batchLimit;
  }

  async infer(input: InferInput): Promise<InferResult> {
    const episodeName = input.episode || DEFAULT_EPISODE;
    const em = this.#orm.em.fork();
    const instance = await findInstance(em, input.instanceId);
    const model = modelOf(instance.model);
    const args = callArguments(model, instance, input.arguments);
    const violations: Violation[] = [
      ...validateData(model, "observation", input.observation, args, "observation"),
      ...validateData(model, "goal", input.goal, args, "goal"),
    ];
    if (violations.length > 0) throw invalidData(violations);

    const pinned = input.runId
      ? await parametersAfterRun(em, instance, input.runId)
      : { parameters: instance.parameters, version: instance.parametersVersion, runId: instance.parametersRunId ?? "" };
    // A stochastic decision's randomness depends only on (instance seed, episode, decision index),
    // so the same decision comes out the same on any replica and after any restart.
    if (input.decisionIndex !== undefined && !Number.isSafeInteger(input.decisionIndex)) {
      throw invalidRequest("decision_index", `must be at most ${Number.MAX_SAFE_INTEGER}`);
    }
    let decisionIndex = input.decisionIndex ?? 0;
    if (input.decisionIndex === undefined && model.schema.stochastic) {
      decisionIndex = (await findEpisode(em, instance, episodeName)).eventCount + 1;
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

    let eventSeq = 0;
    if (input.storeEvent || output.state !== undefined) {
      eventSeq = await em.transactional(async (tx) => {
        let seq = 0;
        if (input.storeEvent) {
          const episode = await findEpisode(tx, instance, episodeName, true);
          const event = { timestamp: input.timestamp ?? new Date(), data: fieldsToJson(input.observation), metadata: input.metadata ?? null };
          seq = (await appendEvents(tx, episode, [event])).firstSeq;
        }
        // A concurrent state change fails the optimistic version check: ABORTED, for the client to retry.
        if (output.state !== undefined) instance.state = output.state as JsonObject;
        await tx.flush();
        return seq;
      });
    }
    const { state: _state, ...outputs } = output;
    return {
      ...outputs,
      instanceId: instance.id,
      episode: input.storeEvent ? episodeName : "",
      eventSeq,
      parametersVersion: pinned.version,
      parametersRunId: pinned.runId,
      seed,
    };
  }

  /** Opens a control-loop stream; `drain` waits for its final commit. */
  async openStream(start: StreamStart): Promise<InferenceStream> {
    const stream = await InferenceStream.open(this.#orm, start);
    this.#streams.add(stream);
    return stream;
  }

  async closeStream(stream: InferenceStream): Promise<void> {
    try {
      await stream.close();
    } finally {
      this.#streams.delete(stream);
    }
  }

  /** Commits what every open stream still holds (at shutdown, before the database closes). */
  async drain(): Promise<void> {
    await Promise.allSettled([...this.#streams].map((s) => this.closeStream(s)));
  }

  /** Rows are independent: each succeeds or fails on its own, in request order. */
  async inferBatch(inputs: readonly InferInput[]): Promise<BatchRow[]> {
    if (inputs.length === 0) throw invalidRequest("requests", "must contain at least one request");
    if (inputs.length > this.#batchLimit) {
      throw invalidRequest("requests", `must contain at most ${this.#batchLimit} requests, got ${inputs.length}`);
    }
    const rows: BatchRow[] = [];
    for (const input of inputs) {
      try {
        rows.push({ ok: true, result: await this.infer(input) });
      } catch (error) {
        rows.push({ ok: false, error });
      }
    }
    return rows;
  }
}
