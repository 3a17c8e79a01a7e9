// The unary JSON path (src/server/unary-json.ts) against connect-node itself: two loopback servers
// over the same services, one with only the short path (a request it declines gets 501 here) and one
// with only connect-node. Each request goes to both; the answers must match.
import { once } from "node:events";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { compressionBrotli, compressionGzip, connectNodeAdapter } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Database } from "../../src/persistence/database.ts";
import { createServices, interceptors, routes, serviceImpls, type Services } from "../../src/server/app.ts";
import { unaryJson } from "../../src/server/unary-json.ts";
import { openTestDatabase } from "../support/database.ts";
import { silentLogger, testConfig } from "../support/harness.ts";

const protocol = { readMaxBytes: 4096, writeMaxBytes: 1 << 20, acceptCompression: [compressionGzip, compressionBrotli], compressMinBytes: 1024 };
let db: Database;
let services: Services;
let short: string;
let connect: string;
const servers: http.Server[] = [];

async function serve(handler: http.RequestListener): Promise<string> {
  const server = http.createServer(handler).listen(0, "127.0.0.1");
  servers.push(server);
  await once(server, "listening");
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

beforeAll(async () => {
  const config = testConfig();
  db = await openTestDatabase(config.jobs);
  services = createServices(db, config, silentLogger);
  await services.prepare();
  await services.start();
  const json = unaryJson(serviceImpls(services), { logger: silentLogger, shutdownSignal: new AbortController().signal, ...protocol });
  short = await serve((req, res) => {
    if (!json(req, res)) res.writeHead(501).end("declined");
  });
  connect = await serve(connectNodeAdapter({ routes: routes(services), interceptors: interceptors(silentLogger), ...protocol }));
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

async function call(base: string, path: string, body: string, headers: Record<string, string> = {}): Promise<Answer> {
  const res = await fetch(`${base}/posterior.v1.${path}`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body });
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
async function both(path: string, body: string, extra: Record<string, string> = {}): Promise<Answer> {
  const headers = { "x-request-id": "same-for-both", ...extra };
  const [a, b] = await Promise.all([call(short, path, body, headers), call(connect, path, body, headers)]);
  expect(a.status).not.toBe(501);
  expect(a).toEqual(b);
  return a;
}

describe("the unary JSON path", () => {
  let instanceId: string;
  beforeAll(async () => {
    const created = await call(short, "ModelService/CreateInstance", JSON.stringify({ model: "beta-bernoulli-v1", arguments: { prior_a: 2 } }));
    expect(created.status).toBe(200);
    instanceId = (created.body as { instance: { instanceId: string } }).instance.instanceId;
  });

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
