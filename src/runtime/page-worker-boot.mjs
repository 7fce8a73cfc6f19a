// The page worker's entry point (src/runtime/page-builder.ts starts it). A worker thread does
// not inherit the main thread's module hooks on Node 20, so it registers tsx itself, as
// bin/plexus.mjs does, before it loads the TypeScript.
import { register } from "tsx/esm/api";

register();
await import("./page-worker.ts");
