// The real server process, started from the command line as a user would.
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { createConnectTransport } from "@connectrpc/connect-node";
import { clientsFor } from "./harness.ts";

export interface ServerProcess {
  readonly child: ChildProcess;
  readonly port: number;
  /** The gRPC-only port, when POSTERIOR_GRPC_PORT was set. */
  readonly grpcPort?: number;
  readonly output: () => string;
}

/** Starts `node <entry>` and resolves once it logs its port, or rejects with what it printed. */
export function startProcess(env: Record<string, string>, entry = "src/main.ts"): Promise<ServerProcess> {
  const child = spawn(process.execPath, [entry], {
    env: { ...process.env, DATABASE_URL: "", POSTERIOR_PORT: "0", LOG_LEVEL: "info", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  return new Promise((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      const listening = logLines(output).find((line) => line.msg === "posterior listening");
      if (listening) {
        resolve({ child, port: listening.port as number, grpcPort: listening.grpcPort as number | undefined, output: () => output });
      }
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    child.once("exit", (code) => reject(new Error(`exited with ${code} before listening:\n${output}`)));
  });
}

export const logLines = (output: string): Array<Record<string, unknown>> =>
  output.split("\n").flatMap((line) => {
    try {
      return [JSON.parse(line) as Record<string, unknown>];
    } catch {
      return [];
    }
  });

/** Sends the signal and resolves with the exit code (null when killed). */
export async function stopProcess(p: ServerProcess, signal: NodeJS.Signals = "SIGTERM"): Promise<number | null> {
  if (p.child.exitCode !== null || p.child.signalCode !== null) return p.child.exitCode;
  const exited = once(p.child, "exit");
  p.child.kill(signal);
  const [code] = await exited;
  return code as number | null;
}

export const processClients = (p: ServerProcess) =>
  clientsFor(createConnectTransport({ baseUrl: `http://127.0.0.1:${p.port}`, httpVersion: "2" }));
