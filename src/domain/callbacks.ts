import type { Logger } from "pino";
import type { AppOrm } from "../persistence/database.ts";
import { Run } from "../persistence/entities.ts";
import { DomainError, invalidRequest } from "./errors.ts";
import { type CallbackRecord, runView } from "./runs.ts";

export interface CallbackOptions {
  /** Origins (`https://hooks.example.com`, `http://127.0.0.1:9000`) callbacks may go to; `*` for any. */
  readonly allow: readonly string[];
  readonly timeoutMs: number;
}

/** Refuses callback URLs that are malformed or outside the allow-list, so the server is no open proxy. */
export function checkCallbackUrl(url: string, allow: readonly string[]): void {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw invalidRequest("callback_url", "must be an absolute http or https URL");
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
    throw invalidRequest("callback_url", "must be an absolute http or https URL");
  }
  if (parsed.username || parsed.password) throw invalidRequest("callback_url", "must not carry credentials");
  if (!allow.includes("*") && !allow.includes(parsed.origin)) {
    throw new DomainError(
      "permission_denied",
      "CALLBACK_NOT_ALLOWED",
      `callbacks to ${parsed.origin} are not allowed; the server's POSTERIOR_CALLBACK_ALLOW lists the permitted origins`,
      { violations: [{ field: "callback_url", description: `origin ${parsed.origin} is not in the allow-list` }] },
    );
  }
}

/** The POSTed body: the run's id, status, parameter version and metrics, named as in the Run message's JSON. */
export function callbackBody(run: Run) {
  const view = runView(run);
  return {
    runId: view.id,
    instanceId: view.instanceId,
    status: `RUN_STATUS_${view.status.toUpperCase()}`,
    error: view.error,
    parametersVersionAfter: view.versionAfter ?? 0,
    attempts: view.attempts,
    endTime: view.finishedAt?.toISOString() ?? null,
    metrics: view.metrics,
  };
}

/**
 * Delivers one attempt of a run's completion callback and records it on the run. A network error,
 * a timeout or a non-2xx answer throws, so that the job queue retries with backoff.
 */
export async function deliverCallback(orm: AppOrm, runId: string, options: CallbackOptions, logger: Logger): Promise<void> {
  const em = orm.em.fork();
  const run = await em.findOne(Run, runId);
  if (!run?.callbackUrl) return;
  const previous = (run.callback as CallbackRecord | null) ?? { attempts: 0, lastStatusCode: 0, lastError: "", deliveredAt: null };
  if (previous.deliveredAt) return;
  let record: CallbackRecord;
  try {
    const response = await fetch(run.callbackUrl, {
      method: "POST",
      headers: { "content-type": "application/json", "user-agent": "posterior" },
      body: JSON.stringify(callbackBody(run)),
      signal: AbortSignal.timeout(options.timeoutMs),
      redirect: "error", // a redirect could lead outside the allow-list
    });
    await response.body?.cancel();
    record = {
      attempts: previous.attempts + 1,
      lastStatusCode: response.status,
      lastError: response.ok ? "" : `HTTP ${response.status}`,
      deliveredAt: response.ok ? new Date().toISOString() : null,
    };
  } catch (error) {
    const message = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
    record = { attempts: previous.attempts + 1, lastStatusCode: 0, lastError: message, deliveredAt: null };
  }
  await em.nativeUpdate(Run, { id: runId }, { callback: { ...record } });
  logger.info({ runId, url: run.callbackUrl, ...record }, "run callback attempt");
  if (!record.deliveredAt) throw new Error(`callback to ${run.callbackUrl} failed: ${record.lastError}`);
}
