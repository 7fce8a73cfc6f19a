import { createInterface } from "node:readline";
import { createClient, type PlexusClient } from "../../src/client/index.ts";

/**
 * Runs inside a site's network namespace (NetAgent in netns.ts starts it): reads one request
 * per line on stdin as JSON and writes its answer on stdout, requests running concurrently;
 * it exits when stdin closes. A request is either plain HTTP ({id, method, url, body, headers,
 * timeoutMs} → {id, status, body, ms}) or a call of the client library ({id, client: options,
 * call: "add" | "get", dn, attributes} → {id, status, url, tier, failed, ms}), one client per
 * distinct options, kept between calls as an application keeps it. Failures: {id, error}.
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

interface ClientCall {
  readonly id: number;
  readonly client: { readonly zone: string; readonly dnsServers: readonly string[] };
  readonly call: "add" | "get";
  readonly dn: string;
  readonly attributes?: Record<string, string[]>;
}

const clients = new Map<string, PlexusClient>();

async function callClient(ask: ClientCall): Promise<Record<string, unknown>> {
  const key = JSON.stringify(ask.client);
  let client = clients.get(key);
  if (client === undefined) {
    client = createClient({ zone: ask.client.zone, dnsServers: [...ask.client.dnsServers] });
    clients.set(key, client);
  }
  const started = performance.now();
  try {
    const answer =
      ask.call === "add" ? await client.add(ask.dn, ask.attributes ?? {}) : await client.get(ask.dn);
    return {
      id: ask.id,
      status: answer.status,
      url: answer.url,
      tier: answer.tier.kind,
      failed: answer.failed.map((attempt) => ({ url: attempt.url, failure: attempt.failure })),
      ms: performance.now() - started,
    };
  } catch (error) {
    return { id: ask.id, error: `${(error as Error).name}: ${(error as Error).message}` };
  }
}

const lines = createInterface({ input: process.stdin });
lines.on("line", (line) => {
  const ask = JSON.parse(line) as Ask | ClientCall;
  const reply = "client" in ask ? callClient(ask) : answer(ask);
  void reply.then((message) => process.stdout.write(`${JSON.stringify(message)}\n`));
});
process.stdin.once("end", () => {
  for (const client of clients.values()) void client.close();
});
