import type { Logger } from "pino";
import type { Config } from "../config.ts";
import { openDatabase } from "../persistence/database.ts";
import { Code, ConnectError } from "@connectrpc/connect";
import { createHandler, createServices, serviceImpls } from "./app.ts";
import type { GrpcListener } from "./grpc-listener.ts";
import { listen } from "./listen.ts";

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
  const db = await openDatabase({ url: config.databaseUrl, dataDir: config.dataDir, jobs: config.jobs, ...testing }, logger);
  const shutdown = new AbortController();
  const services = createServices(db, config, logger);
  const handler = createHandler({ services, logger, shutdownSignal: shutdown.signal, corsOrigins: config.corsOrigins });
  let listener: Awaited<ReturnType<typeof listen>>;
  let grpcListener: GrpcListener | undefined;
  try {
    await services.start();
    listener = await listen(handler, config);
    if (config.grpcPort !== undefined) {
      const options = { host: config.host, port: config.grpcPort, tls: config.tls, logger, shutdownSignal: shutdown.signal };
      // Loaded only when asked for: most deployments never pay for grpc-js's start-up.
      const { listenGrpc } = await import("./grpc-listener.ts");
      grpcListener = await listenGrpc(serviceImpls(services), options);
    }
  } catch (error) {
    await services.stop();
    await db.close();
    throw error;
  }
  logger.info(
    { port: listener.port, grpcPort: grpcListener?.port, host: config.host, tls: Boolean(config.tls), database: db.kind, ms: Math.round(performance.now() - started) },
    "posterior listening",
  );
  let stopping: Promise<void> | undefined;
  return {
    port: listener.port,
    grpcPort: grpcListener?.port,
    stop() {
      stopping ??= (async () => {
        // Stop accepting and send GOAWAY; unary calls in flight may finish within the grace period.
        const closing = Promise.all([listener.close(config.shutdownGraceMs), grpcListener?.close(config.shutdownGraceMs)]);
        // Streams end now with UNAVAILABLE (control loops reconnect elsewhere); what they hold is committed.
        shutdown.abort(new ConnectError("server shutting down", Code.Unavailable));
        // Learning runs go back to the queue now rather than holding the shutdown: another replica,
        // or this one after its restart, runs them again.
        await Promise.all([closing, services.stop()]);
        await db.close();
        logger.info("posterior stopped");
      })();
      return stopping;
    },
  };
}
