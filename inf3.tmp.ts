import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { InferenceService } from "./gen/posterior/v1/inference_service_pb.ts";
import { ModelService } from "./gen/posterior/v1/model_service_pb.ts";
import { startServer } from "./bench/support.ts";
const server = await startServer({ LOG_LEVEL: process.env.LL ?? "info" });
const t = createConnectTransport({ baseUrl: `http://127.0.0.1:${server.port}`, httpVersion: "2", useBinaryFormat: true });
const models = createClient(ModelService, t); const inf = createClient(InferenceService, t);
const { instance } = await models.createInstance({ model: "beta-bernoulli-v1" });
for (const store of [false, true]) {
  let n = 0; const end = performance.now() + 3000; const t0 = performance.now(); const c0 = server.cpuSeconds();
  await Promise.all(Array.from({ length: 64 }, async () => { while (performance.now() < end) { await inf.infer({ instanceId: instance!.instanceId, observation: { y: { values: [1] } }, storeEvent: store }); n++; } }));
  console.log("store", store, Math.round(n / ((performance.now() - t0) / 1000)), "calls/s", ((server.cpuSeconds() - c0) * 1000 / n).toFixed(3), "ms cpu/call");
}
await server.stop();
