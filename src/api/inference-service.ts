import type { ServiceImpl } from "@connectrpc/connect";
import type { Duration } from "@bufbuild/protobuf/wkt";
import type { InferRequest, InferenceService as InferenceApi } from "../../gen/posterior/v1/inference_service_pb.ts";
import type { InferenceService, InferInput, InferResult } from "../domain/inference.ts";
import { distributionsOut, fieldsIn, tensorsOut, timestampIn } from "./convert.ts";
import { invalidRequest } from "../domain/errors.ts";
import { untilAborted } from "./abortable.ts";
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

const milliseconds = (d: Duration | undefined): number | undefined =>
  d === undefined ? undefined : Number(d.seconds) * 1000 + d.nanos / 1e6;

export function inferenceService(inference: InferenceService): ServiceImpl<typeof InferenceApi> {
  return {
    infer: async (req) => inferOut(await inference.infer(inferIn(req))),
    async inferBatch(req, ctx) {
      const rows = await inference.inferBatch(req.requests.map(inferIn));
      return {
        results: rows.map((row, index) => {
          if (row.ok) return { result: { case: "response" as const, value: inferOut(row.result) } };
          if (isUnexpected(row.error)) ctx.values.get(requestLogger)?.().error({ err: row.error, index }, "batch row failed");
          return { result: { case: "error" as const, value: statusOut(row.error) } };
        }),
      };
    },
    async *inferStream(requests, ctx) {
      const messages = untilAborted(requests, ctx.signal);
      const first = await messages.next();
      if (first.done) return;
      if (first.value.message.case !== "start") throw invalidRequest("message", "the first message must be start");
      const start = first.value.message.value;
      const stream = await inference.openStream({
        instanceId: start.instanceId,
        episode: start.episode,
        storeEvent: start.storeEvent ?? true,
        arguments: start.arguments ?? {},
        tickDeadlineMs: milliseconds(start.tickDeadline),
      });
      let closed = false;
      try {
        for await (const { message } of messages) {
          if (message.case !== "tick") throw invalidRequest("message", "only the first message may be start; send ticks");
          const tick = message.value;
          const outcome = await stream.tick({
            observation: fieldsIn(tick.observation),
            goal: fieldsIn(tick.goal),
            timestamp: timestampIn(tick.timestamp),
            deadlineMs: milliseconds(tick.deadline),
          });
          if (outcome.error !== undefined && isUnexpected(outcome.error)) {
            ctx.values.get(requestLogger)?.().error({ err: outcome.error, tick: outcome.tick }, "stream tick failed");
          }
          yield {
            tick: BigInt(outcome.tick),
            result: outcome.result ? inferOut(outcome.result) : undefined,
            deadlineExceeded: outcome.deadlineExceeded,
            durableEventSeq: BigInt(outcome.durableEventSeq),
            durableTick: BigInt(outcome.durableTick),
            error: outcome.error === undefined ? undefined : statusOut(outcome.error),
          };
        }
        // The client finished sending: commit everything, then confirm it in a last message (tick 0).
        await inference.closeStream(stream);
        closed = true;
        yield { tick: 0n, durableEventSeq: BigInt(stream.durable.eventSeq), durableTick: BigInt(stream.durable.tick) };
      } finally {
        if (!closed) await inference.closeStream(stream);
      }
    },
  };
}
