import { pino } from "pino";

/**
 * The process's logger on standard output. Asynchronous, batched writes: lines gather until 4 KiB or
 * for at most 100 ms and go out in one write(2) on libuv's thread pool. A write per access-log line
 * cost a unary call a third of its CPU with one call in flight (README, "Serving"). pino flushes what
 * is left when the process exits.
 */
export function createLogger(level: string) {
  const destination = pino.destination({ dest: 1, sync: false, minLength: 4096, periodicFlush: 100 });
  return { logger: pino({ level }, destination), destination };
}
