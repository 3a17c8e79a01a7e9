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
      // A plain object: web Headers cost about 3 µs a call here, so they are built only to merge an error's metadata.
      let header: Record<string, string> = { "content-type": "application/json" };
      let status = 200;
      let body!: Uint8Array;
      let error: ConnectError | undefined;
      try {
        // Parsed before the call begins, as connect-node does: a body that is not the message is
        // refused without a request id or an access-log line.
        const input = serialization.getI(false).parse(await readBody(req, options.readMaxBytes));
        const source = httpSource(req.headers, res);
        const outcome = await runUnary(impl, input, { service, method, source, ...options }, requestIdOf(req.headers));
        header[REQUEST_ID_HEADER] = outcome.requestId;
        if ("error" in outcome) error = outcome.error;
        else body = serialization.getO(false).serialize(outcome.output);
      } catch (e) {
        error = toConnectError(e);
      }
      if (error) {
        status = codeToHttpStatus(error.code);
        const merged = new Headers(header);
        mergeNonProtocolHeaders(merged, error.metadata);
        header = Object.fromEntries(merged);
        body = errorToJsonBytes(error, {});
      }
      if (compression.response && body.byteLength >= options.compressMinBytes) {
        body = await compression.response.compress(body);
        header["content-encoding"] = compression.response.name;
      }
      header["content-length"] = String(body.byteLength);
      if (res.destroyed) return;
      res.writeHead(status, header);
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

/**
 * The request body, with the limits and errors of Connect's `readAllBytes`. A body of a declared
 * length within the limit (what fetch, curl and Connect-Web send) is gathered from the request's
 * events: iterating the request asynchronously, as `readAllBytes` does, cost about 5 µs more CPU
 * per call in a bare node:http server (38–39 µs against 34 µs per call).
 */
function readBody(req: http.IncomingMessage, readMaxBytes: number): Promise<Uint8Array> {
  const length = req.headers["content-length"];
  const declared = length === undefined ? NaN : Number(length);
  if (!(Number.isSafeInteger(declared) && declared <= readMaxBytes)) return readAllBytes(req, readMaxBytes, length ?? null);
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.once("end", () => resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)));
    // node:http ends a request only once it has its declared length; a client gone first is an error.
    req.once("error", reject);
  });
}
