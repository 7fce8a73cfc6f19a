import { isIP } from "node:net";
import { createClient } from "../client/client.ts";
import { UsageError } from "./cli-support.ts";
import { connect, type NodeApi } from "./remote.ts";

/**
 * `--zone ZONE [--dns-server HOST:PORT]...` instead of `--url`: the command finds its node
 * through the locator (docs/client.md) — its site's servers first, then the next-closest
 * sites', then any — and fails over between them. The CLI's HTTP module (remote.ts) stays the
 * same: its requests go through the client library instead of straight to one URL.
 */
export const locatorFlags = {
  zone: { type: "string" },
  "dns-server": { type: "string", multiple: true },
} as const;

export const locatorUsage = `  --zone ZONE             instead of --url: find a node through the locator zone's DNS SRV
                          records (own site first, then the next-closest sites, then any)
                          and fail over between them (docs/client.md)
  --dns-server HOST:PORT  with --zone: a DNS server for the zone (repeatable; default the
                          system's resolver; every node serves one: plexus start --dns)`;

export interface LocatorValues {
  readonly url?: string | undefined;
  readonly zone?: string | undefined;
  readonly "dns-server"?: string[] | undefined;
}

/** The API through the locator when --zone is given; null otherwise (the caller uses --url). */
export function locatedApi(values: LocatorValues): NodeApi | null {
  const client = locatorClient(values);
  if (client === null) return null;
  // The URL is only a base for the paths: the locator picks the node, so errors name the zone.
  return connect(`http://${values.zone}`, locatorFetch(client), `any node of the zone ${values.zone}`);
}

/** An IP address with an optional port (IPv6 in brackets when a port follows), as DNS servers are given. */
function isDnsServer(text: string): boolean {
  if (isIP(text) !== 0) return true;
  const [, host, port] =
    /^\[([^\]]+)\](?::([0-9]{1,5}))?$/.exec(text) ?? /^([^:]+):([0-9]{1,5})$/.exec(text) ?? [];
  if (host === undefined || isIP(host) === 0) return false;
  return port === undefined || (Number(port) >= 1 && Number(port) <= 65_535);
}

/** A client of the locator zone when --zone is given (flags checked); null otherwise. */
function locatorClient(values: LocatorValues): ReturnType<typeof createClient> | null {
  const servers = values["dns-server"] ?? [];
  if (values.zone === undefined) {
    if (servers.length > 0) throw new UsageError("--dns-server goes with --zone");
    return null;
  }
  if (values.url !== undefined) throw new UsageError("give --url or --zone, not both");
  for (const server of servers)
    if (!isDnsServer(server))
      throw new UsageError(
        `--dns-server '${server}' is not HOST or HOST:PORT with HOST an IP address ` +
          "(127.0.0.1, 10.0.0.2:5353, [::1]:53): the server that resolves names is given by its address",
      );
  try {
    return createClient({ zone: values.zone, dnsServers: servers, keepAlive: false });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

/**
 * For the commands that work against one node's URL (repl, conflicts, topology, import,
 * export): `--zone ZONE [--dns-server HOST:PORT]...` becomes `--url` of the node the locator
 * picks (own site first, then the next-closest, then any) — the command then talks to that
 * node, without failing over mid-command. Arguments without --zone come back as they are.
 */
export async function zoneToUrl(args: readonly string[]): Promise<string[]> {
  const rest: string[] = [];
  const values: { url?: string; zone?: string; config?: boolean; "dns-server": string[] } = {
    "dns-server": [],
  };
  for (let index = 0; index < args.length; index++) {
    const arg = args[index] as string;
    const [flag, inline] =
      arg.startsWith("--") && arg.includes("=") ? arg.split(/=(.*)/s, 2) : [arg, undefined];
    if (flag !== "--zone" && flag !== "--dns-server") {
      rest.push(arg);
      if (flag === "--url") values.url = inline ?? args[index + 1] ?? "";
      // topology --config reads a file: no node to find, and no lookup before saying so.
      if (flag === "--config") values.config = true;
      continue;
    }
    const value = inline ?? args[++index];
    if (value === undefined || value.startsWith("--")) throw new UsageError(`${flag} needs a value`);
    if (flag === "--zone") values.zone = value;
    else values["dns-server"].push(value);
  }
  if (values.config === true && values.zone !== undefined)
    throw new UsageError("give --config or --zone, not both");
  const client = locatorClient(values);
  if (client === null) return [...args];
  try {
    const answer = await client.request<{ url?: unknown }>("GET", "/v1/status");
    const url = answer.body?.url;
    if (typeof url !== "string") throw new Error(`${answer.url} did not say its URL`);
    return [...rest, "--url", url];
  } finally {
    await client.close();
  }
}

/** A fetch whose requests go to whichever node the client picks; the answer as a Response. */
function locatorFetch(client: ReturnType<typeof createClient>): typeof fetch {
  return async (input, init) => {
    const target = new URL(String(input));
    const headers = Object.fromEntries(new Headers(init?.headers).entries());
    const body = typeof init?.body === "string" ? (JSON.parse(init.body) as unknown) : undefined;
    const answer = await client.request(
      init?.method ?? "GET",
      `${target.pathname}${target.search}`,
      body,
      headers,
    );
    const answerHeaders = new Headers({ "content-type": "application/json" });
    if (client.session !== null) answerHeaders.set("plexus-session", client.session);
    const empty = answer.body === null || answer.status === 204;
    return new Response(empty ? null : JSON.stringify(answer.body), {
      status: answer.status,
      headers: answerHeaders,
    });
  };
}
