import { createContextKey } from "@connectrpc/connect";
import type { Logger } from "pino";

/** The logger of the current call, carrying its request id. */
export const requestLogger = createContextKey<Logger | undefined>(undefined, { description: "request logger" });
