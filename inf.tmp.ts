import { pino } from "pino";
import { openDatabase, MEMORY } from "/work/main/src/persistence/database.ts";
import { createServices } from "/work/main/src/server/app.ts";
const url = process.env.DATABASE_URL;
const db = await openDatabase(url ? { url, dataDir: MEMORY } : { dataDir: MEMORY });
const s = createServices(db, { inferBatchLimit: 100, learnConcurrency: 1, callbackAllow: [], callbackTimeoutMs: 1000 }, pino({ level: "silent" }));
const inst = await s.instances.create({ model: "beta-bernoulli-v1", description: "", arguments: {} } as never);
const id = (inst as { id: string }).id;
for (const store of [false, true]) {
  const input = { instanceId: id, observation: { y: { shape: [], values: [1] } }, goal: {}, episode: "", arguments: {}, storeEvent: store, runId: "" };
  for (let i = 0; i < 500; i++) await s.inference.infer(input);
  const n = 3000; const t = performance.now();
  for (let i = 0; i < n; i++) await s.inference.infer(input);
  const ms = (performance.now() - t) / n;
  const t2 = performance.now();
  await Promise.all(Array.from({ length: n }, () => s.inference.infer(input)));
  console.log(`store ${store}: sequential ${(ms * 1000).toFixed(0)} µs/call; ${n} concurrent: ${(n / ((performance.now() - t2) / 1000)).toFixed(0)} calls/s`);
}
await db.close();
