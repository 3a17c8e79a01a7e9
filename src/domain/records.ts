// Lookups shared by the domain services, and the plain views they return.
import { LockMode } from "@mikro-orm/core";
import type { EntityManager } from "@mikro-orm/sql";
import { modelTypes } from "../models/registry.ts";
import type { AnyModelType, JsonObject } from "../models/types.ts";
import { resolveModelArguments } from "../models/validation.ts";
import { Episode, Instance, Run } from "../persistence/entities.ts";
import { invalidData, invalidRequest, notFound } from "./errors.ts";

export const DEFAULT_EPISODE = "default";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function requireUuid(field: string, value: string): string {
  if (!value) throw invalidRequest(field, "is required");
  if (!UUID.test(value)) throw invalidRequest(field, `must be a UUID, got ${JSON.stringify(value)}`);
  return value.toLowerCase();
}

export function modelOf(name: string): AnyModelType {
  const model = modelTypes.get(name);
  if (!model) throw notFound("MODEL", "model", name);
  return model;
}

export async function findInstance(em: EntityManager, id: string, lock = false): Promise<Instance> {
  const instanceId = requireUuid("instance_id", id);
  const instance = await em.findOne(
    Instance,
    { id: instanceId },
    lock ? { lockMode: LockMode.PESSIMISTIC_WRITE } : {},
  );
  if (!instance) throw notFound("INSTANCE", "instance_id", id);
  return instance;
}

export async function findEpisode(em: EntityManager, instance: Instance, name: string, lock = false): Promise<Episode> {
  const episode = await em.findOne(
    Episode,
    { instance, name: name || DEFAULT_EPISODE },
    lock ? { lockMode: LockMode.PESSIMISTIC_WRITE } : {},
  );
  if (!episode) throw notFound("EPISODE", "episode", name || DEFAULT_EPISODE);
  return episode;
}

export async function findRun(em: EntityManager, id: string, instance?: Instance | string): Promise<Run> {
  const runId = requireUuid("run_id", id);
  const run = await em.findOne(Run, instance ? { id: runId, instance } : { id: runId });
  if (!run) throw notFound("RUN", "run_id", id);
  return run;
}

/** The parameters an instance had right after one of its runs. */
export async function parametersAfterRun(em: EntityManager, instance: Instance | string, runId: string) {
  const run = await findRun(em, runId, instance);
  if (!run.parametersAfter || run.versionAfter == null) {
    throw invalidRequest("run_id", `run ${runId} did not produce parameters (status ${run.status})`);
  }
  return { parameters: run.parametersAfter, version: run.versionAfter, runId: run.id };
}


export interface InstanceView {
  readonly id: string;
  readonly model: string;
  readonly description: string;
  readonly arguments: JsonObject;
  readonly seed: number;
  readonly parametersVersion: number;
  readonly createdAt: Date;
  readonly updatedAt: Date;
  readonly episodeCount: number;
}

export const instanceView = (i: Instance, episodeCount: number): InstanceView => ({
  id: i.id,
  model: i.model,
  description: i.description,
  arguments: i.arguments,
  seed: i.seed,
  parametersVersion: i.parametersVersion,
  createdAt: i.createdAt,
  updatedAt: i.updatedAt,
  episodeCount,
});

export interface EpisodeView {
  readonly instanceId: string;
  readonly name: string;
  readonly eventCount: number;
  readonly learnedCount: number;
  readonly firstEventAt: Date | null;
  readonly lastEventAt: Date | null;
  readonly createdAt: Date;
  readonly updatedAt: Date;
}

export const episodeView = (e: Episode, instanceId: string): EpisodeView => ({
  instanceId,
  name: e.name,
  eventCount: e.eventCount,
  learnedCount: e.learnedCount,
  firstEventAt: e.firstEventAt ?? null,
  lastEventAt: e.lastEventAt ?? null,
  createdAt: e.createdAt,
  updatedAt: e.updatedAt,
});

/** Opaque page tokens: the position to continue from. */
export const pageToken = {
  encode: (position: number) => Buffer.from(`after:${position}`).toString("base64url"),
  decode(token: string, field = "page_token"): number {
    if (!token) return 0;
    const match = /^after:(\d{1,15})$/.exec(Buffer.from(token, "base64url").toString());
    if (!match) throw invalidRequest(field, "is not a token this server issued");
    return Number(match[1]);
  },
};

export function pageSize(requested: number, fallback: number, maximum: number, field = "page_size"): number {
  if (requested < 0 || requested > maximum) throw invalidRequest(field, `must be between 0 and ${maximum}`);
  return requested || fallback;
}

/** The instance's arguments with this call's overrides, which the schema must allow. */
export function callArguments(
  model: AnyModelType,
  instance: { readonly arguments: JsonObject },
  overrides: JsonObject,
  field = "arguments",
): JsonObject {
  const names = Object.keys(overrides);
  if (names.length === 0) return instance.arguments;
  const fixed = names.filter((n) => !model.schema.arguments.find((a) => a.name === n)?.overridable);
  if (fixed.length > 0) {
    throw invalidData(
      fixed.map((n) => ({
        field: `${field}.${n}`,
        description: model.schema.arguments.some((a) => a.name === n)
          ? "is fixed at instance creation and cannot be overridden per call"
          : `unknown argument for model ${model.schema.name}`,
        reason: "ARGUMENTS_NOT_VALID",
      })),
    );
  }
  const { arguments: args, violations } = resolveModelArguments(model, { ...instance.arguments, ...overrides }, field);
  if (violations.length > 0) throw invalidData(violations);
  return args;
}
