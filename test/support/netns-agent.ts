import { createInterface } from "node:readline";

/**
 * Runs inside a site's network namespace (NetAgent in netns.ts starts it): reads one request
 * per line on stdin as JSON ({id, method, url, body, headers, timeoutMs}), makes it, and writes
 * the answer on stdout ({id, status, body, ms} or {id, error}). Requests run concurrently; it
 * exits when stdin closes.
 */
interface Ask {
  readonly id: number;
  readonly method: string;
  readonly url: string;
  readonly body?: unknown;
  readonly headers?: Record<string, string>;
  readonly timeoutMs: number;
}

async function answer(ask: Ask): Promise<Record<string, unknown>> {
  const started = performance.now();
  try {
    const response = await fetch(ask.url, {
      method: ask.method,
      headers: { ...(ask.body === undefined ? {} : { "content-type": "application/json" }), ...ask.headers },
      ...(ask.body === undefined ? {} : { body: JSON.stringify(ask.body) }),
      signal: AbortSignal.timeout(ask.timeoutMs),
    });
    const text = await response.text();
    let body: unknown = text;
    try {
      body = text === "" ? null : JSON.parse(text);
    } catch {
      // not JSON: the text as it came
    }
    return { id: ask.id, status: response.status, body, ms: performance.now() - started };
  } catch (error) {
    const cause = (error as { cause?: { code?: string } }).cause?.code;
    return { id: ask.id, error: `${(error as Error).message}${cause === undefined ? "" : ` (${cause})`}` };
  }
}

const lines = createInterface({ input: process.stdin });
lines.on("line", (line) => {
  const ask = JSON.parse(line) as Ask;
  void answer(ask).then((reply) => process.stdout.write(`${JSON.stringify(reply)}\n`));
});
