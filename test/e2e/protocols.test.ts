// A real server on a free port, called the ways users call it.
import { createRegistry, fromBinary } from "@bufbuild/protobuf";
import { anyUnpack } from "@bufbuild/protobuf/wkt";
import type { Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BadRequestSchema, ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.ts";
import { StatusSchema } from "../../gen/google/rpc/status_pb.ts";
import { clientsFor, startTestServer } from "../support/harness.ts";

let server: Awaited<ReturnType<typeof startTestServer>>;
beforeAll(async () => {
  server = await startTestServer({ grpcPort: 0 });
});
afterAll(() => server.stop());

const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
  fetch(`${server.baseUrl}/posterior.v1.${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
  });

describe("Connect JSON over HTTP/1.1 (fetch, as curl and browsers do)", () => {
  it("runs create → infer → learn and echoes the request id", async () => {
    const created = await post("ModelService/CreateInstance", { model: "beta-bernoulli-v1", arguments: { prior_a: 2 } });
    expect(created.status).toBe(200);
    const { instance } = (await created.json()) as { instance: { instanceId: string } };

    const inferred = await post("InferenceService/Infer", { instanceId: instance.instanceId, observation: { y: { values: [1] } } }, {
      "x-request-id": "req-42",
    });
    expect(inferred.headers.get("x-request-id")).toBe("req-42");
    expect(await inferred.json()).toMatchObject({
      posteriors: { p: { beta: { alpha: 3, beta: 1 } } },
      predictions: { y: { bernoulli: { p: 0.75 } } },
      episode: "default",
      eventSeq: "1",
    });

    const learned = await post("LearningService/Learn", { instanceId: instance.instanceId, wait: true });
    expect(await learned.json()).toMatchObject({ run: { status: "RUN_STATUS_SUCCEEDED", parametersVersionAfter: 1 } });
    const params = await post("ModelService/GetParameters", { instanceId: instance.instanceId });
    expect(await params.json()).toMatchObject({ parameters: { p: { beta: { alpha: 3, beta: 1 } } }, parametersVersion: 1 });
  });

  it("maps errors to HTTP status, code, reason and field", async () => {
    const missing = await post("ModelService/GetInstance", { instanceId: "00000000-0000-4000-8000-000000000000" });
    expect(missing.status).toBe(404);
    expect(await missing.json()).toMatchObject({
      code: "not_found",
      details: [{ type: "google.rpc.ErrorInfo", debug: { reason: "INSTANCE_NOT_FOUND", domain: "posterior" } }],
    });

    const { instance } = (await (await post("ModelService/CreateInstance", { model: "beta-bernoulli-v1" })).json()) as {
      instance: { instanceId: string };
    };
    // proto3 JSON spells non-finite doubles as strings.
    const nan = await post("InferenceService/Infer", { instanceId: instance.instanceId, observation: { y: { values: ["NaN"] } } });
    expect(nan.status).toBe(400);
    const body = (await nan.json()) as { code: string; message: string; details: Array<{ debug: unknown }> };
    expect(body.code).toBe("invalid_argument");
    expect(body.message).toBe("observation.y: must be finite, got NaN");
    expect(body.details.map((d) => d.debug)).toEqual([
      { reason: "DATA_NOT_VALID", domain: "posterior" },
      { fieldViolations: [{ field: "observation.y", description: "must be finite, got NaN" }] },
    ]);
    const events = await post("ModelService/ListEvents", { instanceId: instance.instanceId });
    expect(await events.json()).toEqual({});
  });

  it("never leaks internals: a malformed body is a clean client error", async () => {
    const res = await fetch(`${server.baseUrl}/posterior.v1.ModelService/CreateInstance`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{not json",
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { code: string }).code).toBe("invalid_argument");
  });
});

describe("connect-node and connect-web clients", () => {
  const transports: Record<string, () => Transport> = {
    "Connect binary over HTTP/2": () => createConnectTransport({ baseUrl: server.baseUrl, httpVersion: "2", useBinaryFormat: true }),
    "Connect JSON over HTTP/2": () => createConnectTransport({ baseUrl: server.baseUrl, httpVersion: "2" }),
    "gRPC over HTTP/2": () => createGrpcTransport({ baseUrl: server.baseUrl }),
    "gRPC-Web over HTTP/1.1 (fetch)": () => createGrpcWebTransport({ baseUrl: server.baseUrl }),
  };
  for (const [name, transport] of Object.entries(transports)) {
    it(`${name}: create, infer, learn`, async () => {
      const c = clientsFor(transport());
      const { instance } = await c.models.createInstance({ model: "beta-bernoulli-v1" });
      const r = await c.inference.infer({ instanceId: instance!.instanceId, observation: { y: { values: [0] } } });
      expect(r.posteriors.p?.kind).toMatchObject({ case: "beta", value: { alpha: 1, beta: 2 } });
      const { run } = await c.learning.learn({ instanceId: instance!.instanceId, wait: true });
      expect(run?.metrics?.dataPoints).toBe(1n);
    });
  }
});

// The same stubs against the main port (connect-node) and the optional gRPC-only port (grpc-js).
describe.each(["main", "gRPC-only"] as const)("@grpc/grpc-js stubs built from the .proto files, %s port", (which) => {
  const definition = protoLoader.loadSync(
    ["posterior/v1/model_service.proto", "posterior/v1/inference_service.proto", "posterior/v1/learning_service.proto"],
    { includeDirs: ["proto"], longs: String, enums: String, defaults: true, oneofs: true },
  );
  // biome-ignore lint: the loaded package is untyped
  const pkg = (grpc.loadPackageDefinition(definition) as any).posterior.v1;
  const call = <T>(client: grpc.Client, method: string, request: unknown): Promise<T> =>
    new Promise((resolve, reject) =>
      (client as unknown as Record<string, Function>)[method]!.call(client, request, (err: grpc.ServiceError | null, res: T) =>
        err ? reject(err) : resolve(res),
      ),
    );
  let models: grpc.Client;
  let inference: grpc.Client;
  let learning: grpc.Client;
  beforeAll(() => {
    const address = `127.0.0.1:${which === "main" ? server.port : server.grpcPort}`;
    models = new pkg.ModelService(address, grpc.credentials.createInsecure());
    inference = new pkg.InferenceService(address, grpc.credentials.createInsecure());
    learning = new pkg.LearningService(address, grpc.credentials.createInsecure());
  });
  afterAll(() => [models, inference, learning].forEach((c) => c.close()));

  it("creates, infers, attaches, learns and reads parameters", async () => {
    const { instance } = await call<{ instance: { instanceId: string } }>(models, "createInstance", {
      model: "beta-bernoulli-v1",
      arguments: { fields: { prior_a: { numberValue: 1 }, prior_b: { numberValue: 1 } } },
    });
    const inferred = await call<{ posteriors: Record<string, { beta: { alpha: number } }>; eventSeq: string }>(inference, "infer", {
      instanceId: instance.instanceId,
      observation: { y: { values: [1] } },
    });
    expect(inferred.posteriors.p?.beta.alpha).toBe(2);
    expect(inferred.eventSeq).toBe("1");
    await call(models, "attachEvents", {
      instanceId: instance.instanceId,
      events: [1, 1, 0].map((y) => ({ data: { y: { values: [y] } } })),
    });
    const { run } = await call<{ run: { status: string; metrics: { dataPoints: string } } }>(learning, "learn", {
      instanceId: instance.instanceId,
      wait: true,
    });
    expect(run.status).toBe("RUN_STATUS_SUCCEEDED");
    expect(run.metrics.dataPoints).toBe("4");
    const { parameters } = await call<{ parameters: Record<string, { beta: { alpha: number; beta: number } }> }>(
      models,
      "getParameters",
      { instanceId: instance.instanceId },
    );
    expect(parameters.p?.beta).toMatchObject({ alpha: 4, beta: 2 });
  });

  it("receives the gRPC code and google.rpc details in the trailers", async () => {
    const { instance } = await call<{ instance: { instanceId: string } }>(models, "createInstance", { model: "beta-bernoulli-v1" });
    const error = await call(inference, "infer", { instanceId: instance.instanceId, observation: { y: { values: [2] } } }).catch(
      (e: grpc.ServiceError) => e,
    );
    expect((error as grpc.ServiceError).code).toBe(grpc.status.INVALID_ARGUMENT);
    const status = fromBinary(StatusSchema, (error as grpc.ServiceError).metadata.get("grpc-status-details-bin")[0] as Buffer);
    const registry = createRegistry(ErrorInfoSchema, BadRequestSchema);
    const details = status.details.map((d) => anyUnpack(d, registry));
    expect(details[0]).toMatchObject({ reason: "DATA_NOT_VALID", domain: "posterior" });
    expect(details[1]).toMatchObject({ fieldViolations: [{ field: "observation.y" }] });

    const missing = await call(learning, "cancelRun", { runId: "00000000-0000-4000-8000-000000000000" }).catch((e: grpc.ServiceError) => e);
    expect((missing as grpc.ServiceError).code).toBe(grpc.status.NOT_FOUND);
  });

  it("streams: WatchRun to the run's final state, and an InferStream control loop", async () => {
    const { instance } = await call<{ instance: { instanceId: string } }>(models, "createInstance", { model: "beta-bernoulli-v1" });
    const instanceId = instance.instanceId;
    await call(models, "attachEvents", { instanceId, events: [{ data: { y: { values: [1] } } }] });
    const { run } = await call<{ run: { runId: string } }>(learning, "learn", { instanceId });
    const collect = <T>(stream: grpc.ClientReadableStream<T> | grpc.ClientDuplexStream<unknown, T>) =>
      new Promise<T[]>((resolve, reject) => {
        const messages: T[] = [];
        stream.on("data", (m: T) => messages.push(m));
        stream.on("error", reject);
        stream.on("end", () => resolve(messages));
      });
    const stubs = { learning, inference } as unknown as {
      learning: { watchRun(req: object): grpc.ClientReadableStream<{ run: { status: string } }> };
      inference: { inferStream(): grpc.ClientDuplexStream<object, { tick: string; durableTick: string }> };
    };
    const watched = await collect(stubs.learning.watchRun({ runId: run.runId }));
    expect(watched.at(-1)?.run.status).toBe("RUN_STATUS_SUCCEEDED");

    const loop = stubs.inference.inferStream();
    const replies = collect(loop);
    loop.write({ start: { instanceId } });
    for (const y of [1, 0, 1]) loop.write({ tick: { observation: { y: { values: [y] } } } });
    loop.end();
    const ticks = (await replies).map((r) => [r.tick, r.durableTick]);
    expect(ticks.slice(0, 3).map(([tick]) => tick)).toEqual(["1", "2", "3"]);
    expect(ticks.at(-1)).toEqual(["0", "3"]);
  });
});

describe("cross-origin browsers", () => {
  it("get no CORS headers unless their origin is configured", async () => {
    const res = await fetch(`${server.baseUrl}/posterior.v1.ModelService/ListModelTypes`, {
      method: "OPTIONS",
      headers: { origin: "http://app.example", "access-control-request-method": "POST" },
    });
    expect(res.headers.get("access-control-allow-origin")).toBeNull();
  });

  it("are allowed from configured origins, with Connect's headers", async () => {
    const withCors = await startTestServer({ corsOrigins: ["http://app.example"] });
    try {
      const preflight = await fetch(`${withCors.baseUrl}/posterior.v1.ModelService/ListModelTypes`, {
        method: "OPTIONS",
        headers: {
          origin: "http://app.example",
          "access-control-request-method": "POST",
          "access-control-request-headers": "content-type,connect-protocol-version",
        },
      });
      expect(preflight.status).toBe(204);
      expect(preflight.headers.get("access-control-allow-origin")).toBe("http://app.example");
      expect(preflight.headers.get("access-control-allow-headers")).toMatch(/connect-protocol-version/i);
      const call = await fetch(`${withCors.baseUrl}/posterior.v1.ModelService/ListModelTypes`, {
        method: "POST",
        headers: { origin: "http://app.example", "content-type": "application/json" },
        body: "{}",
      });
      expect(call.headers.get("access-control-allow-origin")).toBe("http://app.example");
      expect(call.headers.get("access-control-expose-headers")).toMatch(/x-request-id/i);
      const other = await fetch(`${withCors.baseUrl}/posterior.v1.ModelService/ListModelTypes`, {
        method: "OPTIONS",
        headers: { origin: "http://evil.example", "access-control-request-method": "POST" },
      });
      expect(other.headers.get("access-control-allow-origin")).toBeNull();
    } finally {
      await withCors.stop();
    }
  });
});
