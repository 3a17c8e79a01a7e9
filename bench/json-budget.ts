// Where Connect JSON's budget goes: the node:http floor, the same floor with Posterior's pieces added
// one rung at a time, and Posterior, loaded in turn in each round by wrk (Connect JSON over HTTP/1.1,
// unary Infer on beta-bernoulli-v1, store off):
//   node bench/json-budget.ts [rounds, default 5] [in flight, default 64]
// Rungs (bench/serving.ts): proto3 JSON through Connect's serialization of the method; then also a
// request id and an access-log line (Posterior's `beginCall` and logger).
// Posterior runs with this command's environment (POSTERIOR_ACCESS_LOG=failures drops the line).
// Ratios are taken within each round, to the floor of that round; the table gives their medians.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  createBetaBernoulli,
  type FloorServer,
  inferRequest,
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

const [roundsArg = "5", inFlightArg = "64"] = process.argv.slice(2);
const rounds = Number(roundsArg);
const inFlight = Number(inFlightArg);
if (!(Number.isInteger(rounds) && rounds > 0) || !(Number.isInteger(inFlight) && inFlight > 0)) {
  throw new Error("usage: node bench/json-budget.ts [rounds] [in flight]");
}
const INFER = "/posterior.v1.InferenceService/Infer";

interface Target extends FloorServer {
  readonly name: string;
  /** A wrk script that sends the Infer request. */
  readonly script: string;
}

const wrkScript = (temp: string, name: string, instanceId: string) => writeWrkScript(join(temp, name.replace(/\W/g, "-")), inferRequest(instanceId, false));

async function posterior(temp: string): Promise<Target> {
  const server = await startServer();
  return { ...server, name: "Posterior", script: wrkScript(temp, "posterior", await createBetaBernoulli(server.port)) };
}

const measure = (target: Target) =>
  loadRound(target, (seconds) => run("wrk", ["-t1", `-c${inFlight}`, `-d${seconds}s`, "-s", target.script, `http://127.0.0.1:${target.port}${INFER}`]), wrkCounts);

const temp = mkdtempSync(join(tmpdir(), "posterior-json-budget-"));
const targets: Target[] = [];
try {
  const floor = async (mode: Parameters<typeof startFloor>[0], name: string): Promise<Target> => ({
    ...(await startFloor(mode)),
    name,
    script: wrkScript(temp, name, "floor"),
  });
  targets.push(
    await floor("floor-http", "node:http floor"),
    await floor("rung-proto-json", "+ proto3 JSON (protobuf-es)"),
    await floor("rung-access-log", "+ request id and access-log line"),
    await posterior(temp),
  );
  const results = targets.map(() => [] as RoundResult[]);
  for (let round = 1; round <= rounds; round++) {
    process.stderr.write(`round ${round} of ${rounds}\n`);
    for (const [i, target] of targets.entries()) results[i]!.push(await measure(target));
  }
  const floorResults = results[0]!;
  const ratiosTo = (i: number, pick: (m: RoundResult) => number) =>
    results[i]!.map((m, k) => pick(m) / pick(floorResults[k]!));
  const summary = (ratios: readonly number[]) => `${median(ratios).toFixed(2)}× (${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)})`;
  const rows = targets.map((target, i) => [
    target.name,
    median(results[i]!.map((m) => m.callsPerSecond)),
    median(results[i]!.map((m) => m.cpuMicros)),
    i === 0 ? "—" : summary(ratiosTo(i, (m) => m.cpuMicros)),
    i === 0 ? "—" : summary(ratiosTo(i, (m) => m.callsPerSecond)),
  ]);
  console.log(`${machine()}; Connect JSON over HTTP/1.1, wrk -c${inFlight}, ${rounds} rounds of 3 s per server; POSTERIOR_ACCESS_LOG=${process.env.POSTERIOR_ACCESS_LOG || "all"}\n`);
  console.log(table(["server", "calls/s (median)", "CPU µs/call (median)", "CPU × floor (median, range)", "calls/s × floor (median, range)"], rows));
  const posteriorRate = median(ratiosTo(targets.length - 1, (m) => m.callsPerSecond));
  console.log(`\nTarget: Posterior's calls/s ≥ 0.8× the floor's: ${posteriorRate.toFixed(2)}× — ${posteriorRate >= 0.8 ? "met" : "NOT met"}`);
} finally {
  for (const target of targets) await target.stop();
  rmSync(temp, { recursive: true, force: true });
}
