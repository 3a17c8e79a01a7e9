// Bundles the server into dist/ (npm run build; npm ci runs it as `prepare`): `node dist/main.js`
// loads a few files instead of some 700 modules, in about a third of the time, at every start.
import { rmSync } from "node:fs";
import { join } from "node:path";
import { build } from "esbuild";

/** Writes main.js and learner-thread.js (with their shared chunks) to `outdir`, emptied first. */
export async function buildServer(outdir: string): Promise<void> {
  rmSync(outdir, { recursive: true, force: true });
  const root = join(import.meta.dirname, "..");
  await build({
    absWorkingDir: root,
    entryPoints: ["src/main.ts", "src/domain/learner-thread.ts"],
    entryNames: "[name]",
    outdir,
    bundle: true,
    splitting: true,
    format: "esm",
    platform: "node",
    target: "node22",
    // PGlite finds its .wasm and .data files beside its own modules.
    external: ["@electric-sql/pglite"],
    sourcemap: "linked",
    // The CommonJS modules inside (pg, pino's dependencies) call require() for Node's built-ins.
    banner: { js: 'import { createRequire as __createRequire } from "node:module"; const require = __createRequire(import.meta.url);' },
    logLevel: "warning",
  });
  // Names are not kept: esbuild's keepNames wraps every function the code creates in a call that sets
  // its name, which cost about 8 % of the server CPU of a unary Connect JSON call (median of 9
  // alternating pairs of wrk runs). So a class whose name collides with another in the bundle, or
  // that refers to itself, is renamed: entities have their names given explicitly, MikroORM's
  // migrator is registered by name (src/persistence/database.ts), and test/e2e/bundle.test.ts checks
  // that nothing bundled is loaded again from node_modules.
}

if (import.meta.main) await buildServer(join(import.meta.dirname, "../dist"));
