import { randomUUID } from "node:crypto";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import type { Logger } from "pino";
import { requestLogger } from "../api/context.ts";
import { isUnexpected, toConnectError } from "../api/errors.ts";

export const REQUEST_ID_HEADER = "x-request-id";

/**
 * Outermost interceptor: gives every call a request id (the client's, or a new one), a logger that
 * carries it, one access-log line, and the mapping of domain errors to gRPC codes.
 */
export function observe(root: Logger): Interceptor {
  return (next) => async (req) => {
    const id = req.header.get(REQUEST_ID_HEADER) || randomUUID();
    const log = root.child({ requestId: id, rpc: `${req.service.typeName}/${req.method.name}` });
    req.contextValues.set(requestLogger, log);
    const started = performance.now();
    const done = (error?: unknown) => {
      const ms = Math.round((performance.now() - started) * 1000) / 1000;
      if (error === undefined) return log.info({ ms, code: "ok" }, "rpc");
      const code = Code[toConnectError(error).code];
      if (isUnexpected(error)) log.error({ ms, code, err: error }, "rpc failed");
      else log.info({ ms, code, message: (error as Error).message }, "rpc");
    };
    try {
      const res = await next(req);
      res.header.set(REQUEST_ID_HEADER, id);
      if (!res.stream) {
        done();
        return res;
      }
      return { ...res, message: watchStream(res.message, done) };
    } catch (error) {
      done(error);
      const e = toConnectError(error);
      e.metadata.set(REQUEST_ID_HEADER, id);
      throw e;
    }
  };
}

async function* watchStream<T>(messages: AsyncIterable<T>, done: (error?: unknown) => void): AsyncIterable<T> {
  try {
    yield* messages;
    done();
  } catch (error) {
    done(error);
    throw error instanceof ConnectError ? error : toConnectError(error);
  }
}
