import { spawn } from "node:child_process";
import Fastify from "fastify";

/**
 * The bare-HTTP baseline of `npm run bench`: a fastify server in a process of its own that
 * answers `POST /v1/entries` with 201 after parsing the JSON body, and does nothing else. The
 * same client load against it says what HTTP and JSON alone cost on this machine (client and
 * server sharing its cores), beside the node's writes.
 */
const readyTimeoutMs = 20_000;

export interface BareHttp {
  readonly url: string;
  stop(): void;
}

/** Starts this file as a child process and resolves with the URL it listens on. */
export function startBareHttp(): Promise<BareHttp> {
  const child = spawn(process.execPath, ["--import", "tsx", new URL(import.meta.url).pathname, "serve"], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const stop = (): void => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
  };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      stop();
      reject(new Error(`the bare HTTP server did not start in ${readyTimeoutMs} ms`));
    }, readyTimeoutMs);
    let out = "";
    child.stdout.setEncoding("utf8");
    child.stdout.on("data", (chunk: string) => {
      out += chunk;
      const match = /^listening (\S+)$/m.exec(out);
      if (match?.[1] === undefined) return;
      clearTimeout(timer);
      resolve({ url: match[1], stop });
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`the bare HTTP server exited with ${code}`));
    });
  });
}

async function serve(): Promise<void> {
  const app = Fastify();
  app.post("/v1/entries", async (request, reply) => {
    const body = request.body as { dn?: unknown };
    return reply.code(201).send({ dn: typeof body.dn === "string" ? body.dn : null });
  });
  const url = await app.listen({ host: "127.0.0.1", port: 0 });
  process.stdout.write(`listening ${url}\n`);
  process.once("SIGTERM", () => void app.close().then(() => process.exit(0)));
}

if (process.argv[2] === "serve") await serve();
