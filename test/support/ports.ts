import { createServer } from "node:net";

/**
 * Ports the Fetch standard blocks for browsers (Node's fetch answers "bad port" without
 * trying), above 1024: nodes serve on them and reach each other there all the same, so every
 * request a node or the CLI makes must reach them too.
 */
export const fetchBlockedPorts = [6665, 6666, 6667, 6668, 6669, 6697, 10080, 6000, 5060, 5061, 4190, 2049];

/** The first of `ports` free on 127.0.0.1 now, or null. */
export async function freePortOf(ports: readonly number[]): Promise<number | null> {
  for (const port of ports) {
    const free = await new Promise<boolean>((resolve) => {
      const server = createServer();
      server.once("error", () => resolve(false));
      server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
    });
    if (free) return port;
  }
  return null;
}
