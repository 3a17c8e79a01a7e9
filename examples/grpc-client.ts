// A plain gRPC client (@grpc/grpc-js) built from the .proto files, against a running server:
//   node examples/grpc-client.ts [host:port]
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";

const address = process.argv[2] ?? "127.0.0.1:8080";
const definition = protoLoader.loadSync(
  ["posterior/v1/model_service.proto", "posterior/v1/inference_service.proto", "posterior/v1/learning_service.proto"],
  { includeDirs: [new URL("../proto", import.meta.url).pathname], longs: String, enums: String, oneofs: true },
);
const { posterior } = grpc.loadPackageDefinition(definition) as unknown as {
  posterior: { v1: Record<string, new (address: string, credentials: grpc.ChannelCredentials) => grpc.Client> };
};
const connect = (service: string) => new posterior.v1[service]!(address, grpc.credentials.createInsecure());
const call = <T>(client: grpc.Client, method: string, request: object) =>
  new Promise<T>((resolve, reject) =>
    (client as unknown as Record<string, (r: object, cb: (e: Error | null, v: T) => void) => void>)[method]!.call(
      client,
      request,
      (error, value) => (error ? reject(error) : resolve(value)),
    ),
  );

const models = connect("ModelService");
const inference = connect("InferenceService");
const learning = connect("LearningService");

const { instance } = await call<{ instance: { instanceId: string } }>(models, "createInstance", {
  model: "beta-bernoulli-v1",
  description: "grpc example",
});
console.log("instance", instance.instanceId);

await call(models, "attachEvents", {
  instanceId: instance.instanceId,
  events: [1, 1, 0, 1].map((y) => ({ data: { y: { values: [y] } } })),
});
const { run } = await call<{ run: object }>(learning, "learn", { instanceId: instance.instanceId, wait: true });
console.log("run", JSON.stringify(run));

const inferred = await call<object>(inference, "infer", { instanceId: instance.instanceId, observation: { y: { values: [1] } } });
console.log("infer", JSON.stringify(inferred));
for (const client of [models, inference, learning]) client.close();
