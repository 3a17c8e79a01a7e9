// N concurrent InferStream control loops at F Hz against real server processes:
//   node bench/control-loop.ts [model] [seconds] [streams×hertz,…] [floor,grpc,main]   (DATABASE_URL=… to store in PostgreSQL)
// Reports reply latency percentiles, replies that came after the next tick was due, ticks whose server-side
// deadline (one period) passed, and server and client CPU per tick. Servers, each in its own process:
// - `floor`: a minimal @grpc/grpc-js server running the same model's infer on a filter state in memory, with the
//   same protobuf conversion of its answer, and nothing validated, stored or logged: what the transport, the
//   client and this machine allow;
// - `grpc`: Posterior's gRPC-only port (POSTERIOR_GRPC_PORT); `main`: Posterior's main (Connect) port.
// Posterior stores every tick's observation, in a new on-disk PGlite directory as deployed (or DATABASE_URL).
// The clients (connect-node gRPC) share this process, all on the same machine. A stream logs one line when it
// ends, not one per tick.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import {
  InferenceService,
  type InferStreamRequest,
  InferStreamRequestSchema,
  InferStreamResponseSchema,
} from "../gen/posterior/v1/inference_service_pb.ts";
import { ModelService } from "../gen/posterior/v1/model_service_pb.ts";
import { distributionsOut, fieldsIn, tensorsOut } from "../src/api/convert.ts";
import { modelTypes } from "../src/models/registry.ts";
import type { JsonObject } from "../src/models/types.ts";
import { resolveArguments } from "../src/models/validation.ts";
import { machine, ownCpuSeconds, percentile, startServer, table } from "./support.ts";

/** Each stream first runs this long at its rate, uncounted: JIT compilation and the first allocations settle. */
const WARMUP_SECONDS = 2;
const INFER_STREAM = "/posterior.v1.InferenceService/InferStream";

type Target = "floor" | "grpc" | "main";
const TARGET_NAMES: Record<Target, string> = {
  floor: "grpc-js floor",
  grpc: "Posterior, gRPC-only port (grpc-js)",
  main: "Posterior, main port (connect-node)",
};

/** The floor's InferStream: the model's infer on a filter state in memory, answered as Posterior answers. */
function serveFloor(modelName: string) {
  const model = modelTypes.get(modelName)!;
  const { arguments: args } = resolveArguments(model.schema, {});
  const parameters = model.initialParameters(args, 0);
  const server = new grpc.Server();
  const handler = (call: grpc.ServerDuplexStream<InferStreamRequest, unknown>) => {
    let state = model.initialState(args) as JsonObject;
    let tick = 0;
    call.on("data", ({ message }: InferStreamRequest) => {
      if (message.case !== "tick") return;
      const { state: next, ...out } = model.infer({
        arguments: args,
        parameters,
        state,
        observation: fieldsIn(message.value.observation),
        goal: fieldsIn(message.value.goal),
        seed: 0,
        decisionIndex: ++tick,
      });
      if (next !== undefined) state = next as JsonObject;
      call.write({
        tick: BigInt(tick),
        result: {
          posteriors: distributionsOut(out.posteriors),
          predictions: distributionsOut(out.predictions),
          actions: tensorsOut(out.actions),
          values: tensorsOut(out.values),
        },
      });
    });
    call.on("end", () => {
      call.write({ tick: 0n });
      call.end();
    });
  };
  server.register(
    INFER_STREAM,
    handler,
    (message: unknown) => Buffer.from(toBinary(InferStreamResponseSchema, create(InferStreamResponseSchema, message as never))),
    (bytes: Buffer) => fromBinary(InferStreamRequestSchema, bytes),
    "bidi",
  );
  server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (error, port) => {
    if (error) throw error;
    console.log(JSON.stringify({ port }));
  });
  process.once("SIGTERM", () => process.exit(0)); // an orderly exit, so that --cpu-prof can write its profile
}

async function main() {
  const model = process.argv[2] ?? "linear-state-space-model-v1";
  const seconds = Number(process.argv[3] ?? 5);
  const scenarios = (process.argv[4] ?? "10x500,50x100").split(",").map((s) => {
    const [streams, hertz] = s.split("x").map(Number);
    return { streams: streams!, hertz: hertz! };
  });
  const targets = (process.argv[5] ?? "floor,grpc,main").split(",") as Target[];

  const dataDir = mkdtempSync(join(tmpdir(), "posterior-control-loop-"));
  const server = await startServer({ POSTERIOR_GRPC_PORT: "0", POSTERIOR_DATA_DIR: join(dataDir, "data") });
  const floor = targets.includes("floor") ? await startServer({}, [import.meta.filename, "floor", model]) : undefined;
  const transportTo = (port: number) => createGrpcTransport({ baseUrl: `http://127.0.0.1:${port}` });
  const models = createClient(ModelService, transportTo(server.port));
  const { modelType } = await models.getModelType({ name: model });
  const observation = Object.fromEntries(
    modelType!.observation
      .filter((f) => f.required || modelType!.observation.every((o) => !o.required))
      .slice(0, 1)
      .map((f) => [f.name, { values: f.example?.values ?? [] }]),
  );
  const newInstance = async () => (await models.createInstance({ model })).instance!.instanceId;
  const endpoints: Record<Target, { port: number; cpuSeconds: () => number; newInstance: () => Promise<string> }> = {
    floor: { port: floor?.port ?? 0, cpuSeconds: () => floor!.cpuSeconds(), newInstance: async () => "floor" },
    grpc: { port: server.grpcPort!, cpuSeconds: server.cpuSeconds, newInstance },
    main: { port: server.port, cpuSeconds: server.cpuSeconds, newInstance },
  };

  console.log(machine());
  console.log(`model ${model}, ${seconds} s per case after ${WARMUP_SECONDS} s of warm-up; Posterior stores every tick's observation`);
  const rows: string[][] = [];
  for (const { streams, hertz } of scenarios) {
    for (const target of targets) {
      const endpoint = endpoints[target];
      const inference = createClient(InferenceService, transportTo(endpoint.port));
      const period = 1000 / hertz;
      const warmupTicks = Math.round(WARMUP_SECONDS * hertz);
      const ticks = warmupTicks + Math.round(seconds * hertz);
      const latencies: number[] = [];
      let late = 0;
      let exceeded = 0;
      let cpuAtStart: { server: number; client: number } | undefined;
      const loop = async () => {
        const instanceId = await endpoint.newInstance();
        const sentAt: number[] = [];
        async function* requests(): AsyncGenerator<InferStreamRequest> {
          yield create(InferStreamRequestSchema, {
            message: { case: "start", value: { instanceId, tickDeadline: { nanos: Math.round(period * 1e6) } } },
          });
          const t0 = performance.now();
          for (let i = 0; i < ticks; i++) {
            const wait = t0 + i * period - performance.now();
            if (wait > 0) await new Promise((r) => setTimeout(r, wait));
            sentAt[i] = performance.now();
            // Every stream ends its warm-up within a millisecond of the first one: CPU counts from there.
            if (i === warmupTicks) cpuAtStart ??= { server: endpoint.cpuSeconds(), client: ownCpuSeconds() };
            yield create(InferStreamRequestSchema, { message: { case: "tick", value: { observation } } });
          }
        }
        for await (const reply of inference.inferStream(requests())) {
          if (reply.error) throw new Error(reply.error.message);
          const i = Number(reply.tick) - 1;
          if (reply.tick === 0n || i < warmupTicks) continue;
          const latency = performance.now() - sentAt[i]!;
          latencies.push(latency);
          if (latency > period) late++;
          if (reply.deadlineExceeded) exceeded++;
        }
      };
      await Promise.all(Array.from({ length: streams }, loop));
      const perTick = (cpuSeconds: number) => ((cpuSeconds * 1000) / latencies.length).toPrecision(2);
      latencies.sort((a, b) => a - b);
      const ms = (v: number) => v.toFixed(2);
      rows.push([
        TARGET_NAMES[target],
        `${streams} × ${hertz} Hz`,
        String(latencies.length),
        ms(percentile(latencies, 0.5)),
        ms(percentile(latencies, 0.9)),
        ms(percentile(latencies, 0.99)),
        ms(latencies.at(-1)!),
        String(late),
        target === "floor" ? "—" : String(exceeded),
        perTick(endpoint.cpuSeconds() - cpuAtStart!.server),
        perTick(ownCpuSeconds() - cpuAtStart!.client),
      ]);
      console.error(`${TARGET_NAMES[target]}, ${streams} × ${hertz} Hz: done`);
    }
  }
  const headers = ["server", "streams × rate", "ticks", "p50 (ms)", "p90 (ms)", "p99 (ms)", "max (ms)", "late replies", "deadline exceeded"];
  console.log(table([...headers, "server CPU ms/tick", "client CPU ms/tick"], rows));
  console.log("Target: 10 × 500 Hz with p99 ≤ 3 ms and no missed deadline.");
  await Promise.all([server.stop(), floor?.stop()]);
  rmSync(dataDir, { recursive: true, force: true });
}

if (process.argv[2] === "floor") serveFloor(process.argv[3]!);
else await main();
