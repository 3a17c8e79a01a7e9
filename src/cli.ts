// Runs the server until SIGTERM or SIGINT, with the configuration from the environment.
import { loadConfig } from "./config.ts";
import { createLogger } from "./logger.ts";
import { startServer } from "./server/server.ts";

const { logger, destination } = createLogger(process.env.LOG_LEVEL || "info");
try {
  const server = await startServer(loadConfig(process.env), logger);
  destination.flush(); // scripts and supervisors wait for "posterior listening"
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    process.once(signal, () => {
      logger.info({ signal }, "shutting down");
      server.stop().then(
        () => process.exit(0),
        (error: unknown) => {
          logger.error({ err: error }, "shutdown failed");
          process.exit(1);
        },
      );
    });
  }
} catch (error) {
  logger.fatal({ err: error }, "posterior failed to start");
  process.exit(1);
}
