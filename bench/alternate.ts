// Two builds of Posterior against each other on unary Infer, with the floor server of the protocol beside them:
//   node bench/alternate.ts json|grpc <entry A> [entry B, default src/main.ts] [rounds, default 10] [in flight, 64 or 1] [store: off or on]
// e.g. A = the commit before a change: git worktree add /tmp/before HEAD~1 && ln -s "$PWD/node_modules" /tmp/before/
//      node bench/alternate.ts json /tmp/before/src/main.ts
// json: Connect JSON over HTTP/1.1 with wrk -t1 -c64 (-c1), against the node:http floor; grpc: gRPC on
// the main port with h2load -c4 -m16 (-c1 -m1), against the grpc-js floor. The three servers stay up; each round
// loads each in turn (1 s of warm-up, then 3 s), so that the machine's slow and quick spells fall on
// all three. On a noisy machine the pairwise comparison within a round is the figure to trust.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create, toBinary } from "@bufbuild/protobuf";
import { InferRequestSchema } from "../gen/posterior/v1/inference_service_pb.ts";
import {
  createBetaBernoulli,
  format,
  grpcFrame,
  inferRequest,
  type LoadCounts,
  loadRound,
  machine,
  median,
  type RoundResult,
  run,
  startFloor,
  startServer,
  table,
  wrkCounts,
  writeWrkScript,
} from "./support.ts";

const [protocol, entryA, entryB = "src/main.ts", roundsArg = "10", inFlightArg = "64", store = "off"] = process.argv.slice(2);
const rounds = Number(roundsArg);
const inFlight = Number(inFlightArg);
if ((protocol !== "json" && protocol !== "grpc") || !entryA || !(rounds > 0) || (inFlight !== 64 && inFlight !== 1) || (store !== "off" && store !== "on")) {
  throw new Error("usage: node bench/alternate.ts json|grpc <entry A> [entry B] [rounds] [in flight: 64 or 1] [store: off or on]");
}
const INFER = "/posterior.v1.InferenceService/Infer";

interface Target {
  readonly name: string;
  readonly port: number;
  /** The request body, in a file for the load tool. */
  readonly body: string;
  cpuSeconds(): number;
  stop(): Promise<void>;
}

async function floor(temp: string): Promise<Target> {
  const server = await startFloor(protocol === "json" ? "floor-http" : "floor-grpc");
  const name = protocol === "json" ? "node:http floor" : "grpc-js floor";
  return { ...server, name, body: requestFile(temp, "floor", "floor") };
}

async function posterior(temp: string, name: string, entry: string): Promise<Target> {
  const server = await startServer({}, entry);
  const instanceId = await createBetaBernoulli(server.port);
  return { name, port: server.port, body: requestFile(temp, name, instanceId), cpuSeconds: server.cpuSeconds, stop: server.stop };
}

/** A wrk script (json) or a framed gRPC message (grpc) with the Infer request. */
function requestFile(temp: string, name: string, instanceId: string): string {
  // The floor stores nothing either way.
  const request = inferRequest(instanceId, store === "on");
  const file = join(temp, name.replace(/\W/g, "-"));
  if (protocol === "json") return writeWrkScript(file, request);
  writeFileSync(file, grpcFrame(toBinary(InferRequestSchema, create(InferRequestSchema, request))));
  return file;
}

/** Calls and failures of an h2load run, from its output. */
function h2loadCounts(out: string): LoadCounts {
  const calls = Number(/(\d+) succeeded/.exec(out)?.[1]);
  return { calls, callsPerSecond: Number(/finished in [\d.]+m?s, ([\d.]+) req\/s/.exec(out)?.[1]), failed: !/ 0 failed, 0 errored/.test(out) };
}

function measure(target: Target) {
  const url = `http://127.0.0.1:${target.port}${INFER}`;
  if (protocol === "json") return loadRound(target, (seconds) => run("wrk", ["-t1", `-c${inFlight}`, `-d${seconds}s`, "-s", target.body, url]), wrkCounts);
  const load = (seconds: number) =>
    run("h2load", ["-c", inFlight === 1 ? "1" : "4", "-m", inFlight === 1 ? "1" : "16", "-D", String(seconds), "-d", target.body, "-H", "content-type: application/grpc", "-H", "te: trailers", url]);
  return loadRound(target, load, h2loadCounts);
}

const temp = mkdtempSync(join(tmpdir(), "posterior-alternate-"));
const targets: Target[] = [];
try {
  targets.push(await floor(temp), await posterior(temp, "A", entryA), await posterior(temp, "B", entryB));
  const rows: Array<Array<string | number>> = [];
  const results = targets.map(() => [] as RoundResult[]);
  for (let round = 1; round <= rounds; round++) {
    for (const [i, target] of targets.entries()) results[i]!.push(await measure(target));
    rows.push([String(round), ...results.flatMap((r) => [r.at(-1)!.callsPerSecond, r.at(-1)!.cpuMicros])]);
  }
  const [, a, b] = results as [unknown, typeof results[0], typeof results[0]];
  rows.push(["median", ...results.flatMap((r) => [median(r.map((m) => m.callsPerSecond)), median(r.map((m) => m.cpuMicros))])]);
  console.log(`${machine()}; ${protocol}, ${inFlight} in flight, store ${store}; A = ${entryA}, B = ${entryB}\n`);
  console.log(table(["round", ...targets.flatMap((t) => [`${t.name} calls/s`, `${t.name} CPU µs/call`])], rows));
  const faster = b.filter((m, i) => m.cpuMicros < a[i]!.cpuMicros).length;
  console.log(`\nB used less CPU per call than A in ${faster} of ${rounds} rounds; median ${format(median(a.map((m) => m.cpuMicros)))} → ${format(median(b.map((m) => m.cpuMicros)))} µs.`);
} finally {
  for (const target of targets) await target.stop();
  rmSync(temp, { recursive: true, force: true });
}
