import { randomUUID } from "node:crypto";
import { UniqueConstraintViolationException } from "@mikro-orm/core";
import type { EntityManager } from "@mikro-orm/sql";
import { fieldsFromJson, fieldsToJson, type Tensor } from "../math/tensor.ts";
import type { JsonObject } from "../models/types.ts";
import { type Violation, validateData } from "../models/validation.ts";
import type { AppOrm } from "../persistence/database.ts";
import { Episode, type Instance } from "../persistence/entities.ts";
import { appendToEpisodes, deleteEpisodes, deleteEvents, type NewEvent, readEvents } from "../persistence/events.ts";
import { DomainError, invalidData, invalidRequest, notFound } from "./errors.ts";
import type { InstanceCache } from "./instance-cache.ts";
import {
  DEFAULT_EPISODE,
  type EpisodeView,
  episodeView,
  findEpisode,
  findInstance,
  modelOf,
  pageSize,
  pageToken,
} from "./records.ts";

export interface EventInput {
  readonly timestamp?: Date;
  readonly data: Readonly<Record<string, Tensor>>;
  readonly metadata?: JsonObject;
}

const MAX_NAME = 200;
const MAX_EVENTS_PER_CALL = 10_000;

export class EpisodeService {
  readonly #orm: AppOrm;
  readonly #instances: InstanceCache;

  constructor(orm: AppOrm, instances: InstanceCache) {
    this.#orm = orm;
    this.#instances = instances;
  }

  async create(instanceId: string, name: string): Promise<EpisodeView> {
    if (!name) throw invalidRequest("name", "is required");
    if (name.length > MAX_NAME) throw invalidRequest("name", `must be at most ${MAX_NAME} characters`);
    const em = this.#orm.em.fork();
    const instance = await findInstance(em, instanceId);
    const episode = em.create(Episode, { id: randomUUID(), instance, name });
    try {
      await em.flush();
    } catch (error) {
      if (!(error instanceof UniqueConstraintViolationException)) throw error;
      throw new DomainError("already_exists", "EPISODE_ALREADY_EXISTS", `episode ${JSON.stringify(name)} already exists`, {
        metadata: { episode: name },
      });
    }
    return episodeView(episode, instance.id);
  }

  async get(instanceId: string, name: string): Promise<EpisodeView> {
    const em = this.#orm.em.fork();
    const instance = await findInstance(em, instanceId);
    return episodeView(await findEpisode(em, instance, name), instance.id);
  }

  async list(instanceId: string, request: { pageSize: number; pageToken: string }) {
    const limit = pageSize(request.pageSize, 100, 1000);
    const offset = pageToken.decode(request.pageToken);
    const em = this.#orm.em.fork();
    const instance = await findInstance(em, instanceId);
    const [episodes, total] = await em.findAndCount(
      Episode,
      { instance },
      { orderBy: { createdAt: "asc", name: "asc" }, limit, offset },
    );
    return {
      episodes: episodes.map((e) => episodeView(e, instance.id)),
      nextPageToken: offset + episodes.length < total ? pageToken.encode(offset + episodes.length) : "",
      total,
    };
  }

  /** Deletes the episode and its events; what the parameters already learned from them stays learned. */
  async delete(instanceId: string, name: string): Promise<void> {
    if ((name || DEFAULT_EPISODE) === DEFAULT_EPISODE) {
      throw new DomainError(
        "failed_precondition",
        "DEFAULT_EPISODE_PROTECTED",
        "the default episode cannot be deleted; wipe it instead",
      );
    }
    await this.#orm.em.fork().transactional(async (em) => {
      const instance = await findInstance(em, instanceId);
      const episode = await findEpisode(em, instance, name);
      await deleteEpisodes(em, { episodeId: episode.id });
    });
  }

  /** Removes all events; sequence numbers restart at 1. The parameters are not touched. */
  async wipe(instanceId: string, name: string): Promise<EpisodeView> {
    return this.#orm.em.fork().transactional(async (em) => {
      const instance = await findInstance(em, instanceId);
      const episode = await findEpisode(em, instance, name, true);
      await deleteEvents(em, [episode.id]);
      Object.assign(episode, { eventCount: 0, learnedCount: 0, firstEventAt: null, lastEventAt: null });
      await em.flush();
      return episodeView(episode, instance.id);
    });
  }

  /** Validates every event against the model's event schema, then appends all of them or none. */
  async attachEvents(instanceId: string, name: string, events: readonly EventInput[], now = new Date()) {
    const instance = await this.#instances.get(instanceId);
    const rows = validEvents(instance, events, now);
    // One statement, atomic by itself: no transaction needed.
    const appended = await appendRows(this.#orm.em.fork(), instance.id, name, rows);
    const episode = appended.episode();
    return { episode: episodeView(episode, instance.id), firstSeq: appended.firstSeq, lastSeq: episode.eventCount };
  }

  async listEvents(instanceId: string, name: string, request: { pageSize: number; pageToken: string }) {
    const limit = pageSize(request.pageSize, 1000, 10_000);
    const afterSeq = pageToken.decode(request.pageToken);
    const em = this.#orm.em.fork();
    const instance = await findInstance(em, instanceId);
    const episode = await findEpisode(em, instance, name);
    const events = await readEvents(em, episode.id, afterSeq, limit);
    const last = events.at(-1)?.seq ?? afterSeq;
    return {
      events: events.map((e) => ({ ...e, data: fieldsFromJson(e.data), learned: e.seq <= episode.learnedCount })),
      nextPageToken: last < episode.eventCount && events.length === limit ? pageToken.encode(last) : "",
    };
  }
}

/** The events as rows to store, once every one fits the model's event schema; otherwise an error naming each offending field. */
export function validEvents(instance: Pick<Instance, "model" | "arguments">, events: readonly EventInput[], now = new Date()): NewEvent[] {
  if (events.length === 0) throw invalidRequest("events", "must contain at least one event");
  if (events.length > MAX_EVENTS_PER_CALL) {
    throw invalidRequest("events", `must contain at most ${MAX_EVENTS_PER_CALL} events, got ${events.length}`);
  }
  const model = modelOf(instance.model);
  const violations: Violation[] = events.flatMap((e, i) => [
    ...validateData(model, "event", e.data, instance.arguments, `events[${i}].data`),
    // PostgreSQL's jsonb cannot hold U+0000; refused here rather than failing the insert.
    ...(e.metadata && JSON.stringify(e.metadata).includes("\\u0000")
      ? [{ field: `events[${i}].metadata`, description: "must not contain the character U+0000", reason: "DATA_NOT_VALID" as const }]
      : []),
  ]);
  if (violations.length > 0) throw invalidData(violations);
  return events.map((e) => ({ timestamp: e.timestamp ?? now, data: fieldsToJson(e.data), metadata: e.metadata ?? null }));
}

/** Appends the rows to the instance's episode inside the caller's transaction. */
export async function appendRows(em: EntityManager, instanceId: string, name: string, rows: readonly NewEvent[]) {
  const episode = name || DEFAULT_EPISODE;
  const [appended] = await appendToEpisodes(em, [{ instanceId, episode, events: rows }]);
  if (!appended) throw notFound("EPISODE", "episode", episode);
  return appended;
}
