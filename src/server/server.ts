import type { Logger } from "pino";
import type { Config } from "../config.ts";
import { openDatabase } from "../persistence/database.ts";
import { Code, ConnectError } from "@connectrpc/connect";
import { createHandler, createServices, serviceImpls } from "./app.ts";
import type { GrpcListener } from "./grpc-listener.ts";
import { listen } from "./listen.ts";

/** How long after the port opens the job queue starts (see startJobQueueLater). */
export const JOB_QUEUE_START_DELAY_MS = 1000;
const JOB_QUEUE_RETRY_MS = 5000;

export interface RunningServer {
  readonly port: number;
  /** The gRPC-only port, when POSTERIOR_GRPC_PORT is set. */
  readonly grpcPort?: number;
  stop(): Promise<void>;
}

export async function startServer(
  config: Config,
  logger: Logger,
  testing: { loadDataDir?: Blob } = {},
): Promise<RunningServer> {
  const started = performance.now();
  const db = await openDatabase(
    { url: config.databaseUrl, dataDir: config.dataDir, sharedBuffersMb: config.embeddedSharedBuffersMb, jobs: config.jobs, ...testing },
    logger,
  );
  const shutdown = new AbortController();
  const services = createServices(db, config, logger);
  const handler = createHandler({ services, logger, shutdownSignal: shutdown.signal, corsOrigins: config.corsOrigins });
  let listener: Awaited<ReturnType<typeof listen>> | undefined;
  let grpcListener: GrpcListener | undefined;
  try {
    await services.prepare();
    listener = await listen(handler, config);
    if (config.grpcPort !== undefined) {
      const options = { host: config.host, port: config.grpcPort, tls: config.tls, logger, shutdownSignal: shutdown.signal };
      // Loaded only when asked for: most deployments never pay for grpc-js's start-up.
      const { listenGrpc } = await import("./grpc-listener.ts");
      grpcListener = await listenGrpc(serviceImpls(services), options);
    }
    logger.info(
      { port: listener.port, grpcPort: grpcListener?.port, host: config.host, tls: Boolean(config.tls), database: db.kind, ms: Math.round(performance.now() - started) },
      "posterior listening",
    );
  } catch (error) {
    await Promise.all([listener?.close(0), grpcListener?.close(0)]);
    await services.stop();
    await db.close();
    throw error;
  }
  const stopStarting = startJobQueueLater(services.start, logger);
  const running = listener;
  let stopping: Promise<void> | undefined;
  return {
    port: running.port,
    grpcPort: grpcListener?.port,
    stop() {
      stopping ??= (async () => {
        // Stop accepting and send GOAWAY; unary calls in flight may finish within the grace period.
        const closing = Promise.all([running.close(config.shutdownGraceMs), grpcListener?.close(config.shutdownGraceMs)]);
        // Streams end now with UNAVAILABLE (control loops reconnect elsewhere); what they hold is committed.
        shutdown.abort(new ConnectError("server shutting down", Code.Unavailable));
        // Learning runs go back to the queue now rather than holding the shutdown: another replica,
        // or this one after its restart, runs them again.
        await stopStarting();
        await Promise.all([closing, services.stop()]);
        await db.close();
        logger.info("posterior stopped");
      })();
      return stopping;
    },
  };
}

/**
 * Loading and starting the job queue takes this thread about half a second, so calls arriving just
 * after a restart come first: the queue starts JOB_QUEUE_START_DELAY_MS after the port opens (a Learn
 * or CancelRun before then starts it itself), retried every few seconds while it fails. Returns a
 * function that stops trying and waits for an attempt in progress.
 */
function startJobQueueLater(start: () => Promise<void>, logger: Logger): () => Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  let attempt: Promise<void> | undefined;
  let stopped = false;
  const schedule = (ms: number) => {
    timer = setTimeout(() => {
      attempt = start().then(
        () => logger.info("job queue started"),
        (error: unknown) => {
          logger.error({ err: error }, `job queue failed to start; retrying in ${JOB_QUEUE_RETRY_MS / 1000} s`);
          if (!stopped) schedule(JOB_QUEUE_RETRY_MS);
        },
      );
    }, ms);
  };
  schedule(JOB_QUEUE_START_DELAY_MS);
  return async () => {
    stopped = true;
    clearTimeout(timer);
    await attempt;
  };
}
