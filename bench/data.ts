// The data path through a real server process (connect-node gRPC clients in this process):
//   node bench/data.ts [ingest] [batch] [learn] [cold]      (default: all four; DATABASE_URL=… to store in PostgreSQL)
// - ingest: AttachEvents of 1 000-event batches into one episode, sequential and with 4 concurrent callers.
// - batch:  InferBatch of 100 rows, with and without storing the observations.
// - learn:  Learn with wait: true on 100 000 points (linear state space, AR(2)) and 1 000 000 events (Beta-Bernoulli).
// - cold:   spawn to the first successful Infer on an existing embedded data directory (always PGlite on disk),
//           for the bundle `npm start` runs (rebuilt first) and for the sources.
// Each of ingest, batch and learn starts its own server (PGlite in a new on-disk directory, as deployed by
// default, or DATABASE_URL). Every figure
// printed is measured in this run; the targets are the performance issue's.
import { mkdtempSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { type Timestamp, timestampMs } from "@bufbuild/protobuf/wkt";
import { type Client, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { InferenceService } from "../gen/posterior/v1/inference_service_pb.ts";
import { LearningService, type Run, RunStatus } from "../gen/posterior/v1/learning_service_pb.ts";
import { ModelService } from "../gen/posterior/v1/model_service_pb.ts";
import { buildServer } from "../scripts/build.ts";
import { Random } from "../src/math/random.ts";
import { type BenchServer, format, machine, percentile, startServer, table } from "./support.ts";

const SECTIONS = ["ingest", "batch", "learn", "cold"] as const;
type Section = (typeof SECTIONS)[number];

const INGEST_TARGET = 50_000; // events/s
const LEARN_TARGET_S = 2;
const COLD_TARGET_MS = 1500;
const ATTACH_MAX = 10_000; // the server's limit per AttachEvents call
const WARMUP_MS = 2000;
const CPU_NOTE = process.env.DATABASE_URL
  ? "Server CPU is the posterior process's only (all its threads); PostgreSQL's own processes are not counted."
  : "Server CPU is the posterior process's (all its threads), which includes the embedded PGlite database.";

interface Clients {
  models: Client<typeof ModelService>;
  inference: Client<typeof InferenceService>;
  learning: Client<typeof LearningService>;
}

const clientsFor = (port: number): Clients => {
  const transport = createGrpcTransport({ baseUrl: `http://127.0.0.1:${port}` });
  return {
    models: createClient(ModelService, transport),
    inference: createClient(InferenceService, transport),
    learning: createClient(LearningService, transport),
  };
};

// ---- Process and temp-dir bookkeeping: everything started is stopped, everything created is removed ----

const servers = new Set<BenchServer>();
/** Servers spawned but not yet listening: cleanup waits for them, then stops them. */
const starting = new Set<Promise<BenchServer>>();
const tempDirs = new Set<string>();
let interrupted = false;

/** As deployed: DATABASE_URL when set, otherwise the embedded database in a new on-disk directory. */
function storage(): Record<string, string> {
  if (process.env.DATABASE_URL) return {};
  const dir = mkdtempSync(join(tmpdir(), "posterior-bench-data-"));
  tempDirs.add(dir);
  return { POSTERIOR_DATA_DIR: dir };
}

async function launch(env: Record<string, string> = {}, entry?: string): Promise<BenchServer> {
  if (interrupted) throw new Error("interrupted");
  const pending = startServer(env, entry);
  starting.add(pending);
  try {
    const server = await pending;
    servers.add(server);
    return server;
  } finally {
    starting.delete(pending);
  }
}

/** SIGTERM, then SIGKILL if the process has not exited within 20 s. */
async function stop(server: BenchServer): Promise<void> {
  servers.delete(server);
  let timer: NodeJS.Timeout | undefined;
  const killed = new Promise<void>((resolve) => {
    timer = setTimeout(() => {
      server.child.kill("SIGKILL");
      resolve();
    }, 20_000);
  });
  await Promise.race([server.stop(), killed]);
  clearTimeout(timer);
}

async function cleanup(): Promise<void> {
  for (const started of await Promise.allSettled([...starting])) if (started.status === "fulfilled") servers.add(started.value);
  await Promise.allSettled([...servers].map(stop));
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  tempDirs.clear();
}

// ---- Helpers ------------------------------------------------------------------------------------

const seconds = (ms: number) => ms / 1000;
const verdict = (met: boolean) => (met ? "**met**" : "**missed**");
const ms = (t: Timestamp | undefined) => (t ? timestampMs(t) : NaN);
const y = (...values: number[]) => ({ y: { values } });

/** A beta-bernoulli event batch of `n` outcomes from a seeded generator. */
function bernoulliBatch(random: Random, n: number) {
  return Array.from({ length: n }, () => ({ data: y(random.nextDouble() < 0.3 ? 1 : 0) }));
}

async function attachAll(c: Clients, instanceId: string, events: ReadonlyArray<{ data: Record<string, { values: number[] }> }>) {
  for (let start = 0; start < events.length; start += ATTACH_MAX) {
    await c.models.attachEvents({ instanceId, events: events.slice(start, start + ATTACH_MAX) });
  }
}

async function eventCount(c: Clients, instanceId: string): Promise<number> {
  return Number((await c.models.getEpisode({ instanceId, name: "default" })).episode!.eventCount);
}

// ---- 1. AttachEvents ingest ---------------------------------------------------------------------

async function ingest(): Promise<void> {
  const server = await launch(storage());
  try {
    const c = clientsFor(server.port);
    const random = new Random(1);
    const batches = Array.from({ length: 8 }, () => bernoulliBatch(random, 1000));
    const batchSize = 1000;
    const total = 100_000;
    const rows: Array<Array<string | number>> = [];
    for (const callers of [1, 4]) {
      const { instance } = await c.models.createInstance({ model: "beta-bernoulli-v1" });
      const instanceId = instance!.instanceId;
      // Warm-up (not counted), as the serving benchmarks: 2 s of sequential calls, so that the server's
      // code is compiled before it is measured (cold start has a target of its own).
      let warmups = 0;
      for (const until = performance.now() + WARMUP_MS; performance.now() < until; warmups++) {
        await c.models.attachEvents({ instanceId, events: batches[warmups % batches.length]! });
      }
      const latencies: number[] = [];
      const perCaller = total / batchSize / callers;
      const cpu0 = server.cpuSeconds();
      const t0 = performance.now();
      await Promise.all(
        Array.from({ length: callers }, async (_, caller) => {
          for (let i = 0; i < perCaller; i++) {
            const started = performance.now();
            await c.models.attachEvents({ instanceId, events: batches[(caller + i) % batches.length]! });
            latencies.push(performance.now() - started);
          }
        }),
      );
      const elapsed = performance.now() - t0;
      const cpu = server.cpuSeconds() - cpu0;
      const stored = await eventCount(c, instanceId);
      const expected = total + warmups * batchSize;
      if (stored !== expected) throw new Error(`ingest: expected ${expected} events stored, found ${stored}`);
      latencies.sort((a, b) => a - b);
      const rate = total / seconds(elapsed);
      rows.push([
        callers === 1 ? "sequential" : `${callers} concurrent callers`,
        total,
        seconds(elapsed),
        rate,
        percentile(latencies, 0.5),
        percentile(latencies, 0.99),
        cpu,
        `${verdict(rate >= INGEST_TARGET)} (${format(rate)} vs ≥ ${format(INGEST_TARGET)})`,
      ]);
    }
    console.log("\n### AttachEvents ingest (beta-bernoulli-v1, 1 000 events per call, one episode)\n");
    console.log(table(["case", "events", "seconds", "events/s", "call p50 (ms)", "call p99 (ms)", "server CPU (s)", "target ≥ 50 000 events/s"], rows));
    console.log(`\nAfter ${format(WARMUP_MS / 1000)} s of warm-up calls (not counted); the stored event count was checked afterwards. ${CPU_NOTE}`);
  } finally {
    await stop(server);
  }
}

// ---- 2. InferBatch ------------------------------------------------------------------------------

async function batch(): Promise<void> {
  const server = await launch(storage());
  try {
    const c = clientsFor(server.port);
    const rowsPerCall = 100;
    const runFor = 5000; // ms per case, after warm-up
    const out: Array<Array<string | number>> = [];
    for (const storeEvent of [false, true]) {
      const { instance } = await c.models.createInstance({ model: "beta-bernoulli-v1" });
      const instanceId = instance!.instanceId;
      const random = new Random(2);
      const requests = Array.from({ length: rowsPerCall }, () => ({
        instanceId,
        observation: y(random.nextDouble() < 0.3 ? 1 : 0),
        storeEvent,
      }));
      const call = async () => {
        const { results } = await c.inference.inferBatch({ requests });
        const failed = results.find((r) => r.result.case !== "response");
        if (results.length !== rowsPerCall || failed) throw new Error(`InferBatch row failed: ${JSON.stringify(failed?.result.value)}`);
      };
      for (let i = 0; i < 20; i++) await call(); // warm-up, not counted
      const latencies: number[] = [];
      const cpu0 = server.cpuSeconds();
      const t0 = performance.now();
      while (performance.now() - t0 < runFor) {
        const started = performance.now();
        await call();
        latencies.push(performance.now() - started);
      }
      const elapsed = performance.now() - t0;
      const cpu = server.cpuSeconds() - cpu0;
      latencies.sort((a, b) => a - b);
      out.push([
        String(storeEvent),
        String(latencies.length),
        latencies.length / seconds(elapsed),
        (latencies.length * rowsPerCall) / seconds(elapsed),
        percentile(latencies, 0.5),
        percentile(latencies, 0.99),
        cpu / latencies.length * 1000,
      ]);
      if (storeEvent) {
        const stored = await eventCount(c, instanceId);
        if (stored !== (latencies.length + 20) * rowsPerCall) throw new Error(`batch: expected ${(latencies.length + 20) * rowsPerCall} events, found ${stored}`);
      }
    }
    console.log("\n### InferBatch (beta-bernoulli-v1, 100 rows per call, concurrency 1)\n");
    console.log(table(["store_event", "calls", "calls/s", "rows/s", "p50 (ms)", "p99 (ms)", "server CPU per call (ms)"], out));
    console.log(`\n${format(runFor / 1000)} s per case after 20 warm-up calls (not counted). ${CPU_NOTE}`);
  } finally {
    await stop(server);
  }
}

// ---- 3. Learning through the API ----------------------------------------------------------------

interface LearnCase {
  label: string;
  model: string;
  events: () => Array<{ data: Record<string, { values: number[] }> }>;
  /** A line saying what was learned, from the instance's parameters afterwards. */
  check?: (c: Clients, instanceId: string) => Promise<string>;
}

/** A noisy rotation: x_{t+1} = R(0.1) x_t + N(0, 0.01² I), y_t = x_t + N(0, 0.05² I). */
function rotation(n: number) {
  const random = new Random(3);
  const [cos, sin] = [Math.cos(0.1), Math.sin(0.1)];
  let [a, b] = [1, 0];
  return Array.from({ length: n }, () => {
    [a, b] = [cos * a - sin * b + 0.01 * random.normal(), sin * a + cos * b + 0.01 * random.normal()];
    return { data: y(a + 0.05 * random.normal(), b + 0.05 * random.normal()) };
  });
}

const AR = [0.6, -0.3];
/** AR(2): y_t = 0.6 y_{t−1} − 0.3 y_{t−2} + N(0, 0.5²). */
function ar2(n: number) {
  const random = new Random(4);
  let [y1, y2] = [0, 0];
  return Array.from({ length: n }, () => {
    const next = AR[0]! * y1 + AR[1]! * y2 + 0.5 * random.normal();
    [y1, y2] = [next, y1];
    return { data: y(next) };
  });
}

/** Runs `fn`, naming `label` in any error it throws. */
async function step<T>(label: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (error) {
    throw new Error(`${label}: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  }
}

const statusName = (status: RunStatus | undefined) => Object.entries(RunStatus).find(([, v]) => v === status)?.[0] ?? String(status);

/**
 * When a WatchRun client first saw the run's snapshot read (progress.data_points set), by Date.now(),
 * the clock the server stamps runs with. The learner's own progress is not used: its last report and
 * the commit come too close together for a watcher to tell them apart.
 */
interface Phases {
  snapshotRead?: number;
}

/** Finds the run Learn created (ListRuns) and watches it, noting when each phase was first seen. */
async function watchPhases(c: Clients, instanceId: string, signal: AbortSignal): Promise<Phases> {
  const phases: Phases = {};
  try {
    let runId = "";
    while (!runId) {
      runId = (await c.learning.listRuns({ instanceId, pageSize: 1 }, { signal })).runs[0]?.runId ?? "";
      if (!runId) await new Promise((r) => setTimeout(r, 10));
    }
    for await (const { run } of c.learning.watchRun({ runId }, { signal })) {
      const p = run?.progress;
      if (phases.snapshotRead === undefined && p && p.dataPoints > 0n) phases.snapshotRead = Date.now();
    }
  } catch {
    // Aborted once Learn has answered: what was seen stays.
  }
  return phases;
}

async function learnOnce(c: Clients, instanceId: string) {
  const watching = new AbortController();
  const phasesSeen = watchPhases(c, instanceId, watching.signal);
  const t0 = performance.now();
  const { run } = await c.learning.learn({ instanceId, wait: true });
  const wall = performance.now() - t0;
  setTimeout(() => watching.abort(), 1000);
  const phases = await phasesSeen;
  if (!run || run.status !== RunStatus.SUCCEEDED) throw new Error(`learn on ${instanceId} did not succeed: ${statusName(run?.status)} ${run?.error ?? ""}`);
  return { run, wall, phases };
}

const queueMs = (run: Run) => ms(run.startTime) - ms(run.createTime);

/** "read / learn + commit" seconds: the run's start time → the snapshot seen read → the run's end time. */
function phaseColumn(run: Run, phases: Phases): string {
  if (phases.snapshotRead === undefined) return "–";
  return `${format(seconds(phases.snapshotRead - ms(run.startTime)))} / ${format(seconds(ms(run.endTime) - phases.snapshotRead))}`;
}

async function learn(): Promise<void> {
  const server = await launch(storage());
  try {
    const c = clientsFor(server.port);
    const cases: LearnCase[] = [
      { label: "linear-state-space-model-v1, 100 000 points", model: "linear-state-space-model-v1", events: () => rotation(100_000) },
      {
        label: "autoregressive-v1 (order 2), 100 000 points",
        model: "autoregressive-v1",
        events: () => ar2(100_000),
        check: async (cc, instanceId) => {
          const theta = (await cc.models.getParameters({ instanceId })).parameters.theta?.kind;
          const mean = theta?.case === "mvNormal" ? theta.value.mean.map((v) => v.toFixed(3)).join(", ") : "?";
          return `AR(2) coefficients learned [${mean}], simulated with [${AR.join(", ")}]`;
        },
      },
      {
        label: "beta-bernoulli-v1, 1 000 000 events",
        model: "beta-bernoulli-v1",
        events: () => {
          const random = new Random(5);
          return bernoulliBatch(random, 1_000_000);
        },
        check: async (cc, instanceId) => {
          const p = (await cc.models.getParameters({ instanceId })).parameters.p?.kind;
          return p?.case === "beta" ? `Beta-Bernoulli posterior Beta(${p.value.alpha}, ${p.value.beta}) (prior Beta(1, 1), simulated p = 0.3)` : "?";
        },
      },
    ];

    // The process's first learn starts the learner thread: measured and shown separately.
    const { instance: first } = await c.models.createInstance({ model: "beta-bernoulli-v1" });
    await attachAll(c, first!.instanceId, bernoulliBatch(new Random(6), 10));
    const warm = await step("first learn", () => learnOnce(c, first!.instanceId));

    const rows: Array<Array<string | number>> = [
      [
        "first learn in the process: beta-bernoulli-v1, 10 events",
        String(warm.run.metrics?.dataPoints ?? 0n),
        "",
        seconds(warm.wall),
        warm.run.metrics?.durationSeconds ?? NaN,
        seconds(queueMs(warm.run)),
        phaseColumn(warm.run, warm.phases),
        String(warm.run.metrics?.iterations ?? 0),
        10 / seconds(warm.wall),
        "(not a target case)",
      ],
    ];
    const notes: string[] = [];
    for (const k of cases) {
      const { instance } = await c.models.createInstance({ model: k.model });
      const instanceId = instance!.instanceId;
      const events = k.events();
      const a0 = performance.now();
      await step(`${k.label}: attaching`, () => attachAll(c, instanceId, events));
      const attach = performance.now() - a0;
      const stored = await eventCount(c, instanceId);
      if (stored !== events.length) throw new Error(`learn: expected ${events.length} events stored, found ${stored}`);
      const cpu0 = server.cpuSeconds();
      const { run, wall, phases } = await step(`${k.label}: learning`, () => learnOnce(c, instanceId));
      const cpu = server.cpuSeconds() - cpu0;
      const wallS = seconds(wall);
      rows.push([
        k.label,
        String(run.metrics?.dataPoints ?? 0n),
        `${format(seconds(attach))} s (${format(events.length / seconds(attach))}/s)`,
        wallS,
        run.metrics?.durationSeconds ?? NaN,
        seconds(queueMs(run)),
        phaseColumn(run, phases),
        String(run.metrics?.iterations ?? 0),
        events.length / wallS,
        `${verdict(wallS <= LEARN_TARGET_S)} (${format(wallS)} s vs ≤ ${LEARN_TARGET_S} s)`,
      ]);
      notes.push(`${k.label}: server CPU ${format(cpu)} s during the learn`);
      if (k.check) notes.push(await k.check(c, instanceId));
    }
    console.log("\n### Learning through the API (Learn with wait: true, default arguments)\n");
    console.log(
      table(
        ["case", "metrics.data_points", "attach before (10 000/call)", "client wall (s)", "run durationSeconds (s)", "queued (s)", "read / learn + commit (s)", "iterations", "points/s (events ÷ client wall)", "target ≤ 2 s (client wall)"],
        rows,
      ),
    );
    console.log(
      "\nclient wall: from sending Learn to its answer. durationSeconds: the run's own figure, start (claimed by the worker) to commit. " +
        "queued: run create → start times. read / learn + commit: from the run's start time to a WatchRun client (this process) seeing " +
        "the snapshot's data points, and from then to the run's end time; the boundary is seen late by however long the update takes to reach " +
        "the watcher (more while the server's main thread is busy, e.g. handing the events to the learner thread). " +
        `The attach time is not part of the learn. ${CPU_NOTE}`,
    );
    for (const n of notes) console.log(`- ${n}`);
  } finally {
    await stop(server);
  }
}

// ---- 4. Cold start ------------------------------------------------------------------------------

/** What `npm start` runs (rebuilt from the current sources first) and what `npm run dev` runs. */
const ENTRIES = [
  { name: "npm start (dist/main.js, bundled)", entry: "dist/main.js" },
  { name: "npm run dev (src/main.ts)", entry: "src/main.ts" },
];

async function cold(): Promise<void> {
  await buildServer(join(import.meta.dirname, "../dist"));
  const dir = mkdtempSync(join(tmpdir(), "posterior-bench-cold-"));
  tempDirs.add(dir);
  const env = { POSTERIOR_DATA_DIR: dir, DATABASE_URL: "" };
  const creator = await launch(env, ENTRIES[0]!.entry);
  let instanceId: string;
  try {
    const c = clientsFor(creator.port);
    instanceId = (await c.models.createInstance({ model: "beta-bernoulli-v1" })).instance!.instanceId;
    await c.inference.infer({ instanceId, observation: y(1) });
  } finally {
    await stop(creator);
  }
  const rows: Array<Array<string | number>> = [[`${ENTRIES[0]!.name}, first start (creates the database)`, creator.startMs, "", "", "(setup)"]];
  // Alternating entries, so that both see the same machine.
  for (let i = 1; i <= 3; i++) {
    for (const { name, entry } of ENTRIES) {
      const t0 = performance.now();
      const server = await launch(env, entry);
      try {
        const c = clientsFor(server.port);
        let attempts = 0;
        for (;;) {
          attempts++;
          try {
            await c.inference.infer({ instanceId, observation: y(1) });
            break;
          } catch (error) {
            if (performance.now() - t0 > 60_000) throw error;
            await new Promise((r) => setTimeout(r, 5));
          }
        }
        const firstInfer = performance.now() - t0;
        rows.push([
          `${name}, restart ${i}`,
          server.startMs,
          firstInfer,
          String(attempts),
          `${verdict(firstInfer <= COLD_TARGET_MS)} (${format(firstInfer)} ms vs ≤ ${format(COLD_TARGET_MS)} ms)`,
        ]);
      } finally {
        await stop(server);
      }
    }
  }
  console.log("\n### Cold start on an existing embedded data directory (PGlite on disk)\n");
  console.log(table(["start", "spawn → \"posterior listening\" (ms)", "spawn → first Infer answer (ms)", "Infer attempts", "target ≤ 1 500 ms"], rows));
  console.log(
    "\nThe Infer stores its observation (store_event default true), on a connection opened after the port was logged." +
      (process.env.DATABASE_URL ? " DATABASE_URL is set but ignored here: this case always uses an on-disk embedded PGlite directory." : ""),
  );
}

// ---- Main ---------------------------------------------------------------------------------------

const requested = process.argv.slice(2);
const unknown = requested.filter((s) => !(SECTIONS as readonly string[]).includes(s));
if (unknown.length > 0) {
  console.error(`unknown section(s): ${unknown.join(", ")}; choose from ${SECTIONS.join(", ")}`);
  process.exit(2);
}
const chosen: Section[] = requested.length === 0 ? [...SECTIONS] : SECTIONS.filter((s) => requested.includes(s));
const run: Record<Section, () => Promise<void>> = { ingest, batch, learn, cold };

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    interrupted = true;
    console.error(`${signal}: stopping the servers`);
    void cleanup().finally(() => process.exit(130));
  });
}

const load = () => loadavg().map((l) => l.toFixed(2)).join(", ");
console.log(`${machine()}; sections: ${chosen.join(", ")}; load average at start ${load()}`);
const began = performance.now();
try {
  for (const section of chosen) await run[section]();
  console.log(`\nTotal bench time ${format(seconds(performance.now() - began))} s; load average at the end ${load()} (other processes on the machine count too).`);
} catch (error) {
  if (!interrupted) console.error(error);
  process.exitCode = 1;
} finally {
  await cleanup();
}
