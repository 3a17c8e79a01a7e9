// The bundled server that `npm start` runs (scripts/build.ts), built from the current sources and
// driven over both of its ports: chunks, the learner thread, the lazily loaded job queue, gRPC
// listener and special functions must all be found from dist/ as they are from src/, and no bundled
// library loaded a second time from node_modules.
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
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
let loadedModules: string;
let onPostgres = false;
beforeAll(async () => {
  // Inside the repository, so that the bundle resolves node_modules as dist/ does.
  const cache = join(root, "node_modules/.cache");
  mkdirSync(cache, { recursive: true });
  outdir = mkdtempSync(join(cache, "posterior-bundle-"));
  dataDir = mkdtempSync(join(cache, "posterior-bundle-data-"));
  loadedModules = join(outdir, "resolved-modules.txt");
  await buildServer(outdir);
  const database = await freshDatabaseConfig();
  onPostgres = Boolean(database.url);
  server = await startProcess(
    {
      POSTERIOR_DATA_DIR: dataDir,
      POSTERIOR_GRPC_PORT: "0",
      NODE_OPTIONS: `--import=${join(root, "test/support/record-modules.ts")}`,
      RECORD_MODULES: loadedModules,
      ...(database.url ? { DATABASE_URL: database.url } : {}),
    },
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

  // The bundle exists to load a few files instead of some 700 modules; a second copy of a bundled
  // library loaded from node_modules (as MikroORM's migrator once did) costs ~0.2 s of every start.
  it("loads from node_modules only what is meant to stay outside the bundle", () => {
    const urls = readFileSync(loadedModules, "utf8").split("\n");
    const bundle = pathToFileURL(outdir).href;
    expect(urls).toContain(`${bundle}/learner-thread.js`);
    const packages = new Set(
      urls.filter((url) => !url.startsWith(bundle)).flatMap((url) => /\/node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)?.[1] ?? []),
    );
    // PGlite is external (it finds its .wasm beside its modules), @stdlib's special functions are
    // required on first use (src/math/special.ts), and fdir, inside the bundle, requires picomatch.
    const outside = /^(@electric-sql\/pglite|@stdlib\/.*|picomatch)$/;
    expect([...packages].filter((name) => !outside.test(name))).toEqual([]);
    if (!onPostgres) expect(packages).toContain("@electric-sql/pglite");
  });
});
