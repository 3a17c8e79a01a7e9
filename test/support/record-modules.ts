// Preloaded into a server process (`--import`) to write every module it resolves, one URL a line,
// to the file RECORD_MODULES names (test/e2e/bundle.test.ts).
import { appendFileSync } from "node:fs";
import { registerHooks } from "node:module";

const file = process.env.RECORD_MODULES!;
registerHooks({
  resolve(specifier, context, next) {
    const resolved = next(specifier, context);
    appendFileSync(file, `${resolved.url}\n`);
    return resolved;
  },
});
