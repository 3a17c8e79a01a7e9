import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import https from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningServer } from "../../src/server/server.ts";
import { startServer } from "../../src/server/server.ts";
import { freshDatabaseConfig } from "../support/database.ts";
import { clientsFor, silentLogger, testConfig } from "../support/harness.ts";

let dir: string;
let cert: Buffer;
let server: RunningServer;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "posterior-tls-"));
  execFileSync("openssl", [
    "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
    "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem"),
  ], { stdio: "ignore" });
  cert = readFileSync(join(dir, "cert.pem"));
  const database = await freshDatabaseConfig();
  server = await startServer(
    testConfig({ databaseUrl: database.url, dataDir: database.dataDir, tls: { cert, key: readFileSync(join(dir, "key.pem")) } }),
    silentLogger,
    { loadDataDir: database.loadDataDir },
  );
});
afterAll(async () => {
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("TLS with a configured certificate", () => {
  it("serves gRPC and Connect over HTTP/2", async () => {
    const baseUrl = `https://localhost:${server.port}`;
    for (const transport of [
      createGrpcTransport({ baseUrl, nodeOptions: { ca: cert } }),
      createConnectTransport({ baseUrl, httpVersion: "2", nodeOptions: { ca: cert } }),
    ]) {
      const { modelTypes } = await clientsFor(transport).models.listModelTypes({});
      expect(modelTypes.map((m) => m.name)).toContain("beta-bernoulli-v1");
    }
  });

  it("serves Connect JSON over HTTP/1.1 on the same port", async () => {
    const body = await new Promise<{ status: number; protocol: string; text: string }>((resolve, reject) => {
      const req = https.request(
        `https://localhost:${server.port}/posterior.v1.ModelService/ListModelTypes`,
        { method: "POST", ca: cert, headers: { "content-type": "application/json" } },
        (res) => {
          let text = "";
          res.on("data", (c) => (text += c));
          res.on("end", () => resolve({ status: res.statusCode!, protocol: `HTTP/${res.httpVersion}`, text }));
        },
      );
      req.on("error", reject);
      req.end("{}");
    });
    expect(body.status).toBe(200);
    expect(body.protocol).toBe("HTTP/1.1");
    expect(JSON.parse(body.text).modelTypes[0].name).toBe("beta-bernoulli-v1");
  });
});
