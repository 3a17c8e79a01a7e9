import { randomInt, randomUUID } from "node:crypto";
import type { Distribution } from "../math/distribution.ts";
import { modelTypes } from "../models/registry.ts";
import type { JsonObject, ModelSchema } from "../models/types.ts";
import { resolveModelArguments } from "../models/validation.ts";
import type { AppOrm } from "../persistence/database.ts";
import { Episode, Instance } from "../persistence/entities.ts";
import { announceInstanceChange } from "../persistence/changes.ts";
import { deleteEpisodes } from "../persistence/events.ts";
import { episodeCounts } from "../persistence/queries.ts";
import { invalidData, invalidRequest } from "./errors.ts";
import type { InstanceCache } from "./instance-cache.ts";
import {
  DEFAULT_EPISODE,
  findInstance,
  type InstanceView,
  instanceView,
  modelOf,
  pageSize,
  pageToken,
  parametersAfterRun,
} from "./records.ts";

export interface CreateInstanceInput {
  readonly model: string;
  readonly description: string;
  readonly arguments: JsonObject;
  readonly seed?: number;
}

export interface ParametersView {
  readonly parameters: Record<string, Distribution>;
  readonly version: number;
  readonly runId: string;
}

const MAX_DESCRIPTION = 1024;

export class InstanceService {
  readonly #orm: AppOrm;
  readonly #cache: InstanceCache | undefined;

  constructor(orm: AppOrm, cache?: InstanceCache) {
    this.#orm = orm;
    this.#cache = cache;
  }

  listModelTypes(): ModelSchema[] {
    return [...modelTypes.values()].map((m) => m.schema);
  }

  getModelType(name: string): ModelSchema {
    if (!name) throw invalidRequest("name", "is required");
    return modelOf(name).schema;
  }

  async create(input: CreateInstanceInput): Promise<InstanceView> {
    if (!input.model) throw invalidRequest("model", "is required");
    const model = modelOf(input.model);
    if (input.description.length > MAX_DESCRIPTION) {
      throw invalidRequest("description", `must be at most ${MAX_DESCRIPTION} characters`);
    }
    const { arguments: args, violations } = resolveModelArguments(model, input.arguments);
    if (violations.length > 0) throw invalidData(violations);
    const seed = input.seed ?? randomInt(0, 2 ** 32);
    const em = this.#orm.em.fork();
    const instance = em.create(Instance, {
      id: randomUUID(),
      model: model.schema.name,
      description: input.description,
      arguments: args,
      seed,
      parameters: model.initialParameters(args, seed),
      state: model.initialState(args),
    });
    em.create(Episode, { id: randomUUID(), instance, name: DEFAULT_EPISODE });
    await em.flush();
    return instanceView(instance, 1);
  }

  async get(id: string): Promise<InstanceView> {
    const em = this.#orm.em.fork();
    const instance = await findInstance(em, id);
    return instanceView(instance, await em.count(Episode, { instance }));
  }

  async list(request: { pageSize: number; pageToken: string; model: string }) {
    const limit = pageSize(request.pageSize, 100, 1000);
    const offset = pageToken.decode(request.pageToken);
    const em = this.#orm.em.fork();
    const where = request.model ? { model: request.model } : {};
    const [instances, total] = await em.findAndCount(Instance, where, {
      orderBy: { createdAt: "desc", id: "asc" },
      limit,
      offset,
    });
    const counts = await episodeCounts(em, instances);
    return {
      instances: instances.map((i) => instanceView(i, counts.get(i.id) ?? 0)),
      nextPageToken: offset + instances.length < total ? pageToken.encode(offset + instances.length) : "",
      total,
    };
  }

  async delete(id: string): Promise<void> {
    const deleted = await this.#orm.em.fork().transactional(async (em) => {
      // Locked, so that no episode is created for it meanwhile (creating one takes a key-share lock).
      const instance = await findInstance(em, id, true);
      await deleteEpisodes(em, { instanceId: instance.id });
      // Runs go with it through ON DELETE CASCADE.
      await em.nativeDelete(Instance, { id: instance.id });
      await announceInstanceChange(em, instance.id);
      return instance.id;
    });
    // The cache holds the id as stored (lower case), which the caller's may not be.
    this.#cache?.invalidate(deleted);
  }

  async getParameters(id: string, runId: string): Promise<ParametersView> {
    const em = this.#orm.em.fork();
    const instance = await findInstance(em, id);
    const model = modelOf(instance.model);
    if (!runId) {
      return {
        parameters: model.parameterPosteriors(instance.parameters),
        version: instance.parametersVersion,
        runId: instance.parametersRunId ?? "",
      };
    }
    const pinned = await parametersAfterRun(em, instance, runId);
    return { ...pinned, parameters: model.parameterPosteriors(pinned.parameters) };
  }
}
