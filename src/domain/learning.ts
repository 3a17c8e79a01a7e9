import { randomUUID } from "node:crypto";
import type { EntityManager } from "@mikro-orm/sql";
import type { Fields, JsonObject, LearnMetrics } from "../models/types.ts";
import type { AppOrm } from "../persistence/database.ts";
import { Episode, Run, type StoredEpisodeRange } from "../persistence/entities.ts";
import { readEventData } from "../persistence/events.ts";
import type { EpisodeService, EventInput } from "./episodes.ts";
import { DomainError, invalidRequest, notFound, numerically } from "./errors.ts";
import { DEFAULT_EPISODE, fieldsFromJson, findInstance, findRun, modelOf, pageSize, pageToken } from "./records.ts";

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

export type RunStatus = "queued" | "running" | "succeeded" | "failed" | "cancelled";

export type EpisodeRange = Readonly<StoredEpisodeRange>;

export interface RunView {
  readonly id: string;
  readonly instanceId: string;
  readonly kind: "learn" | "restore";
  readonly status: RunStatus;
  readonly episodes: readonly EpisodeRange[];
  readonly relearn: boolean;
  readonly parameterNames: readonly string[];
  readonly createdAt: Date;
  readonly startedAt: Date | null;
  readonly finishedAt: Date | null;
  readonly metrics: (LearnMetrics & { durationSeconds: number }) | null;
  readonly error: string;
  readonly versionBefore: number | null;
  readonly versionAfter: number | null;
  readonly attempts: number;
  readonly callbackUrl: string;
  readonly restoredRunId: string;
}

export const runView = (run: Run, instanceId: string): RunView => ({
  id: run.id,
  instanceId,
  kind: run.kind as RunView["kind"],
  status: run.status as RunStatus,
  episodes: run.episodes,
  relearn: run.relearn,
  parameterNames: run.parameterNames,
  createdAt: run.createdAt,
  startedAt: run.startedAt ?? null,
  finishedAt: run.finishedAt ?? null,
  metrics: (run.metrics as RunView["metrics"]) ?? null,
  error: run.error ?? "",
  versionBefore: run.versionBefore ?? null,
  versionAfter: run.versionAfter ?? null,
  attempts: run.attempts,
  callbackUrl: run.callbackUrl ?? "",
  restoredRunId: run.restoredRunId ?? "",
});

export class LearningService {
  readonly #orm: AppOrm;
  readonly #episodes: EpisodeService;

  constructor(orm: AppOrm, episodes: EpisodeService) {
    this.#orm = orm;
    this.#episodes = episodes;
  }

  async getRun(runId: string): Promise<RunView> {
    const run = await findRun(this.#orm.em.fork(), runId);
    return runView(run, run.instance.id);
  }

  /** Runs newest first, optionally of one instance and in one status. */
  async listRuns(request: { instanceId: string; status?: RunStatus; pageSize: number; pageToken: string }) {
    const limit = pageSize(request.pageSize, 100, 1000);
    const offset = pageToken.decode(request.pageToken);
    const em = this.#orm.em.fork();
    const instance = request.instanceId ? await findInstance(em, request.instanceId) : undefined;
    const where = { ...(instance ? { instance } : {}), ...(request.status ? { status: request.status } : {}) };
    const [runs, total] = await em.findAndCount(Run, where, { orderBy: { createdAt: "desc", id: "asc" }, limit, offset });
    return {
      runs: runs.map((r) => runView(r, r.instance.id)),
      nextPageToken: offset + runs.length < total ? pageToken.encode(offset + runs.length) : "",
    };
  }

  /**
   * Learns synchronously in one transaction: the parameters, the episodes' learned cursors and
   * the run record change together or not at all.
   */
  async learn(input: LearnInput): Promise<RunView> {
    if (!input.wait) {
      throw new DomainError("unimplemented", "ASYNC_RUNS_UNAVAILABLE", "asynchronous learning runs are not available yet; set wait: true");
    }
    if (input.callbackUrl) {
      throw new DomainError("unimplemented", "CALLBACKS_UNAVAILABLE", "completion callbacks are not available yet");
    }
    if (input.inlineEvents.length > 0) {
      // Validated and appended before learning; a failure below leaves them stored, like any attach.
      await this.#episodes.attachEvents(input.instanceId, input.inlineEpisode, input.inlineEvents);
    }
    return this.#orm.em.fork().transactional(async (em) => {
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
      const episodes = await selectEpisodes(em, instance.id, input.episodes);
      const started = new Date();
      const ranges: StoredEpisodeRange[] = [];
      const events: Fields[] = [];
      const sequenceStarts: number[] = [];
      for (const episode of episodes) {
        const fromSeq = input.relearn ? 1 : episode.learnedCount + 1;
        ranges.push({ episode: episode.name, fromSeq, toSeq: episode.eventCount });
        if (fromSeq <= episode.eventCount) sequenceStarts.push(events.length);
        for (const data of await readEventData(em, episode.id, fromSeq, episode.eventCount)) events.push(fieldsFromJson(data));
      }
      const prior = input.relearn ? model.initialParameters(instance.arguments, instance.seed) : instance.parameters;
      const learned = numerically("learning", () =>
        model.learn({
          arguments: instance.arguments,
          prior,
          state: instance.state,
          events,
          sequenceStarts,
          seed: instance.seed,
          options: input.options,
        }),
      );

      const run = em.create(Run, {
        id: randomUUID(),
        instance,
        kind: "learn",
        status: "succeeded",
        relearn: input.relearn,
        episodes: ranges,
        parameterNames: input.parameters.length > 0 ? [...input.parameters] : known,
        options: input.options,
        parametersBefore: instance.parameters,
        stateBefore: instance.state,
        versionBefore: instance.parametersVersion,
        attempts: 1,
        startedAt: started,
      });
      const changed = input.relearn || events.length > 0;
      if (changed) {
        instance.parameters = learned.parameters;
        if (learned.state !== undefined) instance.state = learned.state;
        instance.parametersVersion += 1;
        instance.parametersRunId = run.id;
      }
      if (input.relearn) {
        // The parameters now hold only the selected episodes' data; the others count as unlearned.
        await em.nativeUpdate(
          Episode,
          { instance: instance.id, id: { $nin: episodes.map((e) => e.id) } },
          { learnedCount: 0 },
        );
      }
      for (const episode of episodes) episode.learnedCount = episode.eventCount;
      const finished = new Date();
      Object.assign(run, {
        parametersAfter: instance.parameters,
        stateAfter: instance.state,
        versionAfter: instance.parametersVersion,
        finishedAt: finished,
        metrics: { ...learned.metrics, durationSeconds: (finished.getTime() - started.getTime()) / 1000 },
      });
      await em.flush();
      return runView(run, instance.id);
    });
  }
}

async function selectEpisodes(em: EntityManager, instanceId: string, names: readonly string[]): Promise<Episode[]> {
  const all = await em.find(Episode, { instance: instanceId }, { orderBy: { createdAt: "asc", name: "asc" } });
  if (names.length === 0) return all;
  return [...new Set(names.map((n) => n || DEFAULT_EPISODE))].map((name) => {
    const episode = all.find((e) => e.name === name);
    if (!episode) throw notFound("EPISODE", "episode", name);
    return episode;
  });
}
