// The main port's short unary paths (src/server/unary-json.ts, unary-grpc.ts) against connect-node
// itself: loopback servers over the same services, some with only a short path (a request it
// declines gets 501 there) and some with only connect-node. Each request goes to both; the answers
// must match.
import { once } from "node:events";
import http from "node:http";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { gunzipSync } from "node:zlib";
import { create, toBinary } from "@bufbuild/protobuf";
import { compressionBrotli, compressionGzip, connectNodeAdapter } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Database } from "../../src/persistence/database.ts";
import { createServices, interceptors, routes, serviceImpls, type Services } from "../../src/server/app.ts";
import { InferRequestSchema } from "../../gen/posterior/v1/inference_service_pb.ts";
import { GetInstanceRequestSchema, GetModelTypeRequestSchema } from "../../gen/posterior/v1/model_service_pb.ts";
import { unaryGrpc } from "../../src/server/unary-grpc.ts";
import { unaryJson } from "../../src/server/unary-json.ts";
import { openTestDatabase } from "../support/database.ts";
import { silentLogger, silentLogging, testConfig } from "../support/harness.ts";

const protocol = { readMaxBytes: 4096, writeMaxBytes: 1 << 20, acceptCompression: [compressionGzip, compressionBrotli], compressMinBytes: 1024 };
let db: Database;
let services: Services;
let short: string;
let connect: string;
let shortH2: string;
let connectH2: string;
const servers: Array<http.Server | http2.Http2Server> = [];

async function serve(handler: http.RequestListener, version: 1 | 2 = 1): Promise<string> {
  const server = version === 1 ? http.createServer(handler) : http2.createServer(handler as never);
  servers.push(server.listen(0, "127.0.0.1"));
  await once(server, "listening");
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

beforeAll(async () => {
  const config = testConfig();
  db = await openTestDatabase(config.jobs);
  services = createServices(db, config, silentLogger);
  await services.prepare();
  await services.start();
  const options = { ...silentLogging, shutdownSignal: new AbortController().signal, ...protocol };
  const json = unaryJson(serviceImpls(services), options);
  const grpc = unaryGrpc(serviceImpls(services), options);
  const connectHandler = connectNodeAdapter({ routes: routes(services), interceptors: interceptors(silentLogging), ...protocol });
  short = await serve((req, res) => {
    if (!json(req, res)) res.writeHead(501).end("declined");
  });
  connect = await serve(connectHandler);
  const rawH2 = http2.createServer();
  rawH2.on("stream", (stream, headers) => {
    if (!grpc(stream, headers)) stream.respond({ ":status": 501 }, { endStream: true });
  });
  servers.push(rawH2.listen(0, "127.0.0.1"));
  await once(rawH2, "listening");
  shortH2 = `http://127.0.0.1:${(rawH2.address() as AddressInfo).port}`;
  connectH2 = await serve(connectHandler, 2);
});
afterAll(async () => {
  for (const server of servers) server.close();
  await services?.stop();
  await db?.close();
});

interface Answer {
  status: number;
  contentType: string | null;
  contentEncoding: string | null;
  requestId: string | null;
  body: unknown;
}

/** A request; a body given in parts is sent without a declared length (chunked transfer encoding). */
async function call(base: string, path: string, body: string | string[], headers: Record<string, string> = {}): Promise<Answer> {
  const sent = typeof body === "string" ? { body } : { body: ReadableStream.from(body.map((part) => new TextEncoder().encode(part))), duplex: "half" as const };
  const res = await fetch(`${base}/posterior.v1.${path}`, { method: "POST", headers: { "content-type": "application/json", ...headers }, ...sent });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // not JSON: compared as text
  }
  const header = (name: string) => res.headers.get(name);
  return { status: res.status, contentType: header("content-type"), contentEncoding: header("content-encoding"), requestId: header("x-request-id"), body: parsed };
}

/** The same request to both servers: the short path must take it and answer as connect-node does. */
async function both(path: string, body: string | string[], extra: Record<string, string> = {}): Promise<Answer> {
  const headers = { "x-request-id": "same-for-both", ...extra };
  const [a, b] = await Promise.all([call(short, path, body, headers), call(connect, path, body, headers)]);
  expect(a.status).not.toBe(501);
  expect(a).toEqual(b);
  return a;
}

let instanceId: string;
beforeAll(async () => {
  const created = await call(short, "ModelService/CreateInstance", JSON.stringify({ model: "beta-bernoulli-v1", arguments: { prior_a: 2 } }));
  expect(created.status).toBe(200);
  instanceId = (created.body as { instance: { instanceId: string } }).instance.instanceId;
});

describe("the unary JSON path", () => {
  it("answers calls as connect-node does, with the caller's request id", async () => {
    const infer = JSON.stringify({ instanceId, observation: { y: { values: [1] } }, storeEvent: false });
    const ok = await both("InferenceService/Infer", infer, { "x-request-id": "req-7" });
    expect(ok).toMatchObject({ status: 200, contentType: "application/json", requestId: "req-7" });
    expect(ok.body).toMatchObject({ posteriors: { p: { beta: { alpha: 3, beta: 1 } } } });
    // A charset, the protocol version header and an unknown field (ignored, as Connect ignores it).
    const unknown = JSON.stringify({ instanceId, observation: { y: { values: [0] } }, storeEvent: false, extra: 1 });
    await both("InferenceService/Infer", unknown, { "content-type": "application/json; charset=utf-8", "connect-protocol-version": "1" });
    // Compressed when the client accepts it and the answer is over compressMinBytes; fetch decompresses.
    const schema = JSON.stringify({ name: "linear-state-space-model-v1" });
    expect(await both("ModelService/GetModelType", schema, { "accept-encoding": "gzip" })).toMatchObject({ status: 200, contentEncoding: "gzip" });
    expect(await both("ModelService/GetModelType", schema, { "accept-encoding": "identity" })).toMatchObject({ status: 200, contentEncoding: null });
  });

  it("answers errors as connect-node does: HTTP status, code, message, details and request id", async () => {
    const missing = await both("ModelService/GetInstance", JSON.stringify({ instanceId: "00000000-0000-4000-8000-000000000000" }), {
      "x-request-id": "req-8",
    });
    expect(missing).toMatchObject({ status: 404, requestId: "req-8", body: { code: "not_found" } });
    const invalid = await both("InferenceService/Infer", JSON.stringify({ instanceId, observation: { y: { values: [2] } } }));
    expect(invalid).toMatchObject({ status: 400, body: { code: "invalid_argument", message: "observation.y: must be <= 1, got 2" } });
    expect((await both("ModelService/CreateInstance", "{not json")).status).toBe(400);
    expect((await both("ModelService/CreateInstance", JSON.stringify({ model: 7 }))).status).toBe(400);
    const large = await both("ModelService/CreateInstance", JSON.stringify({ model: "beta-bernoulli-v1", description: "x".repeat(5000) }));
    expect(large).toMatchObject({ status: 429, body: { code: "resource_exhausted" } });
  });

  it("reads a body sent in parts without a declared length as connect-node does", async () => {
    const infer = JSON.stringify({ instanceId, observation: { y: { values: [1] } }, storeEvent: false });
    const parts = [infer.slice(0, 20), infer.slice(20)];
    expect(await both("InferenceService/Infer", parts)).toMatchObject({ status: 200, body: { posteriors: { p: { beta: { alpha: 3, beta: 1 } } } } });
    const large = JSON.stringify({ model: "beta-bernoulli-v1", description: "x".repeat(5000) });
    expect(await both("ModelService/CreateInstance", [large.slice(0, 3000), large.slice(3000)])).toMatchObject({ status: 429, body: { code: "resource_exhausted" } });
  });

  it("leaves everything else to connect-node", async () => {
    const infer = JSON.stringify({ instanceId, observation: { y: { values: [1] } }, storeEvent: false });
    const declined: Array<Record<string, string>> = [
      { "connect-timeout-ms": "10000" },
      { "content-encoding": "gzip" },
      { "content-type": "application/proto" },
      { "connect-protocol-version": "2" },
    ];
    for (const headers of declined) {
      expect((await call(short, "InferenceService/Infer", infer, headers)).status).toBe(501);
    }
    expect((await call(short, "InferenceService/InferStream", infer, { "content-type": "application/connect+json" })).status).toBe(501);
    expect((await call(short, "InferenceService/Unknown", infer)).status).toBe(501);
    expect((await fetch(`${short}/posterior.v1.ModelService/ListModelTypes`)).status).toBe(501);
  });
});

interface GrpcAnswer {
  status: number;
  headers: Record<string, unknown>;
  trailers: Record<string, unknown>;
  /** The response's messages: [flags, payload (gunzipped when flagged)]. */
  messages: Array<[number, string]>;
}

/** One raw gRPC call over h2c: every header, trailer and message frame as sent. */
async function grpcCall(base: string, path: string, body: Uint8Array | Uint8Array[], extra: Record<string, string> = {}): Promise<GrpcAnswer> {
  const session = http2.connect(base);
  try {
    const stream = session.request({
      ":method": "POST",
      ":path": `/posterior.v1.${path}`,
      "content-type": "application/grpc",
      te: "trailers",
      "x-request-id": "same-for-both",
      ...extra,
    });
    const chunks: Buffer[] = [];
    let trailers: http2.IncomingHttpHeaders = {};
    stream.on("data", (chunk: Buffer) => chunks.push(chunk));
    stream.on("trailers", (t) => (trailers = t));
    const response = once(stream, "response") as Promise<[http2.IncomingHttpHeaders]>;
    const ended = once(stream, "close");
    for (const part of [body].flat()) stream.write(part);
    stream.end();
    const [headers] = await response;
    await ended;
    const data = Buffer.concat(chunks);
    const messages: Array<[number, string]> = [];
    for (let at = 0; at < data.length; ) {
      const length = data.readUInt32BE(at + 1);
      const payload = data.subarray(at + 5, at + 5 + length);
      messages.push([data[at]!, ((data[at]! & 1) === 1 ? gunzipSync(payload) : payload).toString("base64")]);
      at += 5 + length;
    }
    const { date: _date, ...rest } = headers;
    const status = Number(rest[":status"]);
    const trailersOnly = "grpc-status" in rest;
    return { status, headers: trailersOnly ? {} : rest, trailers: trailersOnly ? rest : { ...trailers }, messages };
  } finally {
    session.close();
  }
}

const frame = (message: Uint8Array, flags = 0) => {
  const framed = Buffer.alloc(5 + message.length);
  framed[0] = flags;
  framed.writeUInt32BE(message.length, 1);
  framed.set(message, 5);
  return framed;
};

/** The same gRPC request to both servers: the short path must take it and answer as connect-node does. */
async function bothGrpc(path: string, body: Uint8Array | Uint8Array[], extra?: Record<string, string>): Promise<GrpcAnswer> {
  const [a, b] = await Promise.all([grpcCall(shortH2, path, body, extra), grpcCall(connectH2, path, body, extra)]);
  expect(a.status).toBe(200);
  expect({ ...a, headers: withoutAcceptEncoding(a.headers) }).toEqual({ ...b, headers: withoutAcceptEncoding(b.headers) });
  return a;
}

// connect-node advertises the compressions it accepts; the short path leaves it out (it is optional).
const withoutAcceptEncoding = ({ "grpc-accept-encoding": _, ...rest }: Record<string, unknown>) => rest;

describe("the unary gRPC path", () => {
  const infer = (y: number) => toBinary(InferRequestSchema, create(InferRequestSchema, { instanceId, observation: { y: { values: [y] } }, storeEvent: false }));

  it("answers calls as connect-node does: headers, message and status trailers", async () => {
    const ok = await bothGrpc("InferenceService/Infer", frame(infer(1)));
    expect(ok.headers).toMatchObject({ "content-type": "application/grpc+proto", "x-request-id": "same-for-both" });
    expect(ok.trailers).toMatchObject({ "grpc-status": "0" });
    expect(ok.messages).toHaveLength(1);
    // Compressed when the client accepts it and the message is over compressMinBytes.
    const schema = frame(toBinary(GetModelTypeRequestSchema, create(GetModelTypeRequestSchema, { name: "linear-state-space-model-v1" })));
    const compressed = await bothGrpc("ModelService/GetModelType", schema, { "grpc-accept-encoding": "gzip" });
    expect(compressed.headers["grpc-encoding"]).toBe("gzip");
    expect(compressed.messages[0]![0]).toBe(1);
    expect((await bothGrpc("ModelService/GetModelType", schema)).messages[0]![0]).toBe(0);
  });

  it("answers errors as connect-node does: code, message, details and request id", async () => {
    const missing = toBinary(GetInstanceRequestSchema, create(GetInstanceRequestSchema, { instanceId: "00000000-0000-4000-8000-000000000000" }));
    const notFound = await bothGrpc("ModelService/GetInstance", frame(missing));
    expect(notFound.trailers).toMatchObject({ "grpc-status": "5", "x-request-id": "same-for-both" });
    expect(notFound.trailers["grpc-status-details-bin"]).toBeTruthy();
    expect((await bothGrpc("InferenceService/Infer", frame(infer(2)))).trailers).toMatchObject({
      "grpc-status": "3",
      "grpc-message": encodeURIComponent("observation.y: must be <= 1, got 2"),
    });
    // Not a message, no message, two messages, a compressed flag without grpc-encoding, too large.
    expect((await bothGrpc("InferenceService/Infer", frame(new Uint8Array([0xff, 0xff])))).trailers["grpc-status"]).not.toBe("0");
    expect((await bothGrpc("InferenceService/Infer", new Uint8Array())).trailers["grpc-status"]).toBe("12");
    expect((await bothGrpc("InferenceService/Infer", Buffer.concat([frame(infer(1)), frame(infer(0))]))).trailers["grpc-status"]).toBe("12");
    expect((await bothGrpc("InferenceService/Infer", frame(infer(1), 1))).trailers["grpc-status"]).not.toBe("0");
    expect((await bothGrpc("InferenceService/Infer", frame(new Uint8Array(5000)))).trailers["grpc-status"]).toBe("8");
    // A message followed by a second one, valid or not (connect-node parses each as it arrives).
    const long = toBinary(InferRequestSchema, create(InferRequestSchema, { instanceId: "x".repeat(4000) }));
    expect((await bothGrpc("InferenceService/Infer", [frame(infer(1)), frame(long)])).trailers["grpc-status"]).toBe("12");
    expect((await bothGrpc("InferenceService/Infer", [frame(infer(1)), frame(new Uint8Array(4000))])).trailers["grpc-status"]).not.toBe("0");
  });

  it("reads a request that arrives in parts, its envelope header split too", async () => {
    const framed = frame(infer(1));
    const parts = [framed.subarray(0, 2), framed.subarray(2, 7), framed.subarray(7)];
    expect((await bothGrpc("InferenceService/Infer", parts)).trailers).toMatchObject({ "grpc-status": "0" });
    const large = frame(new Uint8Array(5000));
    expect((await bothGrpc("InferenceService/Infer", [large.subarray(0, 3), large.subarray(3, 1000), large.subarray(1000)])).trailers["grpc-status"]).toBe("8");
  });

  it("leaves deadlines, compressed requests, cross-origin calls and streams to connect-node", async () => {
    const declined: Array<Record<string, string>> = [
      { "grpc-timeout": "10S" },
      { "grpc-encoding": "gzip" },
      { "content-type": "application/grpc+json" },
      { origin: "https://app.example" }, // CORS headers come from the request handler
    ];
    for (const extra of declined) {
      expect((await grpcCall(shortH2, "InferenceService/Infer", frame(infer(1)), extra)).status).toBe(501);
    }
    expect((await grpcCall(shortH2, "InferenceService/InferStream", frame(infer(1)))).status).toBe(501);
  });
});
