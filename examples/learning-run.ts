// A learning run from queue to restore, with the Connect client, against a running server:
//   node examples/learning-run.ts [http://127.0.0.1:8080]
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { LearningService, RestorePoint, RunStatus } from "../gen/posterior/v1/learning_service_pb.ts";
import { ModelService } from "../gen/posterior/v1/model_service_pb.ts";

const statusName = Object.fromEntries(Object.entries(RunStatus).map(([name, value]) => [value, name]));
const transport = createConnectTransport({ baseUrl: process.argv[2] ?? "http://127.0.0.1:8080", httpVersion: "2" });
const models = createClient(ModelService, transport);
const learning = createClient(LearningService, transport);

const { instance } = await models.createInstance({ model: "linear-state-space-model-v1", description: "learning-run example" });
const instanceId = instance!.instanceId;
const events = Array.from({ length: 2000 }, (_, t) => ({ data: { y: { values: [Math.sin(t / 10), Math.cos(t / 10)] } } }));
await models.attachEvents({ instanceId, events });

// Returns at once with the run queued; the server learns in the background.
const { run } = await learning.learn({ instanceId, options: { iterations: 100 } });
console.log("queued", run!.runId);
for await (const { run: now } of learning.watchRun({ runId: run!.runId })) {
  const p = now!.progress;
  console.log(statusName[now!.status], p ? `iteration ${p.iteration}/${p.totalIterations}` : "");
}
const done = (await learning.getRun({ runId: run!.runId })).run!;
console.log("parameters version", done.parametersVersionBefore, "→", done.parametersVersionAfter, "in", done.metrics?.durationSeconds, "s");

// Undo it: the parameters and learned cursors as they were before the run, recorded as a run itself.
const { run: restore } = await learning.restoreParameters({ instanceId, runId: done.runId, point: RestorePoint.BEFORE });
console.log("restored by run", restore!.runId, "version", restore!.parametersVersionAfter);
await models.deleteInstance({ instanceId });
