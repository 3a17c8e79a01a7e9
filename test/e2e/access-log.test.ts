// The access log (POSTERIOR_ACCESS_LOG) on each road a unary call can take: the main port's short
// paths (Connect JSON over HTTP/1.1, gRPC), connect-node (Connect binary over HTTP/2) and the
// gRPC-only port (grpc-js).
import { Code, ConnectError, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AccessLog, loadConfig } from "../../src/config.ts";
import { clientsFor, startTestServer } from "../support/harness.ts";
import { logLines, processClients, startProcess, stopProcess } from "../support/process.ts";

const transports: Record<string, (server: { port: number; grpcPort?: number }) => Transport> = {
  "connect-json-http1": ({ port }) => createConnectTransport({ baseUrl: `http://127.0.0.1:${port}`, httpVersion: "1.1" }),
  "grpc-main-port": ({ port }) => createGrpcTransport({ baseUrl: `http://127.0.0.1:${port}` }),
  "connect-binary-http2": ({ port }) => createConnectTransport({ baseUrl: `http://127.0.0.1:${port}`, httpVersion: "2", useBinaryFormat: true }),
  "grpc-only-port": ({ grpcPort }) => createGrpcTransport({ baseUrl: `http://127.0.0.1:${grpcPort}` }),
};

it("reads POSTERIOR_ACCESS_LOG, every call by default, and refuses other values", () => {
  expect(loadConfig({}).accessLog).toBe("all");
  expect(loadConfig({ POSTERIOR_ACCESS_LOG: "failures" }).accessLog).toBe("failures");
  expect(() => loadConfig({ POSTERIOR_ACCESS_LOG: "errors" })).toThrow('POSTERIOR_ACCESS_LOG must be one of all, failures, none, got "errors"');
});

const UNKNOWN_INSTANCE = "00000000-0000-4000-8000-000000000000";

describe.each(["all", "failures", "none"] as const)("POSTERIOR_ACCESS_LOG=%s", (accessLog: AccessLog) => {
  const lines: Array<Record<string, unknown>> = [];
  let server: Awaited<ReturnType<typeof startTestServer>>;
  beforeAll(async () => {
    const logger = pino({ level: "info" }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
    server = await startTestServer({ grpcPort: 0, accessLog }, logger);
    for (const [name, transport] of Object.entries(transports)) {
      const { models } = clientsFor(transport(server));
      await models.getModelType({ name: "beta-bernoulli-v1" }, { headers: { "x-request-id": `${name}-ok` } });
      const missing = await models.getInstance({ instanceId: UNKNOWN_INSTANCE }, { headers: { "x-request-id": `${name}-missing` } }).catch((e) => e);
      expect(ConnectError.from(missing).code).toBe(Code.NotFound);
    }
  });
  afterAll(() => server.stop());

  const rpcLine = (requestId: string) => lines.find((line) => line.msg === "rpc" && line.requestId === requestId);

  it.each(Object.keys(transports))("%s", (name) => {
    const ok = rpcLine(`${name}-ok`);
    const missing = rpcLine(`${name}-missing`);
    if (accessLog === "all") expect(ok).toMatchObject({ level: 30, rpc: "posterior.v1.ModelService/GetModelType", code: "ok", ms: expect.any(Number) });
    else expect(ok).toBeUndefined();
    if (accessLog === "none") expect(missing).toBeUndefined();
    else {
      expect(missing).toMatchObject({ level: 30, rpc: "posterior.v1.ModelService/GetInstance", code: "NotFound", ms: expect.any(Number) });
      expect(missing!.message).toMatch(/not found/i);
    }
  });

  it("still logs start-up", () => {
    expect(lines.some((line) => line.msg === "posterior listening")).toBe(true);
  });
});

// The server process batches its log writes (src/cli.ts): a line must still come out soon on a
// quiet server, and what is buffered at shutdown must not be lost.
describe("the server process's log", () => {
  it("writes a quiet server's access-log line within moments, and the rest at shutdown", { timeout: 60_000 }, async () => {
    const server = await startProcess({ POSTERIOR_DATA_DIR: "memory://" });
    try {
      await processClients(server).models.getModelType({ name: "beta-bernoulli-v1" }, { headers: { "x-request-id": "quiet-1" } });
      const deadline = Date.now() + 5000;
      while (!logLines(server.output()).some((line) => line.requestId === "quiet-1") && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      expect(logLines(server.output()).find((line) => line.requestId === "quiet-1")).toMatchObject({ msg: "rpc", code: "ok" });
      await processClients(server).models.getModelType({ name: "beta-bernoulli-v1" }, { headers: { "x-request-id": "quiet-2" } });
    } finally {
      expect(await stopProcess(server)).toBe(0);
    }
    const names = logLines(server.output()).map((line) => line.requestId ?? line.msg);
    expect(names).toContain("quiet-2");
    expect(names.at(-1)).toBe("posterior stopped");
  });
});
