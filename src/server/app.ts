import type { ConnectRouter } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import type { Logger } from "pino";
import { InferenceService as InferenceApi } from "../../gen/posterior/v1/inference_service_pb.ts";
import { LearningService as LearningApi } from "../../gen/posterior/v1/learning_service_pb.ts";
import { ModelService } from "../../gen/posterior/v1/model_service_pb.ts";
import { inferenceService } from "../api/inference-service.ts";
import { learningService } from "../api/learning-service.ts";
import { modelService } from "../api/model-service.ts";
import { EpisodeService } from "../domain/episodes.ts";
import { InferenceService } from "../domain/inference.ts";
import { InstanceService } from "../domain/instances.ts";
import { LearningService } from "../domain/learning.ts";
import type { AppOrm } from "../persistence/database.ts";
import { observe } from "./interceptors.ts";

export interface AppOptions {
  readonly orm: AppOrm;
  readonly logger: Logger;
  readonly inferBatchLimit: number;
}

export function createServices({ orm, logger, inferBatchLimit }: AppOptions) {
  const instances = new InstanceService(orm);
  const episodes = new EpisodeService(orm);
  return {
    instances,
    episodes,
    inference: new InferenceService(orm, { batchLimit: inferBatchLimit, logger }),
    learning: new LearningService(orm, episodes),
  };
}

export type Services = ReturnType<typeof createServices>;

export const routes = (services: Services) => (router: ConnectRouter) => {
  router.service(ModelService, modelService(services.instances, services.episodes));
  router.service(InferenceApi, inferenceService(services.inference));
  router.service(LearningApi, learningService(services.learning));
};

export const interceptors = (logger: Logger) => [observe(logger)];

export function createHandler(options: AppOptions & { shutdownSignal?: AbortSignal }) {
  return connectNodeAdapter({
    routes: routes(createServices(options)),
    interceptors: interceptors(options.logger),
    shutdownSignal: options.shutdownSignal,
    readMaxBytes: 16 << 20,
    writeMaxBytes: 64 << 20,
  });
}
