// The process entry point. Node's compile cache (in the OS temp directory) roughly halves the time
// spent loading modules on later starts; it must be on before they are imported.
import module from "node:module";

module.enableCompileCache?.();
await import("./cli.ts");
