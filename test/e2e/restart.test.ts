// The real process: started from the command line, stopped by a signal, started again.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freshDatabaseConfig, usingPostgres } from "../support/database.ts";
import { tensor } from "../support/harness.ts";
import { processClients, startProcess, stopProcess } from "../support/process.ts";

let env: Record<string, string>;
let dataDir: string;
beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), "posterior-restart-"));
  const database = await freshDatabaseConfig();
  env = { POSTERIOR_DATA_DIR: dataDir, ...(database.url ? { DATABASE_URL: database.url } : {}) };
});
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

describe("persistence across a restart", () => {
  it("keeps instances, events and learned parameters", { timeout: 120_000 }, async () => {
    const first = await startProcess(env);
    const c = processClients(first);
    const { instance } = await c.models.createInstance({ model: "beta-bernoulli-v1", description: "survives" });
    const instanceId = instance!.instanceId;
    await c.inference.infer({ instanceId, observation: { y: tensor(1) } });
    await c.models.attachEvents({ instanceId, events: [{ data: { y: tensor(0) } }, { data: { y: tensor(1) } }] });
    await c.learning.learn({ instanceId, wait: true });
    await c.inference.infer({ instanceId, observation: { y: tensor(0) } });
    expect(await stopProcess(first)).toBe(0);
    expect(first.output()).toContain('"msg":"posterior stopped"');

    const second = await startProcess(env);
    try {
      const d = processClients(second);
      const { instance: again } = await d.models.getInstance({ instanceId });
      expect(again?.description).toBe("survives");
      expect(again?.parametersVersion).toBe(1);
      const { events } = await d.models.listEvents({ instanceId });
      expect(events.map((e) => [e.seq, e.data.y?.values[0], e.learned])).toEqual([
        [1n, 1, true],
        [2n, 0, true],
        [3n, 1, true],
        [4n, 0, false],
      ]);
      const { parameters } = await d.models.getParameters({ instanceId });
      expect(parameters.p?.kind).toMatchObject({ case: "beta", value: { alpha: 3, beta: 2 } });
    } finally {
      expect(await stopProcess(second)).toBe(0);
    }
  });

  // The standard: nothing acknowledged is ever lost, even when the process gets no chance to stop.
  it("keeps every acknowledged event when the process is killed", { timeout: 120_000 }, async () => {
    const first = await startProcess(env);
    const c = processClients(first);
    const { instance } = await c.models.createInstance({ model: "beta-bernoulli-v1" });
    const instanceId = instance!.instanceId;
    const attached = await c.models.attachEvents({ instanceId, events: Array.from({ length: 100 }, (_, i) => ({ data: { y: tensor(i % 2) } })) });
    // Stored observations are group-committed: each answer means its event is committed.
    const inferred = await Promise.all(
      Array.from({ length: 50 }, (_, i) => c.inference.infer({ instanceId, observation: { y: tensor(i % 3 === 0 ? 1 : 0) } })),
    );
    expect(await stopProcess(first, "SIGKILL")).toBeNull();

    const second = await startProcess(env);
    try {
      const { events } = await processClients(second).models.listEvents({ instanceId, pageSize: 1000 });
      expect(events.map((e) => e.seq)).toEqual(Array.from({ length: 150 }, (_, k) => BigInt(k + 1)));
      expect(attached.lastSeq).toBe(100n);
      inferred.forEach((answer, i) => expect(events[Number(answer.eventSeq) - 1]?.data.y?.values).toEqual([i % 3 === 0 ? 1 : 0]));
    } finally {
      expect(await stopProcess(second)).toBe(0);
    }
  });

  it.skipIf(usingPostgres)("refuses a second process on the same embedded data directory", { timeout: 120_000 }, async () => {
    const owner = await startProcess(env);
    try {
      await expect(startProcess(env)).rejects.toThrow(/is in use by process/);
    } finally {
      await stopProcess(owner);
    }
  });
});
