import { type ConnectRouter, cors as connectCors } from "@connectrpc/connect";
import cors from "cors";
import { compressionBrotli, compressionGzip, connectNodeAdapter } from "@connectrpc/connect-node";
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
import { InstanceCache } from "../domain/instance-cache.ts";
import { LearningService } from "../domain/learning.ts";
import { listenForInstanceChanges } from "../persistence/changes.ts";
import type { Database } from "../persistence/database.ts";
import { type CallLogging, observe, REQUEST_ID_HEADER } from "./interceptors.ts";
import { MESSAGE_LIMITS } from "./call-context.ts";
import type { Handlers, RequestHandler } from "./listen.ts";
import { unaryGrpc } from "./unary-grpc.ts";
import { unaryJson } from "./unary-json.ts";

export interface ServiceOptions {
  readonly inferBatchLimit: number;
  readonly learnConcurrency: number;
  readonly callbackAllow: readonly string[];
  readonly callbackTimeoutMs: number;
}

export function createServices(db: Database, options: ServiceOptions, logger: Logger) {
  const { orm } = db;
  const cache = new InstanceCache(orm);
  const inference = new InferenceService(orm, cache, { batchLimit: options.inferBatchLimit });
  const learning = new LearningService(
    db,
    cache,
    { concurrency: options.learnConcurrency, callbacks: { allow: options.callbackAllow, timeoutMs: options.callbackTimeoutMs } },
    logger,
  );
  let stopListening = async () => {};
  return {
    instances: new InstanceService(orm, cache),
    episodes: new EpisodeService(orm, cache),
    inference,
    learning,
    /** On PostgreSQL, listens for other replicas' changes: before any call fills the cache. */
    async prepare() {
      if (db.url) stopListening = await listenForInstanceChanges(db.url, (id) => cache.invalidate(id), () => cache.clear(), logger);
    },
    /** Starts the job queue and its workers (learning runs, callbacks); calls can be served meanwhile. */
    async start() {
      await learning.start();
    },
    /** Stops background work and commits what open streams hold; the database stays open. */
    async stop() {
      await learning.stop();
      await inference.drain();
      await stopListening();
    },
  };
}

export type Services = ReturnType<typeof createServices>;

/** The service implementations, mounted by the Connect router, the unary JSON path and the optional grpc-js listener. */
export const serviceImpls = (services: Services) =>
  [
    [ModelService, modelService(services.instances, services.episodes)],
    [InferenceApi, inferenceService(services.inference)],
    [LearningApi, learningService(services.learning)],
  ] as const;

export const routes = (services: Services) => (router: ConnectRouter) => {
  const [models, inference, learning] = serviceImpls(services);
  router.service(...models);
  router.service(...inference);
  router.service(...learning);
};

/**
 * connect-node's interceptors. The unary JSON path and the gRPC-only port run handlers without
 * them and call `beginCall` for what `observe` does: an interceptor added here goes there too.
 */
export const interceptors = (logging: CallLogging) => [observe(logging)];

export function createHandler(
  options: CallLogging & {
    services: Services;
    shutdownSignal: AbortSignal;
    corsOrigins: readonly string[];
  },
): Handlers {
  const protocol = {
    ...MESSAGE_LIMITS,
    acceptCompression: [compressionGzip, compressionBrotli],
    compressMinBytes: 1024,
  };
  const connect = connectNodeAdapter({
    routes: routes(options.services),
    interceptors: interceptors(options),
    shutdownSignal: options.shutdownSignal,
    ...protocol,
  });
  // Unary calls in the commonest forms skip connect-node's generic machinery, about half of their
  // CPU (README, "Serving"), and answer as it would (test/e2e/short-paths.test.ts).
  const shortPaths = { logger: options.logger, accessLog: options.accessLog, shutdownSignal: options.shutdownSignal, ...protocol };
  const impls = serviceImpls(options.services);
  const json = unaryJson(impls, shortPaths);
  const grpc = unaryGrpc(impls, shortPaths);
  const handler: RequestHandler = (req, res) => {
    if (!json(req, res)) connect(req, res);
  };
  if (options.corsOrigins.length === 0) return { request: handler, stream: grpc };
  const allowCors = cors({
    origin: options.corsOrigins.includes("*") ? "*" : [...options.corsOrigins],
    methods: [...connectCors.allowedMethods],
    allowedHeaders: [...connectCors.allowedHeaders, "Authorization", REQUEST_ID_HEADER],
    exposedHeaders: [...connectCors.exposedHeaders, REQUEST_ID_HEADER],
    maxAge: 7200,
  });
  return { request: (req, res) => allowCors(req as never, res as never, () => handler(req, res)), stream: grpc };
}
