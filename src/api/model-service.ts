import type { ServiceImpl } from "@connectrpc/connect";
import type { ModelService } from "../../gen/posterior/v1/model_service_pb.ts";
import type { EpisodeService } from "../domain/episodes.ts";
import type { InstanceService } from "../domain/instances.ts";
import { distributionsOut, episodeOut, fieldsIn, instanceOut, modelTypeOut, tensorsOut, timestampIn, timestampOut } from "./convert.ts";

export function modelService(instances: InstanceService, episodes: EpisodeService): ServiceImpl<typeof ModelService> {
  return {
    listModelTypes: () => ({ modelTypes: instances.listModelTypes().map(modelTypeOut) }),
    getModelType: (req) => ({ modelType: modelTypeOut(instances.getModelType(req.name)) }),

    async createInstance(req) {
      const instance = await instances.create({
        model: req.model,
        description: req.description,
        arguments: req.arguments ?? {},
        seed: req.seed,
      });
      return { instance: instanceOut(instance) };
    },
    getInstance: async (req) => ({ instance: instanceOut(await instances.get(req.instanceId)) }),
    async listInstances(req) {
      const page = await instances.list(req);
      return { instances: page.instances.map(instanceOut), nextPageToken: page.nextPageToken, totalSize: page.total };
    },
    async deleteInstance(req) {
      await instances.delete(req.instanceId);
      return {};
    },
    async getParameters(req) {
      const p = await instances.getParameters(req.instanceId, req.runId);
      return { parameters: distributionsOut(p.parameters), parametersVersion: p.version, runId: p.runId };
    },

    createEpisode: async (req) => ({ episode: episodeOut(await episodes.create(req.instanceId, req.name)) }),
    getEpisode: async (req) => ({ episode: episodeOut(await episodes.get(req.instanceId, req.name)) }),
    async listEpisodes(req) {
      const page = await episodes.list(req.instanceId, req);
      return { episodes: page.episodes.map(episodeOut), nextPageToken: page.nextPageToken, totalSize: page.total };
    },
    async deleteEpisode(req) {
      await episodes.delete(req.instanceId, req.name);
      return {};
    },
    wipeEpisode: async (req) => ({ episode: episodeOut(await episodes.wipe(req.instanceId, req.name)) }),
    async attachEvents(req) {
      const result = await episodes.attachEvents(
        req.instanceId,
        req.episode,
        req.events.map((e) => ({ timestamp: timestampIn(e.timestamp), data: fieldsIn(e.data), metadata: e.metadata })),
      );
      return { episode: episodeOut(result.episode), firstSeq: BigInt(result.firstSeq), lastSeq: BigInt(result.lastSeq) };
    },
    async listEvents(req) {
      const page = await episodes.listEvents(req.instanceId, req.episode, req);
      return {
        events: page.events.map((e) => ({
          seq: BigInt(e.seq),
          timestamp: timestampOut(e.timestamp),
          data: tensorsOut(e.data),
          metadata: e.metadata ?? undefined,
          learned: e.learned,
        })),
        nextPageToken: page.nextPageToken,
      };
    },
  };
}
