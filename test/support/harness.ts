import { type Client, createClient, createRouterTransport, type Transport } from "@connectrpc/connect";
import { type Logger, pino } from "pino";
import { InferenceService } from "../../gen/posterior/v1/inference_service_pb.ts";
import { LearningService } from "../../gen/posterior/v1/learning_service_pb.ts";
import { ModelService } from "../../gen/posterior/v1/model_service_pb.ts";
import type { Config } from "../../src/config.ts";
import type { Database } from "../../src/persistence/database.ts";
import { DEFAULT_JOB_OPTIONS } from "../../src/persistence/jobs.ts";
import { createServices, interceptors, routes } from "../../src/server/app.ts";
import { type RunningServer, startServer } from "../../src/server/server.ts";
import { freshDatabaseConfig, openTestDatabase } from "./database.ts";

export const silentLogger = pino({ level: process.env.TEST_LOG_LEVEL ?? "silent" });
export const silentLogging = { logger: silentLogger, accessLog: "all" } as const;

export interface Clients {
  readonly models: Client<typeof ModelService>;
  readonly inference: Client<typeof InferenceService>;
  readonly learning: Client<typeof LearningService>;
}

export const clientsFor = (transport: Transport): Clients => ({
  models: createClient(ModelService, transport),
  inference: createClient(InferenceService, transport),
  learning: createClient(LearningService, transport),
});

/** The real services, routes and interceptors on a fresh database, without sockets. */
export async function inMemoryApp(
  overrides: Partial<Config> = {},
): Promise<Clients & { db: Database; close: () => Promise<void> }> {
  const config = testConfig(overrides);
  const db = await openTestDatabase(config.jobs);
  const services = createServices(db, config, silentLogger);
  await services.prepare();
  await services.start();
  const transport = createRouterTransport(routes(services), { router: { interceptors: interceptors(silentLogging) } });
  return {
    db,
    ...clientsFor(transport),
    async close() {
      await services.stop();
      await db.close();
    },
  };
}

export function testConfig(overrides: Partial<Config> = {}): Config {
  return {
    host: "127.0.0.1",
    port: 0,
    dataDir: "memory://",
    logLevel: "silent",
    accessLog: "all",
    inferBatchLimit: 100,
    shutdownGraceMs: 1000,
    corsOrigins: [],
    learnConcurrency: 1,
    // Short delays, so that retries show within a test.
    jobs: { ...DEFAULT_JOB_OPTIONS, learnRetryDelaySeconds: 1, callbackRetryDelaySeconds: 1 },
    callbackAllow: [],
    callbackTimeoutMs: 2000,
    ...overrides,
  };
}

/** A real server on a free loopback port, on a fresh database. */
export async function startTestServer(overrides: Partial<Config> = {}, logger: Logger = silentLogger): Promise<RunningServer & { baseUrl: string }> {
  const database = await freshDatabaseConfig();
  const server = await startServer(testConfig({ databaseUrl: database.url, dataDir: database.dataDir, ...overrides }), logger, {
    loadDataDir: database.loadDataDir,
  });
  return { ...server, baseUrl: `http://127.0.0.1:${server.port}` };
}

export const tensor = (...values: number[]) => ({ values });
