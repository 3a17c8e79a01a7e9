// Two builds of Posterior against each other on unary Connect JSON Infer (store off), with the
// node:http floor beside them:
//   node bench/alternate-json.ts <entry A> [entry B, default src/main.ts] [rounds, default 10]
// e.g. A = the commit before a change: git worktree add /tmp/before HEAD~1 && ln -s "$PWD/node_modules" /tmp/before/
//      node bench/alternate-json.ts /tmp/before/src/main.ts
// The three servers stay up; each round runs wrk (-t1 -c64, 1 s of warm-up, then 3 s) against each in
// turn, so that the machine's slow and quick spells fall on all three. On a noisy machine the pairwise
// comparison within a round is the figure to trust.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cpuSecondsOf, format, machine, startServer, table } from "./support.ts";

const [entryA, entryB = "src/main.ts", roundsArg = "10"] = process.argv.slice(2);
if (!entryA) throw new Error("usage: node bench/alternate-json.ts <entry A> [entry B] [rounds]");
const rounds = Number(roundsArg);
const INFER = "/posterior.v1.InferenceService/Infer";

const output = (command: string, args: string[]) =>
  new Promise<string>((resolve, reject) => {
    const child = spawn(command, args, { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout.on("data", (chunk) => (out += chunk));
    child.on("error", reject);
    child.on("close", () => resolve(out));
  });

interface Target {
  readonly name: string;
  readonly port: number;
  readonly pid: number;
  readonly script: string;
  stop(): unknown;
}

async function floor(temp: string): Promise<Target> {
  const child = spawn(process.execPath, [join(import.meta.dirname, "serving.ts"), "floor-http"], { stdio: ["ignore", "pipe", "inherit"] });
  const port = await new Promise<number>((resolve) => {
    child.stdout.on("data", (chunk) => {
      const found = /"port":(\d+)/.exec(String(chunk));
      if (found) resolve(Number(found[1]));
    });
  });
  return { name: "node:http floor", port, pid: child.pid!, script: inferScript(temp, "floor", "floor"), stop: () => child.kill() };
}

async function posterior(temp: string, name: string, entry: string): Promise<Target> {
  const server = await startServer({}, entry);
  const res = await fetch(`http://127.0.0.1:${server.port}/posterior.v1.ModelService/CreateInstance`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: "beta-bernoulli-v1" }),
  });
  const { instance } = (await res.json()) as { instance: { instanceId: string } };
  return { name, port: server.port, pid: server.pid, script: inferScript(temp, name, instance.instanceId), stop: server.stop };
}

function inferScript(temp: string, name: string, instanceId: string): string {
  const body = JSON.stringify({ instanceId, observation: { y: { values: [1] } }, storeEvent: false });
  const file = join(temp, `${name.replace(/\W/g, "-")}.lua`);
  writeFileSync(file, `wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nwrk.body = [[${body}]]\n`);
  return file;
}

async function measure(target: Target): Promise<{ callsPerSecond: number; cpuMicros: number }> {
  const args = (seconds: number) => ["-t1", "-c64", `-d${seconds}s`, "-s", target.script, `http://127.0.0.1:${target.port}${INFER}`];
  await output("wrk", args(1));
  const cpu = cpuSecondsOf(target.pid);
  const out = await output("wrk", args(3));
  const calls = Number(/(\d+) requests in/.exec(out)?.[1]);
  if (!(calls > 0) || /Non-2xx/.test(out)) throw new Error(`wrk against ${target.name} failed:\n${out}`);
  return { callsPerSecond: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]), cpuMicros: ((cpuSecondsOf(target.pid) - cpu) * 1e6) / calls };
}

const median = (values: readonly number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

const temp = mkdtempSync(join(tmpdir(), "posterior-alternate-"));
const targets: Target[] = [];
try {
  targets.push(await floor(temp), await posterior(temp, "A", entryA), await posterior(temp, "B", entryB));
  const rows: Array<Array<string | number>> = [];
  const results = targets.map(() => [] as Array<{ callsPerSecond: number; cpuMicros: number }>);
  for (let round = 1; round <= rounds; round++) {
    for (const [i, target] of targets.entries()) results[i]!.push(await measure(target));
    rows.push([String(round), ...results.flatMap((r) => [r.at(-1)!.callsPerSecond, r.at(-1)!.cpuMicros])]);
  }
  const [, a, b] = results as [unknown, typeof results[0], typeof results[0]];
  rows.push(["median", ...results.flatMap((r) => [median(r.map((m) => m.callsPerSecond)), median(r.map((m) => m.cpuMicros))])]);
  console.log(`${machine()}; A = ${entryA}, B = ${entryB}\n`);
  console.log(table(["round", ...targets.flatMap((t) => [`${t.name} calls/s`, `${t.name} CPU µs/call`])], rows));
  const faster = b.filter((m, i) => m.cpuMicros < a[i]!.cpuMicros).length;
  console.log(`\nB used less CPU per call than A in ${faster} of ${rounds} rounds; median ${format(median(a.map((m) => m.cpuMicros)))} → ${format(median(b.map((m) => m.cpuMicros)))} µs.`);
} finally {
  for (const target of targets) await target.stop();
  rmSync(temp, { recursive: true, force: true });
}
