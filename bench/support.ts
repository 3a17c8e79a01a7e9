// Shared by the benchmarks: a server process started as a user would, the floor servers, load tools,
// CPU time, percentiles and Markdown tables.
import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { join } from "node:path";

export interface BenchServer {
  readonly port: number;
  /** The gRPC-only port, when started with POSTERIOR_GRPC_PORT. */
  readonly grpcPort?: number;
  readonly pid: number;
  readonly child: ChildProcess;
  /** Milliseconds from spawn to the "posterior listening" log line. */
  readonly startMs: number;
  /** User + system CPU seconds the process has used so far. */
  cpuSeconds(): number;
  stop(): Promise<void>;
}

/**
 * Starts `node <entry…>` with `env` (an in-memory PGlite database unless told otherwise): the sources
 * by default, the bundle `npm start` runs (`dist/main.js`, built by scripts/build.ts), or a script and its arguments.
 */
export function startServer(env: Record<string, string> = {}, entry: string | readonly string[] = "src/main.ts"): Promise<BenchServer> {
  const started = performance.now();
  const child = spawn(process.execPath, [entry].flat(), {
    env: {
      ...process.env,
      POSTERIOR_PORT: "0",
      POSTERIOR_DATA_DIR: "memory://",
      LOG_LEVEL: "info",
      DATABASE_URL: process.env.DATABASE_URL ?? "",
      ...env,
    },
    stdio: ["ignore", "pipe", "inherit"],
  });
  return new Promise((resolve, reject) => {
    let output = "";
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      const port = /"port":(\d+)/.exec(output)?.[1];
      if (!port) return;
      const grpcPort = /"grpcPort":(\d+)/.exec(output)?.[1];
      child.stdout!.off("data", onData);
      child.stdout!.resume();
      resolve({
        port: Number(port),
        grpcPort: grpcPort ? Number(grpcPort) : undefined,
        pid: child.pid!,
        child,
        startMs: performance.now() - started,
        cpuSeconds: () => cpuSecondsOf(child.pid!),
        stop: () =>
          new Promise((done) => {
            if (child.exitCode !== null || child.signalCode !== null) return done();
            child.once("exit", () => done()).kill("SIGTERM");
          }),
      });
    };
    child.stdout!.on("data", onData);
    child.once("exit", (code) => reject(new Error(`server exited with ${code} before listening:\n${output}`)));
  });
}

/** User + system CPU seconds of a process, from /proc (Linux). */
export function cpuSecondsOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // utime and stime are fields 14 and 15 of stat(5), in clock ticks (100 per second on Linux).
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** CPU seconds of this process. */
export const ownCpuSeconds = () => {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1e6;
};

export const percentile = (sorted: readonly number[], p: number) =>
  sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;

export function table(headers: readonly string[], rows: ReadonlyArray<ReadonlyArray<string | number>>): string {
  const cell = (v: string | number) => (typeof v === "number" ? format(v) : v);
  return [
    `| ${headers.join(" | ")} |`,
    `|${headers.map(() => "---").join("|")}|`,
    ...rows.map((r) => `| ${r.map(cell).join(" | ")} |`),
  ].join("\n");
}

export function format(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  const abs = Math.abs(v);
  if (abs >= 1000) return Math.round(v).toLocaleString("en-US");
  if (abs >= 10) return v.toFixed(1);
  if (abs >= 0.1) return v.toFixed(2);
  return v.toPrecision(2);
}

export const machine = () =>
  `${cpus().length} × ${cpus()[0]?.model ?? "cpu"}, Node ${process.version}, ${process.env.DATABASE_URL ? "PostgreSQL" : "PGlite"}, ${new Date().toISOString()}`;

/** The minimal servers of bench/serving.ts: grpc-js, node:http (Connect JSON), node:http2 (Connect binary). */
export type FloorMode = "floor-grpc" | "floor-http" | "floor-h2";

/**
 * The node:http floor with one more of Posterior's pieces on each rung (bench/json-budget.ts):
 * proto3 JSON through Connect's serialization of the method, then a request id and an access-log line.
 */
export type RungMode = "rung-proto-json" | "rung-access-log";

export interface FloorServer {
  readonly port: number;
  cpuSeconds(): number;
  stop(): Promise<void>;
}

export function startFloor(mode: FloorMode | RungMode): Promise<FloorServer> {
  const child = spawn(process.execPath, [join(import.meta.dirname, "serving.ts"), mode], { stdio: ["ignore", "pipe", "inherit"] });
  return new Promise((resolve, reject) => {
    let output = "";
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      const port = /"port":(\d+)/.exec(output)?.[1];
      if (!port) return;
      // What follows (a rung's access log) is read and dropped, as for a Posterior server.
      child.stdout.off("data", onData);
      child.stdout.resume();
      resolve({ port: Number(port), cpuSeconds: () => cpuSecondsOf(child.pid!), stop: () => stopChild(child) });
    };
    child.stdout.on("data", onData);
    child.once("exit", (code) => reject(new Error(`${mode} exited with ${code} before listening:\n${output}`)));
  });
}

const stopChild = (child: ChildProcess) =>
  new Promise<void>((done) => {
    if (child.exitCode !== null || child.signalCode !== null) return done();
    child.once("exit", () => done()).kill("SIGTERM");
  });

/** A command's standard output, once it exits with 0. */
export function run(command: string, args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (c: Buffer) => (out += c.toString()));
    child.stderr.on("data", (c: Buffer) => (err += c.toString()));
    child.once("error", reject);
    child.once("close", (code) => (code === 0 ? resolve(out) : reject(new Error(`${command} exited with ${code}:\n${err}${out}`))));
  });
}

/** A message in its gRPC envelope (uncompressed), as h2load sends it. */
export function grpcFrame(message: Uint8Array): Buffer {
  const framed = Buffer.alloc(5 + message.length);
  framed.writeUInt32BE(message.length, 1);
  framed.set(message, 5);
  return framed;
}

/** A beta-bernoulli-v1 instance, created through Connect JSON; its id. */
export async function createBetaBernoulli(port: number): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${port}/posterior.v1.ModelService/CreateInstance`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: "beta-bernoulli-v1" }),
  });
  const { instance } = (await res.json()) as { instance: { instanceId: string } };
  return instance.instanceId;
}

/** The unary Infer request (y = 1) of the load tools. */
export const inferRequest = (instanceId: string, storeEvent: boolean) => ({ instanceId, observation: { y: { values: [1] } }, storeEvent });

/** Writes a wrk script that POSTs `request` as Connect JSON. */
export function writeWrkScript(file: string, request: object): string {
  writeFileSync(file, `wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nwrk.body = [[${JSON.stringify(request)}]]\n`);
  return file;
}

/** What a load tool's run did. */
export interface LoadCounts {
  readonly calls: number;
  readonly callsPerSecond: number;
  readonly failed: boolean;
}

export function wrkCounts(out: string): LoadCounts {
  const calls = Number(/(\d+) requests in/.exec(out)?.[1]);
  return { calls, callsPerSecond: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]), failed: /Non-2xx/.test(out) };
}

export interface RoundResult {
  readonly callsPerSecond: number;
  readonly cpuMicros: number;
}

/** One round of load on a server (1 s of warm-up, then 3 s): its calls/s and CPU per call. */
export async function loadRound(
  target: { readonly name: string; cpuSeconds(): number },
  load: (seconds: number) => Promise<string>,
  counts: (out: string) => LoadCounts,
): Promise<RoundResult> {
  await load(1);
  const cpu = target.cpuSeconds();
  const out = await load(3);
  const { calls, callsPerSecond, failed } = counts(out);
  if (!(calls > 0) || failed) throw new Error(`load against ${target.name} failed:\n${out}`);
  return { callsPerSecond, cpuMicros: ((target.cpuSeconds() - cpu) * 1e6) / calls };
}

export const median = (values: readonly number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
