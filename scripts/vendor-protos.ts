// Copies the few third-party .proto files the contract imports into proto/, from npm packages,
// because buf's registry (BSR) cannot be reached offline. Run after upgrading google-proto-files.
import { copyFileSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";

const vendored: Array<[from: string, to: string]> = [
  ["node_modules/google-proto-files/google/rpc/status.proto", "proto/google/rpc/status.proto"],
  ["node_modules/google-proto-files/google/rpc/error_details.proto", "proto/google/rpc/error_details.proto"],
  ["node_modules/google-proto-files/google/rpc/code.proto", "proto/google/rpc/code.proto"],
];

const root = join(import.meta.dirname, "..");
for (const [from, to] of vendored) {
  mkdirSync(dirname(join(root, to)), { recursive: true });
  copyFileSync(join(root, from), join(root, to));
  console.log(`${from} -> ${to}`);
}
