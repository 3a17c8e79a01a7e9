import type { Logger } from "pino";
import type { Config } from "../config.ts";
import { openDatabase } from "../persistence/database.ts";
import { Code, ConnectError } from "@connectrpc/connect";
import { createHandler, createServices, serviceImpls } from "./app.ts";
import type { GrpcListener } from "./grpc-listener.ts";
import { listen } from "./listen.ts";

/** How long a job queue that failed to start waits before it tries again. */
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
  const logging = { logger, accessLog: config.accessLog };
  const handlers = createHandler({ services, ...logging, shutdownSignal: shutdown.signal, corsOrigins: config.corsOrigins });
  let listener: Awaited<ReturnType<typeof listen>> | undefined;
  let grpcListener: GrpcListener | undefined;
  try {
    await services.prepare();
    listener = await listen(handlers, config);
    if (config.grpcPort !== undefined) {
      const options = { host: config.host, port: config.grpcPort, tls: config.tls, ...logging, shutdownSignal: shutdown.signal };
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
  const stopStarting = startJobQueue(services.start, logger);
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
 * Starts the job queue once the port is open, without holding up the calls that arrive meanwhile
 * (a Learn or CancelRun waits for it), and tries again every few seconds while it fails. Started
 * later instead, loading it would stall streams that are already running. Returns a function that
 * stops trying and waits for an attempt in progress.
 */
function startJobQueue(start: () => Promise<void>, logger: Logger): () => Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  let attempt: Promise<void> | undefined;
  let stopped = false;
  const tryStart = () => {
    attempt = start().then(
      () => logger.info("job queue started"),
      (error: unknown) => {
        logger.error({ err: error }, `job queue failed to start; retrying in ${JOB_QUEUE_RETRY_MS / 1000} s`);
        if (!stopped) timer = setTimeout(tryStart, JOB_QUEUE_RETRY_MS);
      },
    );
  };
  tryStart();
  return async () => {
    stopped = true;
    clearTimeout(timer);
    await attempt;
  };
}
