// A real browser app on Connect-Web: Debian's Chromium, driven by playwright-core, loads a page
// from one loopback origin and calls the server on another, so CORS is really exercised.
import { accessSync, constants, mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { build } from "esbuild";
import { type BrowserContext, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { startTestServer } from "../support/harness.ts";
import type { Api, TransportKind } from "./browser/app.ts";

const chromiumPath = process.env.POSTERIOR_CHROMIUM || "/usr/bin/chromium";
const missing = (() => {
  try {
    accessSync(chromiumPath, constants.X_OK);
    return undefined;
  } catch {
    return `no Chromium at ${chromiumPath}: install Debian's chromium (apt-get install chromium) or set POSTERIOR_CHROMIUM`;
  }
})();
if (missing) {
  // CI must not pass by skipping.
  if (process.env.CI) throw new Error(`browser e2e test: ${missing}`);
  console.warn(`skipping the browser e2e test: ${missing}`);
}

/** Runs a function of the page's app (browser/app.ts) in the browser. */
const appIn = (page: Page) => <K extends keyof Api>(name: K, ...args: Parameters<Api[K]>) =>
  page.evaluate(
    ([name, args]) => {
      const api = (globalThis as unknown as { posterior: Api }).posterior;
      return (api[name] as (...a: unknown[]) => unknown)(...args);
    },
    [name, args] as const,
  ) as Promise<Awaited<ReturnType<Api[K]>>>;

/** Serves the page and its bundle; listening twice gives an allowed and a refused origin. */
async function pageServer(script: string): Promise<{ origin: string; close: () => Promise<void> }> {
  const server: Server = createServer((req, res) => {
    if (req.url === "/app.js") res.writeHead(200, { "content-type": "text/javascript" }).end(script);
    else if (req.url === "/") res.writeHead(200, { "content-type": "text/html" }).end('<!doctype html><script type="module" src="/app.js"></script>');
    else res.writeHead(204).end(); // favicon.ico: a 404 would clutter the browser log
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

describe.skipIf(missing)(`Connect-Web in Chromium${missing ? ` (skipped: ${missing})` : ""}`, () => {
  let userDataDir: string;
  let pageServers: Awaited<ReturnType<typeof pageServer>>[];
  let server: Awaited<ReturnType<typeof startTestServer>>;
  let context: BrowserContext;
  // The app loaded from an origin in corsOrigins, and from one that is not.
  let allowedApp: ReturnType<typeof appIn>;
  let refusedApp: ReturnType<typeof appIn>;
  // Shown when a test fails: the browser's own account of what went wrong.
  let browserLog: string[] = [];

  const open = async (origin: string) => {
    const page = await context.newPage();
    page.on("console", (m) => m.type() === "error" && browserLog.push(`console: ${m.text()}`));
    page.on("pageerror", (e) => browserLog.push(`pageerror: ${e.message}`));
    await page.goto(`${origin}/`);
    await page.waitForFunction(() => "posterior" in globalThis);
    return appIn(page);
  };

  beforeAll(async () => {
    const bundle = await build({
      entryPoints: [join(import.meta.dirname, "browser/app.ts")],
      bundle: true,
      write: false,
      format: "esm",
      platform: "browser",
      logLevel: "silent",
    });
    const script = bundle.outputFiles[0]!.text;
    pageServers = await Promise.all([pageServer(script), pageServer(script)]);
    const [allowed, refused] = pageServers.map((s) => s.origin) as [string, string];
    userDataDir = mkdtempSync(join(tmpdir(), "posterior-chromium-"));
    [server, context] = await Promise.all([
      startTestServer({ corsOrigins: [allowed] }),
      chromium.launchPersistentContext(userDataDir, {
        executablePath: chromiumPath,
        headless: true,
        chromiumSandbox: false,
        // Without the background-networking flags Chromium's own traffic gets connections refused offline.
        args: [
          "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
          "--disable-background-networking", "--disable-component-update", "--disable-sync",
        ],
      }),
    ]);
    [allowedApp, refusedApp] = await Promise.all([open(allowed), open(refused)]);
  });

  afterAll(async () => {
    await context?.close();
    await Promise.all([server?.stop(), ...(pageServers ?? []).map((s) => s.close())]);
    if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
  });

  beforeEach(({ onTestFailed }) => {
    browserLog = [];
    onTestFailed(() => console.error(`browser log:\n${browserLog.join("\n") || "(empty)"}`));
  });

  describe.each<TransportKind>(["connect", "grpc-web"])("over %s", (kind) => {
    it("creates, infers, learns, reads parameters and watches a run", async () => {
      const r = await allowedApp("lifecycle", server.baseUrl, kind, `browser-${kind}`);
      // Beta(2, 1) prior, one success: Beta(3, 1), predictive p = 3 / 4.
      expect(r.inferred).toMatchObject({
        posteriors: { p: { beta: { alpha: 3, beta: 1 } } },
        predictions: { y: { bernoulli: { p: 0.75 } } },
        eventSeq: "1",
      });
      expect(r.learned).toMatchObject({ run: { status: "RUN_STATUS_SUCCEEDED", parametersVersionAfter: 1 } });
      expect(r.parameters).toMatchObject({ parameters: { p: { beta: { alpha: 3, beta: 1 } } }, parametersVersion: 1 });
      // A second run, on a later observation, streamed to the browser until it has finished.
      expect(r.watched.length).toBeGreaterThan(0);
      expect(r.watched.at(-1)).toMatchObject({ run: { status: "RUN_STATUS_SUCCEEDED", parametersVersionAfter: 2 } });

      // x-request-id is an exposed header: the app reads the id it sent, and the server's own ones.
      const uuid = expect.stringMatching(/^[0-9a-f-]{36}$/);
      expect(r.requestIds).toEqual({
        CreateInstance: [uuid],
        Infer: [`browser-${kind}`, uuid],
        Learn: [uuid, uuid],
        GetParameters: [uuid],
        WatchRun: [uuid],
      });
    });

    it("decodes error codes and google.rpc details", async () => {
      const { notFound, invalid } = await allowedApp("failures", server.baseUrl, kind);
      expect(notFound).toMatchObject({
        code: "NotFound",
        errorInfo: [{ reason: "INSTANCE_NOT_FOUND", domain: "posterior" }],
        badRequest: [],
        requestId: expect.stringMatching(/^[0-9a-f-]{36}$/),
      });
      expect(invalid).toMatchObject({
        code: "InvalidArgument",
        errorInfo: [{ reason: "DATA_NOT_VALID", domain: "posterior" }],
        badRequest: [{ fieldViolations: [{ field: "observation.y" }] }],
      });
    });

    it("is refused by the browser from an origin not in corsOrigins", async () => {
      const failure = await refusedApp("refused", server.baseUrl, kind);
      // fetch rejects with a bare TypeError: no status, headers or details reach the app.
      expect(failure).toEqual({ code: "Unknown", message: "Failed to fetch", requestId: null, errorInfo: [], badRequest: [] });
      // The reason is only in the browser's console, which may report it after the call has failed.
      await expect.poll(() => browserLog.join("\n")).toMatch(/blocked by CORS policy/);
    });
  });
});
