// The browser side of browser.test.ts: a tiny app on Connect-Web, bundled by esbuild at test time.
// It hands back plain JSON, because only serializable values cross page.evaluate.
import { type JsonValue, toJson } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-web";
import { BadRequestSchema, ErrorInfoSchema } from "../../../gen/google/rpc/error_details_pb.ts";
import { InferenceService, InferResponseSchema } from "../../../gen/posterior/v1/inference_service_pb.ts";
import { LearningService, LearnResponseSchema, WatchRunResponseSchema } from "../../../gen/posterior/v1/learning_service_pb.ts";
import { GetParametersResponseSchema, ModelService } from "../../../gen/posterior/v1/model_service_pb.ts";

export type TransportKind = "connect" | "grpc-web";

export interface Failure {
  code: string;
  message: string;
  requestId: string | null;
  errorInfo: JsonValue[];
  badRequest: JsonValue[];
}

function clients(baseUrl: string, kind: TransportKind) {
  // Per method, in call order, the request ids the app could read; null where CORS hides them.
  const requestIds: Record<string, (string | null)[]> = {};
  const readRequestId: Interceptor = (next) => async (req) => {
    const res = await next(req);
    (requestIds[req.method.name] ??= []).push(res.header.get("x-request-id"));
    return res;
  };
  const options = { baseUrl, interceptors: [readRequestId] };
  const transport = kind === "connect" ? createConnectTransport(options) : createGrpcWebTransport(options);
  return {
    requestIds,
    models: createClient(ModelService, transport),
    inference: createClient(InferenceService, transport),
    learning: createClient(LearningService, transport),
  };
}

async function failure(call: () => Promise<unknown>): Promise<Failure> {
  try {
    await call();
  } catch (e) {
    const err = ConnectError.from(e);
    return {
      code: Code[err.code],
      message: err.rawMessage,
      requestId: err.metadata.get("x-request-id"),
      errorInfo: err.findDetails(ErrorInfoSchema).map((d) => toJson(ErrorInfoSchema, d)),
      badRequest: err.findDetails(BadRequestSchema).map((d) => toJson(BadRequestSchema, d)),
    };
  }
  throw new Error("the call was expected to fail");
}

const api = {
  /** Create → infer → learn (waiting) → parameters, then a second run watched as a server stream. */
  async lifecycle(baseUrl: string, kind: TransportKind, requestId: string) {
    const c = clients(baseUrl, kind);
    const { instance } = await c.models.createInstance({ model: "beta-bernoulli-v1", arguments: { prior_a: 2 } });
    const instanceId = instance!.instanceId;
    const inferred = await c.inference.infer(
      { instanceId, observation: { y: { values: [1] } } },
      { headers: { "x-request-id": requestId } },
    );
    const learned = await c.learning.learn({ instanceId, wait: true });
    const parameters = await c.models.getParameters({ instanceId });

    await c.inference.infer({ instanceId, observation: { y: { values: [0] } } });
    const { run } = await c.learning.learn({ instanceId });
    const watched = [];
    for await (const update of c.learning.watchRun({ runId: run!.runId })) watched.push(toJson(WatchRunResponseSchema, update));

    return {
      inferred: toJson(InferResponseSchema, inferred),
      learned: toJson(LearnResponseSchema, learned),
      parameters: toJson(GetParametersResponseSchema, parameters),
      watched,
      requestIds: c.requestIds,
    };
  },

  async failures(baseUrl: string, kind: TransportKind) {
    const c = clients(baseUrl, kind);
    const notFound = await failure(() => c.models.getInstance({ instanceId: "00000000-0000-4000-8000-000000000000" }));
    const { instance } = await c.models.createInstance({ model: "beta-bernoulli-v1" });
    const invalid = await failure(() => c.inference.infer({ instanceId: instance!.instanceId, observation: { y: { values: [2] } } }));
    return { notFound, invalid };
  },

  /** A call the browser itself may refuse (CORS): nothing from the server reaches the app. */
  refused: (baseUrl: string, kind: TransportKind) => failure(() => clients(baseUrl, kind).models.listModelTypes({})),
};

export type Api = typeof api;

// No DOM types in this project's tsconfig; globalThis is the page's window.
(globalThis as unknown as { posterior: Api }).posterior = api;
