// A control-loop client that stops reading replies must hold the server back (HTTP/2 flow
// control), not make it buffer without bound. A raw HTTP/2 gRPC client pauses its response stream,
// so it grants no flow-control credit, and writes many ticks; the server's progress is watched
// through the events it commits.
import http2 from "node:http2";
import { create, toBinary } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InferStreamRequestSchema } from "../../gen/posterior/v1/inference_service_pb.ts";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { type Clients, clientsFor, startTestServer } from "../support/harness.ts";

let server: Awaited<ReturnType<typeof startTestServer>>;
let clients: Clients;
beforeAll(async () => {
  server = await startTestServer();
  clients = clientsFor(createGrpcTransport({ baseUrl: server.baseUrl }));
});
afterAll(() => server.stop());

/** A gRPC length-prefixed message. */
function frame(bytes: Uint8Array): Buffer {
  const out = Buffer.alloc(5 + bytes.length);
  out.writeUInt32BE(bytes.length, 1);
  out.set(bytes, 5);
  return out;
}

const TICKS = 20_000;

describe("InferStream backpressure", () => {
  it("stops a client that does not read, and finishes every tick once it reads again", { timeout: 120_000 }, async () => {
    const { instance } = await clients.models.createInstance({ model: "beta-bernoulli-v1" });
    const instanceId = instance!.instanceId;
    const eventCount = async () => Number((await clients.models.getEpisode({ instanceId, name: "default" })).episode?.eventCount);

    const session = http2.connect(server.baseUrl);
    const stream = session.request({
      ":method": "POST",
      ":path": "/posterior.v1.InferenceService/InferStream",
      "content-type": "application/grpc",
      te: "trailers",
    });
    stream.pause();
    stream.write(frame(toBinary(InferStreamRequestSchema, create(InferStreamRequestSchema, { message: { case: "start", value: { instanceId } } }))));
    const tick = frame(
      toBinary(InferStreamRequestSchema, create(InferStreamRequestSchema, { message: { case: "tick", value: { observation: { y: { values: [1] } } } } })),
    );
    for (let i = 0; i < TICKS; i++) stream.write(tick);
    stream.end();

    // Unread replies fill the flow-control windows; then the server stops taking ticks.
    let previous = -1;
    let stalled = await eventCount();
    while (stalled !== previous) {
      previous = stalled;
      await new Promise((resolve) => setTimeout(resolve, 500));
      stalled = await eventCount();
    }
    expect(stalled).toBeGreaterThan(0);
    expect(stalled).toBeLessThan(TICKS / 4);

    // Reading again lets every tick through, and the stream ends normally.
    let buffered = Buffer.alloc(0);
    let replies = 0;
    stream.on("data", (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      while (buffered.length >= 5 && buffered.length >= 5 + buffered.readUInt32BE(1)) {
        buffered = buffered.subarray(5 + buffered.readUInt32BE(1));
        replies++;
      }
    });
    const status = new Promise<string | undefined>((resolve) => stream.on("trailers", (t) => resolve(t["grpc-status"] as string)));
    stream.resume();
    await new Promise((resolve) => stream.on("close", resolve));
    session.close();
    expect(await status).toBe("0");
    expect(replies).toBe(TICKS + 1); // every tick, then the durability confirmation
    expect(await eventCount()).toBe(TICKS);
  });
});
