// A shorter road for the commonest call from curl, fetch and Connect-Web: a unary method POSTed
// over HTTP/1.1 with a JSON body. connect-node carries every call through web Headers, async-iterable
// bodies, AbortControllers and a universal response. This path reads the body, parses it with the
// method's own Connect serialization (same size limits, same errors), runs the handler with
// `runUnary` (a context built as it is read; what the `observe` interceptor does) and writes
// Connect's error JSON, HTTP status and compression. Everything else (HTTP/2, another content type,
// request compression, a timeout header, GET, streams) goes to connect-node.
import type http from "node:http";
import type { DescService } from "@bufbuild/protobuf";
import type { ConnectError, ServiceImpl } from "@connectrpc/connect";
import { compressionNegotiate, mergeNonProtocolHeaders, readAllBytes } from "@connectrpc/connect/protocol";
import { codeToHttpStatus, errorToJsonBytes } from "@connectrpc/connect/protocol-connect";
import { toConnectError } from "../api/errors.ts";
import { httpSource, runUnary, type ShortPath, type ShortPathOptions, unaryRoutes } from "./call-context.ts";
import { REQUEST_ID_HEADER, requestIdOf } from "./interceptors.ts";

// As Connect's `contentTypeUnaryRegExp` for JSON: application/json, optionally with charset=utf-8.
const UNARY_JSON = /^application\/json(?:;\s*charset=utf-?8)?$/i;

export function unaryJson(services: ReadonlyArray<readonly [DescService, ServiceImpl<DescService>]>, options: ShortPathOptions): ShortPath {
  const routes = unaryRoutes(services, options, ({ service, method, impl, serialization }) => {
    return async (req: http.IncomingMessage, res: http.ServerResponse) => {
      const compression = compressionNegotiate(options.acceptCompression, null, req.headers["accept-encoding"] ?? null, "accept-encoding");
      const header = new Headers({ "content-type": "application/json" });
      let status = 200;
      let body!: Uint8Array;
      let error: ConnectError | undefined;
      try {
        // Parsed before the call begins, as connect-node does: a body that is not the message is
        // refused without a request id or an access-log line.
        const input = serialization.getI(false).parse(await readAllBytes(req, options.readMaxBytes, req.headers["content-length"] ?? null));
        const source = httpSource(req.headers, res);
        const outcome = await runUnary(impl, input, { service, method, source, ...options }, requestIdOf(req.headers));
        header.set(REQUEST_ID_HEADER, outcome.requestId);
        if ("error" in outcome) error = outcome.error;
        else body = serialization.getO(false).serialize(outcome.output);
      } catch (e) {
        error = toConnectError(e);
      }
      if (error) {
        status = codeToHttpStatus(error.code);
        mergeNonProtocolHeaders(header, error.metadata);
        body = errorToJsonBytes(error, {});
      }
      if (compression.response && body.byteLength >= options.compressMinBytes) {
        body = await compression.response.compress(body);
        header.set("content-encoding", compression.response.name);
      }
      header.set("content-length", String(body.byteLength));
      if (res.destroyed) return;
      res.writeHead(status, Object.fromEntries(header));
      res.end(body);
    };
  });
  return (req, res) => {
    // HTTP/1.1 is where curl, fetch and browsers send JSON; JSON over HTTP/2 stays with connect-node.
    if (req.method !== "POST" || req.httpVersionMajor !== 1) return false;
    const route = routes.get(req.url ?? "");
    if (!route) return false;
    const h = req.headers;
    if (!UNARY_JSON.test(h["content-type"] ?? "")) return false;
    if (h["content-encoding"] !== undefined && h["content-encoding"] !== "identity") return false;
    if (h["connect-timeout-ms"] !== undefined) return false;
    if (h["connect-protocol-version"] !== undefined && h["connect-protocol-version"] !== "1") return false;
    route(req as http.IncomingMessage, res as http.ServerResponse).catch((error: unknown) => res.destroy(error as Error));
    return true;
  };
}
