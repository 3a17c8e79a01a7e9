import type { ServiceImpl } from "@connectrpc/connect";
import { type LearningService as LearningApi, RestorePoint, RunKind, RunStatus } from "../../gen/posterior/v1/learning_service_pb.ts";
import { invalidRequest } from "../domain/errors.ts";
import type { LearningService, RunStatus as DomainRunStatus, RunView } from "../domain/learning.ts";
import { fieldsIn, timestampIn, timestampOut } from "./convert.ts";

const statuses = {
  queued: RunStatus.QUEUED,
  running: RunStatus.RUNNING,
  succeeded: RunStatus.SUCCEEDED,
  failed: RunStatus.FAILED,
  cancelled: RunStatus.CANCELLED,
} as const;

const statusIn: Partial<Record<RunStatus, DomainRunStatus>> = Object.fromEntries(
  Object.entries(statuses).map(([domain, wire]) => [wire, domain as DomainRunStatus]),
);

export const runOut = (r: RunView) => ({
  runId: r.id,
  instanceId: r.instanceId,
  kind: r.kind === "learn" ? RunKind.LEARN : RunKind.RESTORE,
  status: statuses[r.status],
  episodes: r.episodes.map((e) => ({ episode: e.episode, fromSeq: BigInt(e.fromSeq), toSeq: BigInt(e.toSeq) })),
  relearn: r.relearn,
  parameters: [...r.parameterNames],
  createTime: timestampOut(r.createdAt),
  startTime: timestampOut(r.startedAt),
  endTime: timestampOut(r.finishedAt),
  progress: r.progress
    ? { iteration: r.progress.iteration, totalIterations: r.progress.totalIterations, dataPoints: BigInt(r.progress.dataPoints) }
    : undefined,
  metrics: r.metrics
    ? {
        freeEnergy: [...(r.metrics.freeEnergy ?? [])],
        iterations: r.metrics.iterations ?? 0,
        dataPoints: BigInt(r.metrics.dataPoints),
        durationSeconds: r.metrics.durationSeconds,
        values: { ...r.metrics.values },
      }
    : undefined,
  error: r.error,
  parametersVersionBefore: r.versionBefore ?? 0,
  parametersVersionAfter: r.versionAfter ?? 0,
  attempts: r.attempts,
  callbackUrl: r.callbackUrl,
  callback: r.callback
    ? {
        attempts: r.callback.attempts,
        lastStatusCode: r.callback.lastStatusCode,
        lastError: r.callback.lastError,
        deliveredTime: timestampOut(r.callback.deliveredAt ? new Date(r.callback.deliveredAt) : null),
      }
    : undefined,
  restoredRunId: r.restoredRunId,
  worker: r.worker,
});

const restorePoints = { [RestorePoint.BEFORE]: "before", [RestorePoint.AFTER]: "after" } as const;

export function learningService(learning: LearningService): ServiceImpl<typeof LearningApi> {
  return {
    async learn(req, ctx) {
      const run = await learning.learn({
        instanceId: req.instanceId,
        episodes: req.episodes,
        relearn: req.relearn,
        parameters: req.parameters,
        wait: req.wait,
        callbackUrl: req.callbackUrl,
        inlineEpisode: req.inlineEpisode,
        inlineEvents: req.inlineEvents.map((e) => ({ timestamp: timestampIn(e.timestamp), data: fieldsIn(e.data), metadata: e.metadata })),
        options: req.options ?? {},
      }, ctx.signal);
      return { run: runOut(run) };
    },
    getRun: async (req) => ({ run: runOut(await learning.getRun(req.runId)) }),
    async listRuns(req) {
      const page = await learning.listRuns({
        instanceId: req.instanceId,
        status: statusIn[req.status],
        pageSize: req.pageSize,
        pageToken: req.pageToken,
      });
      return { runs: page.runs.map(runOut), nextPageToken: page.nextPageToken };
    },
    async *watchRun(req, ctx) {
      for await (const run of learning.watch(req.runId, ctx.signal)) yield { run: runOut(run) };
    },
    cancelRun: async (req, ctx) => ({ run: runOut(await learning.cancelRun(req.runId, ctx.signal)) }),
    async restoreParameters(req) {
      const point = restorePoints[req.point as keyof typeof restorePoints];
      if (!point) throw invalidRequest("point", "must be RESTORE_POINT_BEFORE or RESTORE_POINT_AFTER");
      return { run: runOut(await learning.restoreParameters(req.instanceId, req.runId, point)) };
    },
  };
}
