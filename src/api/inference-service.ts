import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import type { InferRequest, InferenceService as InferenceApi } from "../../gen/posterior/v1/inference_service_pb.ts";
import type { InferenceService, InferInput, InferResult } from "../domain/inference.ts";
import { distributionsOut, fieldsIn, tensorsOut, timestampIn } from "./convert.ts";
import { requestLogger } from "./context.ts";
import { isUnexpected, statusOut } from "./errors.ts";

const inferIn = (req: InferRequest): InferInput => ({
  instanceId: req.instanceId,
  observation: fieldsIn(req.observation),
  goal: fieldsIn(req.goal),
  timestamp: timestampIn(req.timestamp),
  episode: req.episode,
  arguments: req.arguments ?? {},
  storeEvent: req.storeEvent ?? true,
  runId: req.runId,
  metadata: req.metadata,
  decisionIndex: req.decisionIndex === undefined ? undefined : Number(req.decisionIndex),
});

const inferOut = (r: InferResult) => ({
  instanceId: r.instanceId,
  posteriors: distributionsOut(r.posteriors),
  predictions: distributionsOut(r.predictions),
  actions: tensorsOut(r.actions),
  values: tensorsOut(r.values),
  labels: r.labels ?? {},
  episode: r.episode,
  eventSeq: BigInt(r.eventSeq),
  parametersVersion: r.parametersVersion,
  parametersRunId: r.parametersRunId,
  seed: r.seed,
});

export function inferenceService(inference: InferenceService): ServiceImpl<typeof InferenceApi> {
  return {
    infer: async (req) => inferOut(await inference.infer(inferIn(req))),
    async inferBatch(req, ctx) {
      const rows = await inference.inferBatch(req.requests.map(inferIn));
      return {
        results: rows.map((row, index) => {
          if (row.ok) return { result: { case: "response" as const, value: inferOut(row.result) } };
          if (isUnexpected(row.error)) ctx.values.get(requestLogger)?.error({ err: row.error, index }, "batch row failed");
          return { result: { case: "error" as const, value: statusOut(row.error) } };
        }),
      };
    },
    async *inferStream() {
      throw new ConnectError("InferStream is not implemented yet", Code.Unimplemented);
    },
  };
}
