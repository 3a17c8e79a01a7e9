// The bundled server that `npm start` runs (scripts/build.ts), built from the current sources and
// driven over both of its ports: chunks, the learner thread, the lazily loaded job queue, gRPC
// listener and special functions must all be found from dist/ as they are from src/.
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildServer } from "../../scripts/build.ts";
import { freshDatabaseConfig } from "../support/database.ts";
import { clientsFor, tensor } from "../support/harness.ts";
import { processClients, type ServerProcess, startProcess, stopProcess } from "../support/process.ts";

const root = join(import.meta.dirname, "../..");
let outdir: string;
let dataDir: string;
let server: ServerProcess;
beforeAll(async () => {
  // Inside the repository, so that the bundle resolves node_modules as dist/ does.
  const cache = join(root, "node_modules/.cache");
  mkdirSync(cache, { recursive: true });
  outdir = mkdtempSync(join(cache, "posterior-bundle-"));
  dataDir = mkdtempSync(join(cache, "posterior-bundle-data-"));
  await buildServer(outdir);
  const database = await freshDatabaseConfig();
  server = await startProcess(
    { POSTERIOR_DATA_DIR: dataDir, POSTERIOR_GRPC_PORT: "0", ...(database.url ? { DATABASE_URL: database.url } : {}) },
    join(outdir, "main.js"),
  );
}, 120_000);
afterAll(async () => {
  if (server) expect(await stopProcess(server)).toBe(0);
  for (const dir of [outdir, dataDir]) if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("the bundled server", () => {
  it("infers, learns on its learner thread and answers on the gRPC-only port", { timeout: 120_000 }, async () => {
    const c = processClients(server);
    const { instance } = await c.models.createInstance({ model: "beta-bernoulli-v1" });
    const instanceId = instance!.instanceId;
    const inferred = await c.inference.infer({ instanceId, observation: { y: tensor(1) } });
    expect(inferred.posteriors.p?.kind).toMatchObject({ case: "beta", value: { alpha: 2, beta: 1 } });
    await c.models.attachEvents({ instanceId, events: [{ data: { y: tensor(0) } }, { data: { y: tensor(0) } }] });

    const { run } = await c.learning.learn({ instanceId, wait: true });
    expect(run?.metrics?.dataPoints).toBe(3n);
    expect(run?.worker).toMatch(/:\d+$/);
    const { parameters } = await c.models.getParameters({ instanceId });
    expect(parameters.p?.kind).toMatchObject({ case: "beta", value: { alpha: 2, beta: 3 } });

    expect(server.grpcPort).toBeGreaterThan(0);
    const grpc = clientsFor(createGrpcTransport({ baseUrl: `http://127.0.0.1:${server.grpcPort}` }));
    const again = await grpc.inference.infer({ instanceId, observation: { y: tensor(1) }, storeEvent: false });
    expect(again.posteriors.p?.kind).toMatchObject({ case: "beta", value: { alpha: 3, beta: 3 } });
    expect(again.parametersVersion).toBe(1);
  });
});
