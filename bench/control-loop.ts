// N concurrent InferStream control loops at F Hz against a real server process:
//   node bench/control-loop.ts [model] [seconds] [streams×hertz,…] [main|grpc]   (DATABASE_URL=… to store in PostgreSQL)
// Reports reply latency percentiles, replies that came after the next tick was due, and ticks whose
// server-side deadline (one period) passed. The server runs in its own process on an in-memory
// PGlite database (or DATABASE_URL), storing every tick's observation; clients share this process. A stream logs one line
// when it ends, not one per tick.
import { create } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import {
  InferenceService,
  type InferStreamRequest,
  InferStreamRequestSchema,
} from "../gen/posterior/v1/inference_service_pb.ts";
import { ModelService } from "../gen/posterior/v1/model_service_pb.ts";
import { percentile, startServer } from "./support.ts";

const model = process.argv[2] ?? "linear-state-space-model-v1";
const seconds = Number(process.argv[3] ?? 5);
/** Each stream first runs this long at its rate, uncounted: JIT compilation and the first allocations settle. */
const WARMUP_SECONDS = 2;
const scenarios = (process.argv[4] ?? "10x500,50x100").split(",").map((s) => {
  const [streams, hertz] = s.split("x").map(Number);
  return { streams: streams!, hertz: hertz! };
});
/** `main`: the Connect port; `grpc`: the optional grpc-js port (POSTERIOR_GRPC_PORT). */
const port = process.argv[5] ?? "main";

async function main() {
  const server = await startServer(port === "grpc" ? { POSTERIOR_GRPC_PORT: "0" } : {});
  const transport = createGrpcTransport({ baseUrl: `http://127.0.0.1:${port === "grpc" ? server.grpcPort : server.port}` });
  const models = createClient(ModelService, transport);
  const inference = createClient(InferenceService, transport);
  const { modelType } = await models.getModelType({ name: model });
  const observation = Object.fromEntries(
    modelType!.observation.filter((f) => f.required || modelType!.observation.every((o) => !o.required)).slice(0, 1).map((f) => [f.name, { values: f.example?.values ?? [] }]),
  );
  const database = process.env.DATABASE_URL ? "PostgreSQL" : "PGlite";
  console.log(`node ${process.version}, ${new Date().toISOString()}, model ${model}, ${seconds} s per scenario after ${WARMUP_SECONDS} s of warm-up, events stored in ${database}, ${port} port`);
  console.log("| streams × rate | ticks | p50 (ms) | p90 (ms) | p99 (ms) | max (ms) | late replies | deadline exceeded |");
  console.log("|---|---|---|---|---|---|---|---|");
  for (const { streams, hertz } of scenarios) {
    const period = 1000 / hertz;
    const latencies: number[] = [];
    let late = 0;
    let exceeded = 0;
    const loop = async () => {
      const { instance } = await models.createInstance({ model });
      const sentAt: number[] = [];
      const warmupTicks = Math.round(WARMUP_SECONDS * hertz);
      const ticks = warmupTicks + Math.round(seconds * hertz);
      async function* requests(): AsyncGenerator<InferStreamRequest> {
        yield create(InferStreamRequestSchema, {
          message: { case: "start", value: { instanceId: instance!.instanceId, tickDeadline: { nanos: Math.round(period * 1e6) } } },
        });
        const t0 = performance.now();
        for (let i = 0; i < ticks; i++) {
          const due = t0 + i * period;
          const wait = due - performance.now();
          if (wait > 0) await new Promise((r) => setTimeout(r, wait));
          sentAt[i] = performance.now();
          yield create(InferStreamRequestSchema, { message: { case: "tick", value: { observation } } });
        }
      }
      for await (const reply of inference.inferStream(requests())) {
        if (reply.tick === 0n) continue;
        const i = Number(reply.tick) - 1;
        if (i < warmupTicks) continue;
        const latency = performance.now() - sentAt[i]!;
        latencies.push(latency);
        if (latency > period) late++;
        if (reply.deadlineExceeded) exceeded++;
        if (reply.error) throw new Error(reply.error.message);
      }
    };
    await Promise.all(Array.from({ length: streams }, loop));
    latencies.sort((a, b) => a - b);
    const f = (v: number) => v.toFixed(2);
    console.log(
      `| ${streams} × ${hertz} Hz | ${latencies.length} | ${f(percentile(latencies, 0.5))} | ${f(percentile(latencies, 0.9))} | ${f(percentile(latencies, 0.99))} | ${f(latencies.at(-1)!)} | ${late} | ${exceeded} |`,
    );
  }
  await server.stop();
}

await main();
