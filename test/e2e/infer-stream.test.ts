// Control loops: the bidirectional InferStream against a real server, from connect-node and grpc-js.
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.ts";
import { type InferStreamRequest, InferStreamRequestSchema } from "../../gen/posterior/v1/inference_service_pb.ts";
import { EpisodeService } from "../../src/domain/episodes.ts";
import { InstanceCache } from "../../src/domain/instance-cache.ts";
import { InferenceService } from "../../src/domain/inference.ts";
import { InstanceService } from "../../src/domain/instances.ts";
import { scalar } from "../../src/math/tensor.ts";
import { openTestDatabase } from "../support/database.ts";
import { type Clients, clientsFor, startTestServer, tensor } from "../support/harness.ts";

let server: Awaited<ReturnType<typeof startTestServer>>;
let clients: Clients;
beforeAll(async () => {
  server = await startTestServer();
  clients = clientsFor(createGrpcTransport({ baseUrl: server.baseUrl }));
});
afterAll(() => server.stop());

const newInstance = async (model = "beta-bernoulli-v1", args = {}) =>
  (await clients.models.createInstance({ model, arguments: args })).instance!.instanceId;

const start = (instanceId: string, extra: Record<string, unknown> = {}) =>
  create(InferStreamRequestSchema, { message: { case: "start", value: { instanceId, ...extra } } });
const tick = (observation: Record<string, { values: number[] }>, extra: Record<string, unknown> = {}) =>
  create(InferStreamRequestSchema, { message: { case: "tick", value: { observation, ...extra } } });

async function* messages(...all: InferStreamRequest[]) {
  yield* all;
}

async function collect(stream: AsyncIterable<InferStreamRequest>, via = clients) {
  const replies = [];
  for await (const reply of via.inference.inferStream(stream)) replies.push(reply);
  return replies;
}

describe("InferStream", () => {
  it("answers every tick in order, then confirms that every event is durable", async () => {
    const id = await newInstance();
    const ys = [1, 0, 1, 1, 0];
    const replies = await collect(messages(start(id), ...ys.map((y) => tick({ y: tensor(y) }))));
    expect(replies.map((r) => r.tick)).toEqual([1n, 2n, 3n, 4n, 5n, 0n]);
    const posteriors = replies.slice(0, 5).map((r) => r.result?.posteriors.p?.kind);
    expect(posteriors[0]).toMatchObject({ case: "beta", value: { alpha: 2, beta: 1 } });
    expect(posteriors[1]).toMatchObject({ case: "beta", value: { alpha: 1, beta: 2 } });
    const last = replies.at(-1)!;
    expect([last.result, last.durableTick]).toEqual([undefined, 5n]);
    const { events } = await clients.models.listEvents({ instanceId: id });
    expect(events.map((e) => e.data.y?.values[0])).toEqual(ys);
    expect(last.durableEventSeq).toBe(5n);
  });

  it("works from Connect over HTTP/2 as well", async () => {
    const id = await newInstance();
    const viaConnect = clientsFor(createConnectTransport({ baseUrl: server.baseUrl, httpVersion: "2" }));
    const replies = await collect(messages(start(id), tick({ y: tensor(1) }), tick({ y: tensor(1) })), viaConnect);
    expect(replies.map((r) => r.tick)).toEqual([1n, 2n, 0n]);
    expect(replies[1]?.result?.predictions.y?.kind).toMatchObject({ case: "bernoulli", value: { p: 2 / 3 } });
  });

  it("reports a bad tick in its reply, stores nothing for it, and goes on", async () => {
    const id = await newInstance();
    const replies = await collect(messages(start(id), tick({ y: tensor(1) }), tick({ y: tensor(7) }), tick({ y: tensor(0) })));
    expect(replies.map((r) => [r.tick, r.result !== undefined, r.error?.code])).toEqual([
      [1n, true, undefined],
      [2n, false, Code.InvalidArgument],
      [3n, true, undefined],
      [0n, false, undefined],
    ]);
    expect(replies[1]?.error?.message).toBe("observation.y: must be <= 1, got 7");
    const { events } = await clients.models.listEvents({ instanceId: id });
    expect(events.map((e) => e.data.y?.values[0])).toEqual([1, 0]);
  });

  it("commits in groups while the stream runs", async () => {
    const id = await newInstance();
    const n = 700;
    const replies = await collect(messages(start(id), ...Array.from({ length: n }, (_, i) => tick({ y: tensor(i % 2) }))));
    const durableWhileRunning = replies.slice(0, n).map((r) => Number(r.durableTick));
    expect(Math.max(...durableWhileRunning)).toBeGreaterThanOrEqual(256);
    // Durability only ever grows and never runs ahead of the ticks answered.
    durableWhileRunning.forEach((d, i) => {
      expect(d).toBeLessThanOrEqual(i + 1);
      if (i > 0) expect(d).toBeGreaterThanOrEqual(durableWhileRunning[i - 1]!);
    });
    expect(replies.at(-1)?.durableTick).toBe(BigInt(n));
    expect((await clients.models.getEpisode({ instanceId: id, name: "default" })).episode?.eventCount).toBe(BigInt(n));
  });

  it("stores nothing when asked not to", async () => {
    const id = await newInstance();
    const replies = await collect(messages(start(id, { storeEvent: false }), tick({ y: tensor(1) })));
    expect(replies.map((r) => [r.tick, r.result?.episode])).toEqual([
      [1n, ""],
      [0n, undefined],
    ]);
    expect((await clients.models.getEpisode({ instanceId: id, name: "default" })).episode?.eventCount).toBe(0n);
  });

  it("flags a tick whose deadline passed", async () => {
    const id = await newInstance("contextual-bandits-v1");
    const context = { context: { values: [0.5, -0.2] } };
    const replies = await collect(
      messages(
        start(id, { tickDeadline: { seconds: 60n } }),
        tick(context),
        tick(context, { deadline: { nanos: 1 } }), // 1 ns: the propensity draws alone take far longer
      ),
    );
    expect(replies.map((r) => [r.tick, r.deadlineExceeded])).toEqual([
      [1n, false],
      [2n, true],
      [0n, false],
    ]);
    expect(replies[1]?.result?.actions.arm).toBeDefined();
  });

  it("refuses a stream that does not begin with start, or an unknown instance", async () => {
    const bad = await collect(messages(tick({ y: tensor(1) }))).catch((e: unknown) => ConnectError.from(e));
    expect(bad).toBeInstanceOf(ConnectError);
    expect((bad as ConnectError).code).toBe(Code.InvalidArgument);
    expect((bad as ConnectError).findDetails(ErrorInfoSchema)[0]?.reason).toBe("INVALID_REQUEST");
    const missing = await collect(messages(start("00000000-0000-4000-8000-000000000000"))).catch((e: unknown) => ConnectError.from(e));
    expect((missing as ConnectError).code).toBe(Code.NotFound);
  });

  it("commits what was answered when the client cancels", async () => {
    const id = await newInstance();
    const controller = new AbortController();
    async function* slowClient() {
      yield start(id);
      yield tick({ y: tensor(1) });
      yield tick({ y: tensor(0) });
      await new Promise((resolve) => setTimeout(resolve, 50));
      controller.abort();
      await new Promise(() => {});
    }
    const answered: unknown[] = [];
    const error = await (async () => {
      for await (const reply of clients.inference.inferStream(slowClient(), { signal: controller.signal })) answered.push(reply);
    })().catch((e: unknown) => ConnectError.from(e));
    expect((error as ConnectError).code).toBe(Code.Canceled);
    expect(answered.map((r) => (r as { tick: bigint }).tick)).toEqual([1n, 2n]);
    await expect.poll(async () => (await clients.models.getEpisode({ instanceId: id, name: "default" })).episode?.eventCount).toBe(2n);
  });

  it("keeps a filter's state in memory and stores it when the stream ends", async () => {
    const ys = [[1, 0.5], [1.2, 0.4], [0.9, 0.8], [1.1, 0.7]];
    const streamed = await newInstance("linear-state-space-model-v1");
    const unary = await newInstance("linear-state-space-model-v1");
    await collect(messages(start(streamed, { storeEvent: false }), ...ys.slice(0, 3).map((y) => tick({ y: { values: y } }))));
    for (const y of ys.slice(0, 3)) await clients.inference.infer({ instanceId: unary, observation: { y: { values: y } }, storeEvent: false });
    const last = { observation: { y: { values: ys[3]! } }, storeEvent: false };
    const [a, b] = await Promise.all([
      clients.inference.infer({ instanceId: streamed, ...last }),
      clients.inference.infer({ instanceId: unary, ...last }),
    ]);
    expect(a.posteriors).toEqual(b.posteriors);
    expect(a.predictions).toEqual(b.predictions);
  });

  it("works from @grpc/grpc-js stubs", async () => {
    const id = await newInstance();
    const definition = protoLoader.loadSync("posterior/v1/inference_service.proto", {
      includeDirs: ["proto"],
      longs: String,
      enums: String,
      defaults: true,
      oneofs: true,
    });
    const { posterior } = grpc.loadPackageDefinition(definition) as unknown as {
      posterior: { v1: { InferenceService: new (a: string, c: grpc.ChannelCredentials) => grpc.Client & { inferStream(): grpc.ClientDuplexStream<object, { tick: string; result?: { posteriors: Record<string, { beta?: { alpha: number } }> } }> } } };
    };
    const client = new posterior.v1.InferenceService(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure());
    try {
      const call = client.inferStream();
      const replies: Array<{ tick: string; result?: { posteriors: Record<string, { beta?: { alpha: number } }> } }> = [];
      const done = new Promise<void>((resolve, reject) => {
        call.on("data", (reply) => replies.push(reply));
        call.on("end", resolve);
        call.on("error", reject);
      });
      call.write({ start: { instanceId: id } });
      for (const y of [1, 1, 0]) call.write({ tick: { observation: { y: { values: [y] } } } });
      call.end();
      await done;
      expect(replies.map((r) => r.tick)).toEqual(["1", "2", "3", "0"]);
      expect(replies[1]?.result?.posteriors.p?.beta?.alpha).toBe(2);
    } finally {
      client.close();
    }
  });
});

describe("stream durability at shutdown", () => {
  it("ends open streams with UNAVAILABLE when the server stops", async () => {
    const own = await startTestServer();
    const c = clientsFor(createGrpcTransport({ baseUrl: own.baseUrl }));
    const { instance } = await c.models.createInstance({ model: "beta-bernoulli-v1" });
    let stopped: Promise<void> | undefined;
    async function* idleAfterOneTick() {
      yield start(instance!.instanceId);
      yield tick({ y: tensor(1) });
      await new Promise(() => {});
    }
    const replies: bigint[] = [];
    const error = await (async () => {
      for await (const reply of c.inference.inferStream(idleAfterOneTick())) {
        replies.push(reply.tick);
        stopped ??= own.stop();
      }
    })().catch((e: unknown) => ConnectError.from(e));
    expect(replies).toEqual([1n]);
    expect((error as ConnectError).code).toBe(Code.Unavailable);
    await stopped;
  });

  it("drains what open streams hold before the database closes", async () => {
    const db = await openTestDatabase();
    try {
      const cache = new InstanceCache(db.orm);
      const inference = new InferenceService(db.orm, cache, { batchLimit: 100 });
      const instance = await new InstanceService(db.orm).create({ model: "beta-bernoulli-v1", description: "", arguments: {} });
      const stream = await inference.openStream({ instanceId: instance.id, episode: "", storeEvent: true, arguments: {} });
      for (const y of [1, 0, 1]) await stream.tick({ observation: { y: scalar(y) }, goal: {} });
      await inference.drain();
      expect(stream.durable).toEqual({ tick: 3, eventSeq: 3 });
      const events = await new EpisodeService(db.orm, cache).listEvents(instance.id, "", { pageSize: 0, pageToken: "" });
      expect(events.events.map((e) => e.data.y?.values[0])).toEqual([1, 0, 1]);
    } finally {
      await db.close();
    }
  });
});
