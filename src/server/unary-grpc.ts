// The short road for unary gRPC on the main port, as unary-json.ts is for Connect JSON. It takes
// the HTTP/2 stream before node's compatibility API wraps it in a request and a response. The
// request's one message is split from its envelope and parsed with Connect's own pieces, the handler
// runs with `runUnary`, and the answer goes out as one message and the gRPC status trailers, set by
// Connect's `setTrailerStatus`. Deadlines (grpc-timeout), compressed requests and every streaming
// method go to connect-node.
import type http2 from "node:http2";
import type { DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import {
  compressionNegotiate,
  encodeEnvelope,
  envelopeDecompress,
  pipe,
  transformSplitEnvelope,
} from "@connectrpc/connect/protocol";
import { setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import { toConnectError } from "../api/errors.ts";
import { httpSource, runUnary, type ShortPathOptions, unaryRoutes } from "./call-context.ts";
import { REQUEST_ID_HEADER, requestIdOf } from "./interceptors.ts";
import type { StreamHandler } from "./listen.ts";

// As Connect's gRPC content types, in the binary format.
const GRPC_PROTO = /^application\/grpc(?:\+proto)?$/i;
const COMPRESSED_FLAG = 0b00000001;

export function unaryGrpc(services: ReadonlyArray<readonly [DescService, ServiceImpl<DescService>]>, options: ShortPathOptions): StreamHandler {
  const routes = unaryRoutes(services, options, ({ service, method, impl, serialization }) => {
    return async (stream: http2.ServerHttp2Stream, requestHeaders: http2.IncomingHttpHeaders) => {
      const compression = compressionNegotiate(options.acceptCompression, null, header(requestHeaders, "grpc-accept-encoding"), "grpc-accept-encoding");
      const headers: http2.OutgoingHttpHeaders = { ":status": 200, "content-type": "application/grpc+proto" };
      if (compression.response) headers["grpc-encoding"] = compression.response.name;
      let message: Uint8Array | undefined;
      let error: ConnectError | undefined;
      let requestId: string | undefined;
      try {
        const input = await onlyMessage(stream, options.readMaxBytes, (data) => serialization.getI(true).parse(data));
        const source = httpSource(requestHeaders, stream, "grpc");
        const outcome = await runUnary(impl, input, { service, method, source, ...options }, requestIdOf(requestHeaders));
        // As connect-node: the request id with the answer's headers, or with the error's trailers.
        if ("error" in outcome) {
          error = outcome.error;
          requestId = outcome.requestId;
        } else {
          headers[REQUEST_ID_HEADER] = outcome.requestId;
          message = serialization.getO(true).serialize(outcome.output);
        }
      } catch (e) {
        error = toConnectError(e);
      }
      const trailers = error ? errorTrailers(error, requestId) : OK_TRAILERS;
      if (stream.destroyed) return;
      stream.resume(); // what is left of a refused request is not read
      stream.respond(headers, { waitForTrailers: true });
      stream.once("wantTrailers", () => stream.sendTrailers(trailers));
      if (message === undefined) return void stream.end();
      if (compression.response && message.byteLength >= options.compressMinBytes) {
        stream.end(encodeEnvelope(COMPRESSED_FLAG, await compression.response.compress(message)));
      } else {
        stream.end(encodeEnvelope(0, message));
      }
    };
  });
  return (stream, headers) => {
    if (headers[":method"] !== "POST") return false;
    const route = routes.get(headers[":path"] ?? "");
    if (!route) return false;
    if (!GRPC_PROTO.test(header(headers, "content-type") ?? "")) return false;
    if (header(headers, "grpc-timeout") !== null) return false;
    const encoding = header(headers, "grpc-encoding");
    if (encoding !== null && encoding !== "identity") return false;
    // A browser's cross-origin call gets its CORS headers from the RequestHandler.
    if (headers.origin !== undefined) return false;
    route(stream, headers).catch((error: unknown) => stream.destroy(error as Error));
    return true;
  };
}

// What Connect's setTrailerStatus sets without an error; web Headers cost about 3 µs a call.
const OK_TRAILERS = Object.fromEntries(setTrailerStatus(new Headers(), undefined));

/** As connect-node: the error's status and metadata, and the request id, in the trailers. */
function errorTrailers(error: ConnectError, requestId: string | undefined): http2.OutgoingHttpHeaders {
  const trailers = new Headers();
  if (requestId !== undefined) trailers.set(REQUEST_ID_HEADER, requestId);
  return Object.fromEntries(setTrailerStatus(trailers, error));
}

const header = (headers: http2.IncomingHttpHeaders, name: string): string | null => {
  const value = headers[name];
  return value === undefined ? null : String(value);
};

/**
 * The request's one message, refused as connect-node refuses a wrong one: each envelope is
 * decompressed and parsed as it arrives, and only then is the count checked.
 */
async function onlyMessage<T>(stream: http2.ServerHttp2Stream, readMaxBytes: number, parse: (data: Uint8Array) => T): Promise<T> {
  const messages: T[] = [];
  // A refused request (too large, say) must still be answered, so stopping early must not destroy the stream.
  const chunks = stream.iterator({ destroyOnReturn: false }) as AsyncIterable<Uint8Array>;
  for await (const envelope of pipe(chunks, transformSplitEnvelope(readMaxBytes))) {
    // Requests with a grpc-encoding go to connect-node, so a compressed message here is an error.
    messages.push(parse((await envelopeDecompress(envelope, null, readMaxBytes)).data));
  }
  if (messages.length === 0) throw new ConnectError("protocol error: missing input message for unary method", Code.Unimplemented);
  if (messages.length > 1) throw new ConnectError("protocol error: received extra input message for unary method", Code.Unimplemented);
  return messages[0]!;
}
