import { randomUUID } from "node:crypto";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import type { Logger } from "pino";
import { requestLogger } from "../api/context.ts";
import { isUnexpected, toConnectError } from "../api/errors.ts";
import type { AccessLog } from "../config.ts";

export const REQUEST_ID_HEADER = "x-request-id";

/** The client's request id among a node:http or node:http2 request's headers. */
export const requestIdOf = (headers: Record<string, string | string[] | undefined>) => {
  const id = headers[REQUEST_ID_HEADER];
  return Array.isArray(id) ? id.join(", ") : id;
};

/** The root logger and the access-log choice, given to everything that runs handlers. */
export interface CallLogging {
  readonly logger: Logger;
  readonly accessLog: AccessLog;
}

/** A call's request id (the client's, or a new one), its logger, and its access-log line. */
export function beginCall({ logger, accessLog }: CallLogging, rpc: string, clientRequestId: string | null | undefined) {
  const id = clientRequestId || randomUUID();
  let child: Logger | undefined;
  const log = () => (child ??= logger.child({ requestId: id, rpc }));
  const started = performance.now();
  const done = (error?: unknown) => {
    const ms = Math.round((performance.now() - started) * 1000) / 1000;
    if (error === undefined) {
      if (accessLog === "all") logger.info({ requestId: id, rpc, ms, code: "ok" }, "rpc");
      return;
    }
    const code = Code[toConnectError(error).code];
    if (isUnexpected(error)) log().error({ ms, code, err: error }, "rpc failed");
    else if (accessLog !== "none") log().info({ ms, code, message: (error as Error).message }, "rpc");
  };
  return { id, log, done };
}

/**
 * Outermost interceptor: gives every call a request id, a logger that carries it, its access-log
 * line (as `accessLog` says), and the mapping of domain errors to gRPC codes.
 */
export function observe(logging: CallLogging): Interceptor {
  return (next) => async (req) => {
    const call = beginCall(logging, `${req.service.typeName}/${req.method.name}`, req.header.get(REQUEST_ID_HEADER));
    req.contextValues.set(requestLogger, call.log);
    try {
      const res = await next(req);
      res.header.set(REQUEST_ID_HEADER, call.id);
      if (!res.stream) {
        call.done();
        return res;
      }
      return { ...res, message: watchStream(res.message, call.done) };
    } catch (error) {
      call.done(error);
      const e = toConnectError(error);
      e.metadata.set(REQUEST_ID_HEADER, call.id);
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
