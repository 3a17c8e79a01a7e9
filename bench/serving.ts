// Unary Infer on Posterior next to minimal "floor" servers that run the same beta-bernoulli-v1 inference:
//   node bench/serving.ts [seconds] [durable|json|grpc]   (seconds measured per case, default 5, after up to 2 s of
//                                                         warm-up; `durable`: only the fixed-rate durable Infer cases;
//                                                         `json`, `grpc`: only the Connect JSON or the gRPC cases)
// Every case reports calls/s, client-side latency p50/p99 and the server's CPU per call (Δ utime+stime of the
// server process from /proc ÷ calls; GC threads and, for Posterior, PGlite included), with ratios to the floor
// measured by the same client tool in the same run. Floors and Posterior run in child processes, one loaded at a
// time; floor and Posterior cases alternate so that neighbour load hits both alike.
// Client and server share the machine's cores (2 on the reference VM): Node clients take CPU from the server,
// so CPU per call is the steadier figure, and h2load / wrk (C) give the throughput at saturation.
// Posterior runs with this command's environment: POSTERIOR_ACCESS_LOG=failures measures it without the
// access-log line of successful calls.
// Sub-modes, spawned by the main mode: `floor-grpc` (@grpc/grpc-js), `floor-http` (node:http, Connect JSON),
// `floor-h2` (node:http2, Connect binary); and, spawned by bench/json-budget.ts, `rung-proto-json` and
// `rung-access-log` (the node:http floor with some of Posterior's pieces). Each serves Infer only and prints
// {"port":N} when listening.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import http2 from "node:http2";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport, Http2SessionManager } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { createMethodSerializationLookup } from "@connectrpc/connect/protocol";
import {
  InferenceService,
  type InferResponse,
  InferRequestSchema,
  InferResponseSchema,
} from "../gen/posterior/v1/inference_service_pb.ts";
import { ModelService } from "../gen/posterior/v1/model_service_pb.ts";
import { distributionsOut, fieldsIn } from "../src/api/convert.ts";
import type { Distribution } from "../src/math/distribution.ts";
import type { Tensor } from "../src/math/tensor.ts";
import { modelTypes } from "../src/models/registry.ts";
import { createLogger } from "../src/logger.ts";
import { MESSAGE_LIMITS } from "../src/server/call-context.ts";
import { beginCall, REQUEST_ID_HEADER, requestIdOf } from "../src/server/interceptors.ts";
import {
  type FloorMode,
  type FloorServer,
  format,
  grpcFrame,
  inferRequest,
  machine,
  percentile,
  run,
  startFloor,
  startServer,
  table,
  writeWrkScript,
} from "./support.ts";

const MODEL = "beta-bernoulli-v1";
const INFER_PATH = "/posterior.v1.InferenceService/Infer";
const HIGH_CONCURRENCY = 64;
/** The durable-Infer target's rate: ≥ 5 000 calls/s with p99 ≤ 10 ms. */
const DURABLE_RATE = 5000;

// ---- Floors: the same model logic behind a bare transport, parameters in memory, nothing stored ----------

/** A tensor as proto-loader objects and proto3 JSON carry it (absent fields when default). */
interface PlainTensor {
  shape?: number[];
  values?: number[];
}
interface PlainInferRequest {
  instanceId?: string;
  observation?: Record<string, PlainTensor>;
}

const floorModel = (() => {
  const model = modelTypes.get(MODEL)!;
  const args = { prior_a: 1, prior_b: 1 };
  const parameters = model.initialParameters(args, 0);
  const state = model.initialState(args);
  // No schema validation, cache, episode or log line: those are part of what Posterior is measured to cost.
  return (observation: Record<string, Tensor>) =>
    model.infer({ arguments: args, parameters, state, observation, goal: {}, seed: 0, decisionIndex: 0 });
})();

const plainFields = (map: Record<string, PlainTensor> = {}): Record<string, Tensor> =>
  Object.fromEntries(Object.entries(map).map(([k, t]) => [k, { shape: t.shape ?? [], values: t.values ?? [] }]));

// proto-loader objects and proto3 JSON both spell a oneof case as a field: { beta: { alpha, beta } }.
const plainDistributions = (map: Record<string, Distribution> = {}) =>
  Object.fromEntries(Object.entries(map).map(([name, { kind, ...value }]) => [name, { [kind]: value }]));

function plainInfer(request: PlainInferRequest) {
  const out = floorModel(plainFields(request.observation));
  return {
    instanceId: request.instanceId ?? "",
    posteriors: plainDistributions(out.posteriors),
    predictions: plainDistributions(out.predictions),
  };
}

const protoOptions: protoLoader.Options = { longs: String, enums: String, defaults: false, oneofs: true };

function inferenceStubs(): grpc.ServiceClientConstructor {
  // google/protobuf resolves from protobufjs's bundled copies, google/rpc from proto/.
  const definition = protoLoader.loadSync("posterior/v1/inference_service.proto", {
    ...protoOptions,
    includeDirs: [join(import.meta.dirname, "../proto")],
  });
  const root = grpc.loadPackageDefinition(definition) as unknown as { posterior: { v1: { InferenceService: grpc.ServiceClientConstructor } } };
  return root.posterior.v1.InferenceService;
}

const announce = (port: number) => console.log(JSON.stringify({ port }));

function serveGrpcFloor() {
  const server = new grpc.Server();
  server.addService(inferenceStubs().service, {
    infer: (call: grpc.ServerUnaryCall<PlainInferRequest, unknown>, callback: grpc.sendUnaryData<unknown>) =>
      callback(null, plainInfer(call.request)),
  });
  server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (error, port) => {
    if (error) throw error;
    announce(port);
  });
}

function readAll(stream: NodeJS.ReadableStream, done: (body: Buffer) => void) {
  const chunks: Buffer[] = [];
  stream.on("data", (chunk: Buffer) => chunks.push(chunk));
  stream.on("end", () => done(Buffer.concat(chunks)));
}

function serveHttpFloor() {
  const server = http.createServer((req, res) =>
    readAll(req, (body) => {
      if (req.method !== "POST" || req.url !== INFER_PATH) return void res.writeHead(404).end();
      try {
        const answer = JSON.stringify(plainInfer(JSON.parse(body.toString()) as PlainInferRequest));
        res.writeHead(200, { "content-type": "application/json" }).end(answer);
      } catch {
        res.writeHead(400, { "content-type": "application/json" }).end('{"code":"invalid_argument"}');
      }
    }),
  );
  server.listen(0, "127.0.0.1", () => announce((server.address() as { port: number }).port));
}

/**
 * The node:http floor with Posterior's pieces added one rung at a time, Posterior's own code where it
 * is separable: proto3 JSON through Connect's serialization of the method (as the short JSON path
 * parses and writes), and with `accessLog`, a request id and an access-log line through `beginCall`
 * to the server's own logger.
 */
function serveHttpRung(accessLog: boolean) {
  const method = InferenceService.method.infer;
  const serialization = createMethodSerializationLookup(method, undefined, undefined, MESSAGE_LIMITS);
  const logging = accessLog ? { logger: createLogger("info").logger, accessLog: "all" as const } : undefined;
  const server = http.createServer((req, res) =>
    readAll(req, (body) => {
      if (req.method !== "POST" || req.url !== INFER_PATH) return void res.writeHead(404).end();
      const call = logging && beginCall(logging, `${InferenceService.typeName}/${method.name}`, requestIdOf(req.headers));
      const request = serialization.getI(false).parse(body);
      const out = floorModel(fieldsIn(request.observation));
      const answer = create(method.output, {
        instanceId: request.instanceId,
        posteriors: distributionsOut(out.posteriors),
        predictions: distributionsOut(out.predictions),
      });
      call?.done();
      const header: Record<string, string> = { "content-type": "application/json" };
      if (call) header[REQUEST_ID_HEADER] = call.id;
      res.writeHead(200, header).end(serialization.getO(false).serialize(answer));
    }),
  );
  server.listen(0, "127.0.0.1", () => announce((server.address() as { port: number }).port));
}

function serveH2Floor() {
  const server = http2.createServer();
  server.on("stream", (stream, headers) =>
    readAll(stream, (body) => {
      if (headers[":path"] !== INFER_PATH || headers["content-type"] !== "application/proto") return void stream.respond({ ":status": 404 }, { endStream: true });
      const request = fromBinary(InferRequestSchema, body);
      const out = floorModel(fieldsIn(request.observation));
      const answer = create(InferResponseSchema, {
        instanceId: request.instanceId,
        posteriors: distributionsOut(out.posteriors),
        predictions: distributionsOut(out.predictions),
      });
      stream.respond({ ":status": 200, "content-type": "application/proto" });
      stream.end(toBinary(InferResponseSchema, answer));
    }),
  );
  server.listen(0, "127.0.0.1", () => announce((server.address() as { port: number }).port));
}

// ---- Servers under test --------------------------------------------------------------------------------

type Target = FloorServer;

// ---- Clients ---------------------------------------------------------------------------------------------

/** What a reply says, whatever the client: the posterior's alpha and the stored event's number. */
interface Outcome {
  alpha: number | undefined;
  eventSeq: number;
}

interface Caller {
  infer(): Promise<Outcome>;
  close(): void;
}

interface PlainInferResponse {
  posteriors?: Record<string, { beta?: { alpha?: number } }>;
  eventSeq?: string;
}

const plainOutcome = (r: PlainInferResponse): Outcome => ({ alpha: r.posteriors?.p?.beta?.alpha, eventSeq: Number(r.eventSeq ?? 0) });

function messageOutcome(r: InferResponse): Outcome {
  const kind = r.posteriors.p?.kind;
  return { alpha: kind?.case === "beta" ? kind.value.alpha : undefined, eventSeq: Number(r.eventSeq) };
}

/** Prior Beta(1, 1) and y = 1 give alpha 2; Posterior numbers the event only when it stores it. */
function expectAnswer(outcome: Outcome, stored: boolean, what: string) {
  if (outcome.alpha !== 2 || outcome.eventSeq > 0 !== stored) throw new Error(`${what}: unexpected reply ${JSON.stringify(outcome)}`);
}

let stubs: grpc.ServiceClientConstructor | undefined;

function grpcJsCaller(port: number, instanceId: string, storeEvent: boolean): Caller {
  stubs ??= inferenceStubs();
  const client = new stubs(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as unknown as grpc.Client & {
    infer(request: object, callback: (error: grpc.ServiceError | null, reply: PlainInferResponse) => void): void;
  };
  const request = inferRequest(instanceId, storeEvent);
  return {
    infer: () => new Promise((resolve, reject) => client.infer(request, (error, reply) => (error ? reject(error) : resolve(plainOutcome(reply))))),
    close: () => client.close(),
  };
}

function connectBinaryCaller(port: number, instanceId: string, storeEvent: boolean): Caller {
  const baseUrl = `http://127.0.0.1:${port}`;
  const sessionManager = new Http2SessionManager(baseUrl);
  const client = createClient(InferenceService, createConnectTransport({ baseUrl, httpVersion: "2", useBinaryFormat: true, sessionManager }));
  const request = create(InferRequestSchema, inferRequest(instanceId, storeEvent));
  return { infer: async () => messageOutcome(await client.infer(request)), close: () => sessionManager.abort() };
}

async function createInstance(port: number): Promise<string> {
  const baseUrl = `http://127.0.0.1:${port}`;
  const sessionManager = new Http2SessionManager(baseUrl);
  try {
    const models = createClient(ModelService, createConnectTransport({ baseUrl, httpVersion: "2", sessionManager }));
    const { instance } = await models.createInstance({ model: MODEL });
    return instance!.instanceId;
  } finally {
    sessionManager.abort();
  }
}

/** One gRPC call with exactly the bytes h2load will send. */
async function grpcOnce(port: number, framed: Buffer): Promise<Outcome> {
  const session = http2.connect(`http://127.0.0.1:${port}`);
  try {
    const stream = session.request({ ":method": "POST", ":path": INFER_PATH, "content-type": "application/grpc", te: "trailers" });
    let status: unknown;
    stream.on("response", (headers) => (status = headers["grpc-status"]));
    stream.on("trailers", (trailers) => (status = trailers["grpc-status"]));
    stream.end(framed);
    const chunks: Buffer[] = [];
    for await (const chunk of stream) chunks.push(chunk as Buffer);
    if (status !== "0") throw new Error(`gRPC check: grpc-status ${String(status)}`);
    return messageOutcome(fromBinary(InferResponseSchema, Buffer.concat(chunks).subarray(5)));
  } finally {
    session.close();
  }
}

/** One Connect JSON call over HTTP/1.1 with exactly the body wrk will send. */
function jsonOnce(port: number, body: string): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: "127.0.0.1", port, path: INFER_PATH, method: "POST", agent: false, headers: { "content-type": "application/json" } }, (res) =>
      readAll(res, (reply) => {
        if (res.statusCode !== 200) return reject(new Error(`JSON check: HTTP ${res.statusCode} ${reply.toString()}`));
        resolve(plainOutcome(JSON.parse(reply.toString()) as PlainInferResponse));
      }),
    );
    req.on("error", reject);
    req.end(body);
  });
}

// ---- Measurements ----------------------------------------------------------------------------------------

interface Measured {
  callsPerSecond: number;
  p50: number;
  p99: number;
  cpuMsPerCall: number;
  /** Failed calls by kind, e.g. "8 timeout"; "0" when none. A Node client stops the run at its first failure. */
  errors: string;
}

/** "0", or the non-zero counts with their kinds. */
const errorCounts = (counts: Record<string, number>) =>
  Object.entries(counts)
    .filter(([, n]) => n > 0)
    .map(([kind, n]) => `${n} ${kind}`)
    .join(", ") || "0";

const ascending = (a: number, b: number) => a - b;

/** `concurrency` callers in a closed loop, each sending its next call when the previous one is answered. */
async function closedLoop(caller: Caller, concurrency: number, seconds: number, latencies?: number[]): Promise<{ calls: number; elapsed: number }> {
  const started = performance.now();
  const end = started + seconds * 1000;
  let calls = 0;
  const worker = async () => {
    while (performance.now() < end) {
      const sent = performance.now();
      await caller.infer();
      latencies?.push(performance.now() - sent);
      calls++;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return { calls, elapsed: (performance.now() - started) / 1000 };
}

async function nodeClientCase(target: Target, caller: Caller, concurrency: number, stored: boolean, seconds: number, warmup: number): Promise<Measured> {
  try {
    expectAnswer(await caller.infer(), stored, "first reply");
    await closedLoop(caller, concurrency, warmup);
    const latencies: number[] = [];
    const cpu = target.cpuSeconds();
    const { calls, elapsed } = await closedLoop(caller, concurrency, seconds, latencies);
    const cpuSeconds = target.cpuSeconds() - cpu;
    latencies.sort(ascending);
    return { callsPerSecond: calls / elapsed, p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99), cpuMsPerCall: (cpuSeconds * 1000) / calls, errors: "0" };
  } finally {
    caller.close();
  }
}

const match = (text: string, pattern: RegExp, what: string): string => {
  const found = pattern.exec(text)?.[1];
  if (found === undefined) throw new Error(`no ${what} in:\n${text}`);
  return found;
};

// 64 streams in flight as 4 connections × 16 streams, the shape of the reference measurements. With
// `rate`, each of 8 connections offers rate/8 calls a second instead (up to 16 in flight each).
async function h2loadCase(target: Target, framedFile: string, logFile: string, seconds: number, warmup: number, rate?: number): Promise<Measured> {
  const shape = rate === undefined ? ["-c", "4", "-m", String(HIGH_CONCURRENCY / 4)] : ["-c", "8", "-m", "16", `--rps=${rate / 8}`];
  const args = (duration: number, extra: string[]) => [
    ...shape,
    ...["-D", String(duration), "-d", framedFile],
    ...["-H", "content-type: application/grpc", "-H", "te: trailers", ...extra, `http://127.0.0.1:${target.port}${INFER_PATH}`],
  ];
  await run("h2load", args(warmup, []));
  rmSync(logFile, { force: true });
  const cpu = target.cpuSeconds();
  const out = await run("h2load", args(seconds, ["--log-file", logFile]));
  const cpuSeconds = target.cpuSeconds() - cpu;
  const succeeded = Number(match(out, /(\d+) succeeded/, "succeeded count"));
  const errors = errorCounts(Object.fromEntries(["failed", "errored", "timeout"].map((kind) => [kind, Number(match(out, new RegExp(`(\\d+) ${kind}`), kind))])));
  // Columns: start time (µs since epoch), HTTP status, µs until the end of the response.
  const latencies = readFileSync(logFile, "utf8").trim().split("\n").map((line) => Number(line.split("\t")[2]) / 1000).sort(ascending);
  return {
    callsPerSecond: Number(match(out, /finished in [\d.]+m?s, ([\d.]+) req\/s/, "req/s")),
    p50: percentile(latencies, 0.5),
    p99: percentile(latencies, 0.99),
    cpuMsPerCall: (cpuSeconds * 1000) / succeeded,
    errors,
  };
}

const wrkMs = (text: string, label: string): number => {
  const [, value, unit] = new RegExp(`${label}\\s+([\\d.]+)(us|ms|s|m)\\b`).exec(text) ?? [];
  if (value === undefined) throw new Error(`no ${label} latency in:\n${text}`);
  return Number(value) * { us: 0.001, ms: 1, s: 1000, m: 60_000 }[unit as "us" | "ms" | "s" | "m"];
};

async function wrkCase(target: Target, script: string, concurrency: number, seconds: number, warmup: number): Promise<Measured> {
  const args = (duration: number) => ["-t1", `-c${concurrency}`, `-d${duration}s`, "--latency", "-s", script, `http://127.0.0.1:${target.port}${INFER_PATH}`];
  await run("wrk", args(Math.max(1, Math.round(warmup))));
  const cpu = target.cpuSeconds();
  const out = await run("wrk", args(seconds));
  const cpuSeconds = target.cpuSeconds() - cpu;
  const [connect = 0, read = 0, write = 0, timeout = 0] = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out)?.slice(1).map(Number) ?? [];
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
  const requests = Number(match(out, /(\d+) requests in/, "request count"));
  return {
    callsPerSecond: Number(match(out, /Requests\/sec:\s+([\d.]+)/, "Requests/sec")),
    p50: wrkMs(out, "50%"),
    p99: wrkMs(out, "99%"),
    cpuMsPerCall: (cpuSeconds * 1000) / (requests - non2xx),
    errors: errorCounts({ "non-2xx": non2xx, connect, read, write, timeout }),
  };
}

// ---- Cases -------------------------------------------------------------------------------------------------

type Server = "floor" | "posterior";

interface CaseRow {
  readonly group: string;
  readonly server: string;
  readonly stored: boolean | undefined;
  readonly concurrency: number;
  readonly measured: Measured;
  readonly floor?: Measured;
}

interface Group {
  readonly name: string;
  readonly floorName: string;
  readonly floor: Target;
  readonly concurrency: number;
  measure(target: Target, server: Server, instanceId: string, stored: boolean): Promise<Measured>;
}

function groups(floors: Record<FloorMode, Target>, temp: string, seconds: number, warmup: number): Group[] {
  const nodeClient = (makeCaller: typeof grpcJsCaller, concurrency: number) => (target: Target, _server: Server, instanceId: string, stored: boolean) =>
    nodeClientCase(target, makeCaller(target.port, instanceId, stored), concurrency, stored, seconds, warmup);
  return [
    ...[1, HIGH_CONCURRENCY].map((concurrency) => ({
      name: "gRPC, grpc-js client",
      floorName: "grpc-js floor",
      floor: floors["floor-grpc"],
      concurrency,
      measure: nodeClient(grpcJsCaller, concurrency),
    })),
    {
      name: "gRPC, h2load",
      floorName: "grpc-js floor",
      floor: floors["floor-grpc"],
      concurrency: HIGH_CONCURRENCY,
      measure: (target, server, instanceId, stored) => h2loadInfer(target, server, instanceId, stored, temp, seconds, warmup),
    },
    ...[1, HIGH_CONCURRENCY].map((concurrency) => ({
      name: "Connect JSON over HTTP/1.1, wrk",
      floorName: "node:http floor",
      floor: floors["floor-http"],
      concurrency,
      async measure(target: Target, server: Server, instanceId: string, stored: boolean) {
        const request = inferRequest(instanceId, stored);
        expectAnswer(await jsonOnce(target.port, JSON.stringify(request)), stored, `${server} wrk body`);
        return wrkCase(target, writeWrkScript(join(temp, "infer.lua"), request), concurrency, seconds, warmup);
      },
    })),
    ...[1, HIGH_CONCURRENCY].map((concurrency) => ({
      name: "Connect binary over HTTP/2, connect-node client",
      floorName: "node:http2 floor",
      floor: floors["floor-h2"],
      concurrency,
      measure: nodeClient(connectBinaryCaller, concurrency),
    })),
  ];
}

/** h2load sending one framed Infer request over and over: at saturation, or offering `rate` calls a second. */
async function h2loadInfer(target: Target, server: Server, instanceId: string, stored: boolean, temp: string, seconds: number, warmup: number, rate?: number) {
  const framed = grpcFrame(toBinary(InferRequestSchema, create(InferRequestSchema, inferRequest(instanceId, stored))));
  expectAnswer(await grpcOnce(target.port, framed), stored, `${server} h2load body`);
  const file = join(temp, "infer.grpc");
  writeFileSync(file, framed);
  return h2loadCase(target, file, join(temp, "h2load.log"), seconds, warmup, rate);
}

/** Posterior's main port and, for gRPC cases, its gRPC-only port (grpc-js) too. */
interface PosteriorPorts {
  readonly main: Target;
  readonly grpcOnly: Target;
}

async function runGroup(group: Group, posterior: PosteriorPorts): Promise<CaseRow[]> {
  const progress = (what: string) => process.stderr.write(`${group.name}, ${group.concurrency} in flight: ${what}\n`);
  progress(group.floorName);
  const floorMeasured = await group.measure(group.floor, "floor", "floor", false);
  const rows: CaseRow[] = [{ group: group.name, server: group.floorName, stored: undefined, concurrency: group.concurrency, measured: floorMeasured }];
  const ports: Array<[string, Target]> = [["Posterior", posterior.main]];
  if (group.name.startsWith("gRPC")) ports.push(["Posterior, gRPC-only port", posterior.grpcOnly]);
  for (const [server, target] of ports) {
    for (const stored of [false, true]) {
      progress(`${server}, store ${stored ? "on" : "off"}`);
      const instanceId = await createInstance(posterior.main.port);
      const measured = await group.measure(target, "posterior", instanceId, stored);
      rows.push({ group: group.name, server, stored, concurrency: group.concurrency, measured, floor: floorMeasured });
    }
  }
  return rows;
}

// ---- Report ------------------------------------------------------------------------------------------------

const ratio = (value: number, floor: number | undefined) => (floor === undefined ? "—" : `${(value / floor).toFixed(2)}×`);

function tableRow(r: CaseRow): (string | number)[] {
  const m = r.measured;
  return [
    r.group,
    r.server,
    r.stored === undefined ? "—" : r.stored ? "on" : "off",
    String(r.concurrency),
    m.callsPerSecond,
    m.p50,
    m.p99,
    m.cpuMsPerCall,
    ratio(m.cpuMsPerCall, r.floor?.cpuMsPerCall),
    ratio(m.callsPerSecond, r.floor?.callsPerSecond),
    m.errors,
  ];
}

function targetLines(rows: readonly CaseRow[]): string[] {
  const check = (title: string, pick: (r: CaseRow) => boolean, value: (m: Measured) => number, ok: (x: number) => boolean) => {
    const lines = rows
      .filter((r) => r.floor !== undefined && pick(r))
      .map((r) => {
        const x = value(r.measured) / value(r.floor!);
        return `  ${r.group}, ${r.server}, ${r.concurrency} in flight, store ${r.stored ? "on" : "off"}: ${x.toFixed(2)}× — ${ok(x) ? "met" : "NOT met"}`;
      });
    return lines.length > 0 ? [title, ...lines] : [];
  };
  const grpcRow = (r: CaseRow) => r.group.startsWith("gRPC");
  return [
    ...check("Target: gRPC server CPU per call ≤ 1.25× the grpc-js floor", grpcRow, (m) => m.cpuMsPerCall, (x) => x <= 1.25),
    ...check("Target: gRPC throughput ≥ 0.8× the grpc-js floor", grpcRow, (m) => m.callsPerSecond, (x) => x >= 0.8),
    ...check("Target: Connect JSON over HTTP/1.1 throughput ≥ 0.8× the node:http floor", (r) => r.group.startsWith("Connect JSON"), (m) => m.callsPerSecond, (x) => x >= 0.8),
  ];
}

/** The case groups each filter keeps. */
const ONLY = { json: "Connect JSON", grpc: "gRPC" } as const;

async function main(seconds: number, only: "durable" | keyof typeof ONLY | undefined) {
  const warmup = Math.min(2, seconds);
  const temp = mkdtempSync(join(tmpdir(), "posterior-serving-"));
  const started: Target[] = [];
  const track = async (target: Promise<Target>) => {
    const t = await target;
    started.push(t);
    return t;
  };
  try {
    const floors = {
      "floor-grpc": await track(startFloor("floor-grpc")),
      "floor-http": await track(startFloor("floor-http")),
      "floor-h2": await track(startFloor("floor-h2")),
    };
    const server = await startServer({ POSTERIOR_GRPC_PORT: "0" });
    started.push(server);
    const posterior = { main: server, grpcOnly: { ...server, port: server.grpcPort! } };
    console.log(machine());
    console.log(`${MODEL} unary Infer, ${warmup} s warm-up then ${seconds} s per case; client and server share this machine's cores`);
    console.log(`Posterior's access log: POSTERIOR_ACCESS_LOG=${process.env.POSTERIOR_ACCESS_LOG || "all"} (set it for this command to change it)`);
    const casesWanted = only !== "durable";
    const durableWanted = only === undefined || only === "durable";
    if (casesWanted) {
      const rows: CaseRow[] = [];
      for (const group of groups(floors, temp, seconds, warmup)) {
        if (only !== undefined && !group.name.startsWith(ONLY[only])) continue;
        rows.push(...(await runGroup(group, posterior)));
      }
      console.log();
      console.log(
        table(
          ["case", "server", "store", "in flight", "calls/s", "p50 ms", "p99 ms", "server CPU ms/call", "CPU × floor", "calls/s × floor", "errors"],
          rows.map(tableRow),
        ),
      );
      console.log();
      for (const line of targetLines(rows)) console.log(line);
    }
    if (!durableWanted) return;
    console.log(`\nDurable Infer (store on) offered at a fixed ${format(DURABLE_RATE)} calls/s by h2load (8 connections × ${DURABLE_RATE / 8}/s, up to 16 in flight each); target: the rate sustained with p99 ≤ 10 ms\n`);
    // The floor at the same offered rate shows what this machine and h2load allow before anything is stored.
    process.stderr.write(`durable Infer at ${DURABLE_RATE}/s: grpc-js floor\n`);
    const floor = await h2loadInfer(floors["floor-grpc"], "floor", "", false, temp, seconds, warmup, DURABLE_RATE);
    const durable: Array<Array<string | number>> = [
      ["grpc-js floor (stores nothing)", floor.callsPerSecond, floor.p50, floor.p99, floor.cpuMsPerCall, floor.errors, "(baseline)"],
    ];
    for (const [name, target] of [["Posterior, gRPC-only port", posterior.grpcOnly], ["Posterior", posterior.main]] as const) {
      process.stderr.write(`durable Infer at ${DURABLE_RATE}/s: ${name}\n`);
      const m = await h2loadInfer(target, "posterior", await createInstance(posterior.main.port), true, temp, seconds, warmup, DURABLE_RATE);
      const met = m.callsPerSecond >= 0.98 * DURABLE_RATE && m.p99 <= 10 && m.errors === "0";
      durable.push([name, m.callsPerSecond, m.p50, m.p99, m.cpuMsPerCall, m.errors, met ? "met" : "**missed**"]);
    }
    console.log(table(["server", "calls/s", "p50 ms", "p99 ms", "server CPU ms/call", "errors", "target"], durable));
  } finally {
    await Promise.all(started.map((t) => t.stop()));
    rmSync(temp, { recursive: true, force: true });
  }
}

const mode = process.argv[2];
if (mode === "floor-grpc") serveGrpcFloor();
else if (mode === "floor-http") serveHttpFloor();
else if (mode === "floor-h2") serveH2Floor();
else if (mode === "rung-proto-json") serveHttpRung(false);
else if (mode === "rung-access-log") serveHttpRung(true);
else {
  const seconds = Number(mode ?? 5);
  const only = process.argv[3];
  const known = (o: string | undefined): o is "durable" | keyof typeof ONLY | undefined => o === undefined || o === "durable" || o in ONLY;
  if (!(seconds > 0) || !known(only)) throw new Error("usage: node bench/serving.ts [seconds] [durable|json|grpc]");
  await main(seconds, only);
}
