import type { Logger } from "pino";
import type { Config } from "../config.ts";
import { openDatabase } from "../persistence/database.ts";
import { createHandler } from "./app.ts";
import { listen } from "./listen.ts";

export interface RunningServer {
  readonly port: number;
  stop(): Promise<void>;
}

export async function startServer(
  config: Config,
  logger: Logger,
  testing: { loadDataDir?: Blob } = {},
): Promise<RunningServer> {
  const started = performance.now();
  const db = await openDatabase({ url: config.databaseUrl, dataDir: config.dataDir, ...testing }, logger);
  const shutdown = new AbortController();
  const handler = createHandler({
    orm: db.orm,
    logger,
    inferBatchLimit: config.inferBatchLimit,
    shutdownSignal: shutdown.signal,
    corsOrigins: config.corsOrigins,
  });
  let listener: Awaited<ReturnType<typeof listen>>;
  try {
    listener = await listen(handler, config);
  } catch (error) {
    await db.close();
    throw error;
  }
  logger.info(
    { port: listener.port, host: config.host, tls: Boolean(config.tls), database: db.kind, ms: Math.round(performance.now() - started) },
    "posterior listening",
  );
  let stopping: Promise<void> | undefined;
  return {
    port: listener.port,
    stop() {
      stopping ??= (async () => {
        await listener.close(config.shutdownGraceMs);
        shutdown.abort();
        await db.close();
        logger.info("posterior stopped");
      })();
      return stopping;
    },
  };
}
