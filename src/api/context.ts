import { createContextKey } from "@connectrpc/connect";
import type { Logger } from "pino";

/** The logger of the current call, carrying its request id. */
/** The call's logger (carrying its request id), made on first use: most calls never log more than their access line. */
export const requestLogger = createContextKey<(() => Logger) | undefined>(undefined, { description: "request logger" });
