// Runs the server until SIGTERM or SIGINT, with the configuration from the environment.
import { pino } from "pino";
import { loadConfig } from "./config.ts";
import { startServer } from "./server/server.ts";

// Asynchronous writes: lines logged while a write is in flight go out together, instead of one
// blocking write(2) per access-log line; pino flushes what is left when the process exits.
const logger = pino({ level: process.env.LOG_LEVEL || "info" }, pino.destination({ dest: 1, sync: false }));
try {
  const server = await startServer(loadConfig(process.env), logger);
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
