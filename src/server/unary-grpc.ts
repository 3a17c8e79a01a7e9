// The short road for unary gRPC on the main port, as unary-json.ts is for Connect JSON: the
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
import { httpSource, runUnary, type ShortPath, type ShortPathOptions, unaryRoutes } from "./call-context.ts";
import { REQUEST_ID_HEADER, requestIdOf } from "./interceptors.ts";

// As Connect's gRPC content types, in the binary format.
const GRPC_PROTO = /^application\/grpc(?:\+proto)?$/i;
const COMPRESSED_FLAG = 0b00000001;

export function unaryGrpc(services: ReadonlyArray<readonly [DescService, ServiceImpl<DescService>]>, options: ShortPathOptions): ShortPath {
  const routes = unaryRoutes(services, options, ({ service, method, impl, serialization }) => {
    return async (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => {
      const compression = compressionNegotiate(options.acceptCompression, null, header(req, "grpc-accept-encoding"), "grpc-accept-encoding");
      const headers = new Headers({ "content-type": "application/grpc+proto" });
      if (compression.response) headers.set("grpc-encoding", compression.response.name);
      const trailers = new Headers();
      let message: Uint8Array | undefined;
      let error: ConnectError | undefined;
      try {
        const input = serialization.getI(true).parse(await onlyMessage(req, options.readMaxBytes));
        const outcome = await runUnary(impl, input, { service, method, source: httpSource(req, res, "grpc"), ...options }, requestIdOf(req));
        // As connect-node: the request id with the answer's headers, or with the error's trailers.
        if ("error" in outcome) {
          error = outcome.error;
          trailers.set(REQUEST_ID_HEADER, outcome.requestId);
        } else {
          headers.set(REQUEST_ID_HEADER, outcome.requestId);
          message = serialization.getO(true).serialize(outcome.output);
        }
      } catch (e) {
        error = toConnectError(e);
      }
      setTrailerStatus(trailers, error);
      if (res.stream.destroyed) return;
      res.writeHead(200, Object.fromEntries(headers));
      res.addTrailers(Object.fromEntries(trailers));
      if (message === undefined) return void res.end();
      if (compression.response && message.byteLength >= options.compressMinBytes) {
        res.end(encodeEnvelope(COMPRESSED_FLAG, await compression.response.compress(message)));
      } else {
        res.end(encodeEnvelope(0, message));
      }
    };
  });
  return (req, res) => {
    if (req.method !== "POST" || req.httpVersionMajor !== 2) return false;
    const route = routes.get(req.url ?? "");
    if (!route) return false;
    if (!GRPC_PROTO.test(header(req, "content-type") ?? "")) return false;
    if (header(req, "grpc-timeout") !== null) return false;
    const encoding = header(req, "grpc-encoding");
    if (encoding !== null && encoding !== "identity") return false;
    const [r, s] = [req as http2.Http2ServerRequest, res as http2.Http2ServerResponse];
    route(r, s).catch((error: unknown) => s.stream.destroy(error as Error));
    return true;
  };
}

const header = (req: { headers: Record<string, string | string[] | undefined> }, name: string): string | null => {
  const value = req.headers[name];
  return value === undefined ? null : String(value);
};

/** The request's one uncompressed message, refused as connect-node refuses a wrong one. */
async function onlyMessage(req: http2.Http2ServerRequest, readMaxBytes: number): Promise<Uint8Array> {
  const envelopes = [];
  for await (const envelope of pipe(req as AsyncIterable<Uint8Array>, transformSplitEnvelope(readMaxBytes))) envelopes.push(envelope);
  if (envelopes.length === 0) throw new ConnectError("protocol error: missing input message for unary method", Code.Unimplemented);
  if (envelopes.length > 1) throw new ConnectError("protocol error: received extra input message for unary method", Code.Unimplemented);
  // Requests with a grpc-encoding go to connect-node, so a compressed message here is an error.
  return (await envelopeDecompress(envelopes[0]!, null, readMaxBytes)).data;
}
