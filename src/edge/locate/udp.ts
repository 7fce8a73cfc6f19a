import { createSocket, type Socket } from "node:dgram";
import { locate } from "../../core/locator/ping.ts";
import { parseAddress } from "../../core/topology/address.ts";
import { RateLimiter } from "../dns/rate-limit.ts";
import type { LocatorSource } from "../http/locate.ts";

/**
 * The UDP ping (docs/api.md, "Site discovery"): the answer of GET /v1/locate in one datagram,
 * on the node's HTTP port number (UDP and TCP ports are separate, so the port a client found in
 * the SRV record serves both). Request: JSON `{"v":1,"id":N}` or `{"v":1,"id":N,"address":IP}`,
 * at most requestBytesMax bytes. Answer: JSON `{"v":1,"id":N, ...the locate answer}`, its site
 * list cut so that the datagram stays under answerBytesMax. Anything malformed, oversized or
 * over a source's rate is dropped without an answer: an answer is what a reflection attack
 * wants, and a dropped ping only makes the client fall back to HTTP.
 */
export const locateUdpVersion = 1;
export const requestBytesMax = 256;
/** Below the IPv6 minimum MTU less headers: never fragmented. */
export const answerBytesMax = 1_200;
/** Pings per second per source address (a client pings once per records refresh). */
export const pingsPerSecondPerSource = 20;
const idMax = 2 ** 31 - 1;
const addressLengthMax = 64;

export interface PingRequest {
  readonly id: number;
  readonly address?: string;
}

/** The request in a datagram, or null for anything else (ignored). */
export function parsePing(datagram: Buffer): PingRequest | null {
  if (datagram.length === 0 || datagram.length > requestBytesMax) return null;
  let parsed: unknown;
  try {
    parsed = JSON.parse(datagram.toString("utf8"));
  } catch {
    return null;
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) return null;
  const fields = parsed as Record<string, unknown>;
  if (
    fields.v !== locateUdpVersion ||
    !Number.isInteger(fields.id) ||
    (fields.id as number) < 0 ||
    (fields.id as number) > idMax
  )
    return null;
  if (Object.keys(fields).some((key) => key !== "v" && key !== "id" && key !== "address")) return null;
  if (fields.address === undefined) return { id: fields.id as number };
  // One IP address, as GET /v1/locate demands: anything else (a name, "%zone", a prefix) would
  // place the client by whatever part of it the subnet matcher reads, or nowhere.
  if (
    typeof fields.address !== "string" ||
    fields.address.length > addressLengthMax ||
    parseAddress(fields.address) === null
  )
    return null;
  return { id: fields.id as number, address: fields.address };
}

/** The answer datagram, fewer closest sites until it fits answerBytesMax. */
export function encodeAnswer(id: number, answer: ReturnType<typeof locate>): Buffer {
  for (let keep = answer.closestSites.length; keep >= 0; keep--) {
    const datagram = Buffer.from(
      JSON.stringify({
        v: locateUdpVersion,
        id,
        ...answer,
        closestSites: answer.closestSites.slice(0, keep),
      }),
      "utf8",
    );
    if (datagram.length <= answerBytesMax || keep === 0) return datagram;
  }
  return Buffer.alloc(0);
}

export interface LocateUdp {
  readonly port: number;
  close(): Promise<void>;
}

/** Listens on host:port (UDP); rejects when the port cannot be bound. */
export function startLocateUdp(host: string, port: number, source: LocatorSource): Promise<LocateUdp> {
  const socket: Socket = createSocket(host.includes(":") ? "udp6" : "udp4");
  const limiter = new RateLimiter(pingsPerSecondPerSource);
  socket.on("message", (datagram, peer) => {
    if (!limiter.allow(peer.address, performance.now())) return;
    const request = parsePing(datagram);
    const view = request === null ? null : source();
    if (request === null || view === null) return;
    const answer = locate(view.topology, request.address ?? peer.address, {
      node: view.node,
      site: view.site,
    });
    socket.send(encodeAnswer(request.id, answer), peer.port, peer.address);
  });
  return new Promise((resolve, reject) => {
    socket.once("error", reject);
    socket.bind(port, host, () => {
      socket.off("error", reject);
      // A send that fails (the client went away) is no reason to stop answering.
      socket.on("error", () => {});
      resolve({
        port: socket.address().port,
        close: () => new Promise((done) => socket.close(() => done())),
      });
    });
  });
}
