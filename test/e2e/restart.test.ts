// The real process: started from the command line, stopped by a signal, started again.
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freshDatabaseConfig, usingPostgres } from "../support/database.ts";
import { clientsFor, tensor } from "../support/harness.ts";

interface Process {
  readonly child: ChildProcess;
  readonly port: number;
  readonly output: () => string;
}

let env: Record<string, string>;
let dataDir: string;
beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), "posterior-restart-"));
  const database = await freshDatabaseConfig();
  env = { POSTERIOR_PORT: "0", POSTERIOR_DATA_DIR: dataDir, LOG_LEVEL: "info", ...(database.url ? { DATABASE_URL: database.url } : {}) };
});
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

/** Starts `node src/main.ts` and resolves once it logs its port, or rejects with what it printed. */
function startProcess(): Promise<Process> {
  const child = spawn(process.execPath, ["src/main.ts"], {
    env: { ...process.env, DATABASE_URL: "", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  return new Promise((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      const listening = output.split("\n").map(parse).find((line) => line?.msg === "posterior listening");
      if (listening) resolve({ child, port: listening.port as number, output: () => output });
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    child.once("exit", (code) => reject(new Error(`exited with ${code} before listening:\n${output}`)));
  });
}

const parse = (line: string): Record<string, unknown> | undefined => {
  try {
    return JSON.parse(line) as Record<string, unknown>;
  } catch {
    return undefined;
  }
};

async function stop(p: Process) {
  const exited = once(p.child, "exit");
  p.child.kill("SIGTERM");
  const [code] = await exited;
  return code as number;
}

const clients = (p: Process) => clientsFor(createConnectTransport({ baseUrl: `http://127.0.0.1:${p.port}`, httpVersion: "2" }));

describe("persistence across a restart", () => {
  it("keeps instances, events and learned parameters", { timeout: 120_000 }, async () => {
    const first = await startProcess();
    const c = clients(first);
    const { instance } = await c.models.createInstance({ model: "beta-bernoulli-v1", description: "survives" });
    const instanceId = instance!.instanceId;
    await c.inference.infer({ instanceId, observation: { y: tensor(1) } });
    await c.models.attachEvents({ instanceId, events: [{ data: { y: tensor(0) } }, { data: { y: tensor(1) } }] });
    await c.learning.learn({ instanceId, wait: true });
    await c.inference.infer({ instanceId, observation: { y: tensor(0) } });
    expect(await stop(first)).toBe(0);
    expect(first.output()).toContain('"msg":"posterior stopped"');

    const second = await startProcess();
    try {
      const d = clients(second);
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
      expect(await stop(second)).toBe(0);
    }
  });

  it.skipIf(usingPostgres)("refuses a second process on the same embedded data directory", { timeout: 120_000 }, async () => {
    const owner = await startProcess();
    try {
      await expect(startProcess()).rejects.toThrow(/is in use by process/);
    } finally {
      await stop(owner);
    }
  });
});
