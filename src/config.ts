import { readFileSync } from "node:fs";
import type { JobQueueOptions } from "./persistence/jobs.ts";

/**
 * Which calls write an access-log line: every call, only those that fail, or none. A call that
 * fails unexpectedly (INTERNAL) is logged as an error whatever this says.
 */
export type AccessLog = "all" | "failures" | "none";
const ACCESS_LOG_CHOICES: readonly AccessLog[] = ["all", "failures", "none"];

export interface Config {
  readonly host: string;
  readonly port: number;
  /** A second port speaking only gRPC on @grpc/grpc-js; off when undefined. */
  readonly grpcPort?: number;
  /** Embedded database directory (ignored when databaseUrl is set). */
  readonly dataDir: string;
  readonly databaseUrl?: string;
  /** The embedded database's shared_buffers, in MB. */
  readonly embeddedSharedBuffersMb?: number;
  readonly logLevel: string;
  readonly accessLog: AccessLog;
  readonly tls?: { readonly key: Buffer; readonly cert: Buffer };
  readonly inferBatchLimit: number;
  readonly shutdownGraceMs: number;
  /** Browser origins allowed to call cross-origin; `*` for any. Empty: same-origin only. */
  readonly corsOrigins: readonly string[];
  /** Learning runs executed at once by this process. */
  readonly learnConcurrency: number;
  readonly jobs: JobQueueOptions;
  /** Origins completion callbacks may be sent to; `*` for any. Empty: callbacks are refused. */
  readonly callbackAllow: readonly string[];
  readonly callbackTimeoutMs: number;
}

type Env = Readonly<Record<string, string | undefined>>;

/** Reads the configuration from environment variables; README lists them with their defaults. */
export function loadConfig(env: Env): Config {
  const cert = env.POSTERIOR_TLS_CERT;
  const key = env.POSTERIOR_TLS_KEY;
  if (Boolean(cert) !== Boolean(key)) throw new Error("set both POSTERIOR_TLS_CERT and POSTERIOR_TLS_KEY, or neither");
  return {
    host: env.POSTERIOR_HOST || "127.0.0.1",
    port: integer(env, "POSTERIOR_PORT", 8080, 0, 65535),
    grpcPort: env.POSTERIOR_GRPC_PORT ? integer(env, "POSTERIOR_GRPC_PORT", 0, 0, 65535) : undefined,
    dataDir: env.POSTERIOR_DATA_DIR || "data",
    databaseUrl: env.DATABASE_URL || undefined,
    embeddedSharedBuffersMb: env.POSTERIOR_EMBEDDED_SHARED_BUFFERS_MB
      ? integer(env, "POSTERIOR_EMBEDDED_SHARED_BUFFERS_MB", 0, 1, 65_536)
      : undefined,
    logLevel: env.LOG_LEVEL || "info",
    accessLog: choice(env, "POSTERIOR_ACCESS_LOG", ACCESS_LOG_CHOICES),
    tls: cert && key ? { cert: readFileSync(cert), key: readFileSync(key) } : undefined,
    inferBatchLimit: integer(env, "POSTERIOR_INFER_BATCH_LIMIT", 100, 1, 100_000),
    shutdownGraceMs: integer(env, "POSTERIOR_SHUTDOWN_GRACE_MS", 5000, 0, 600_000),
    corsOrigins: list(env.POSTERIOR_CORS_ORIGINS),
    learnConcurrency: integer(env, "POSTERIOR_LEARN_CONCURRENCY", 1, 1, 64),
    jobs: {
      learnRetries: integer(env, "POSTERIOR_LEARN_RETRIES", 2, 0, 100),
      learnRetryDelaySeconds: integer(env, "POSTERIOR_LEARN_RETRY_DELAY_SECONDS", 5, 1, 3600),
      learnTimeoutSeconds: integer(env, "POSTERIOR_LEARN_TIMEOUT_SECONDS", 3600, 10, 86_400),
      callbackRetries: integer(env, "POSTERIOR_CALLBACK_RETRIES", 5, 0, 100),
      callbackRetryDelaySeconds: integer(env, "POSTERIOR_CALLBACK_RETRY_DELAY_SECONDS", 2, 1, 3600),
    },
    callbackAllow: list(env.POSTERIOR_CALLBACK_ALLOW).map((o) => (o === "*" ? o : new URL(o).origin)),
    callbackTimeoutMs: integer(env, "POSTERIOR_CALLBACK_TIMEOUT_MS", 5000, 100, 600_000),
  };
}

/** One of `choices`; the first when unset. */
function choice<T extends string>(env: Env, name: string, choices: readonly T[]): T {
  const raw = env[name];
  if (raw === undefined || raw === "") return choices[0]!;
  if (!choices.includes(raw as T)) throw new Error(`${name} must be one of ${choices.join(", ")}, got ${JSON.stringify(raw)}`);
  return raw as T;
}

function integer(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new Error(`${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(raw)}`);
  }
  return value;
}

const list = (raw: string | undefined) => (raw ?? "").split(",").map((o) => o.trim()).filter(Boolean);
