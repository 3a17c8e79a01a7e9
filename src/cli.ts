// Runs the server until SIGTERM or SIGINT, with the configuration from the environment.
import { pino } from "pino";
import { loadConfig } from "./config.ts";
import { startServer } from "./server/server.ts";

// Asynchronous, batched writes: lines gather until 4 KiB or for at most 100 ms and go out in one
// write(2) on libuv's thread pool. A write per access-log line cost a unary call a third of its CPU
// with one call in flight (README, "Serving"). pino flushes what is left when the process exits.
const destination = pino.destination({ dest: 1, sync: false, minLength: 4096, periodicFlush: 100 });
const logger = pino({ level: process.env.LOG_LEVEL || "info" }, destination);
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
