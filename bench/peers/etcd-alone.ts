import { existsSync } from "node:fs";
import { join } from "node:path";
import {
  type EtcdFigures,
  etcdValueBytes,
  type PeerKnobs,
  type PeerRun,
  parseEtcd,
} from "../server-peers.ts";
import {
  type Daemon,
  freePortRun,
  refuseTakenPorts,
  runCommand,
  startDaemon,
  stopDaemon,
  waitReady,
  withScratchDir,
} from "./daemon.ts";

/**
 * etcd on ONE member, measured with the very client and counts that etcd3.sh uses on its three
 * members, so that (3-member puts/s) / (1-member puts/s) is etcd's own replication tax on this
 * machine, to read beside Plexus' replicationTaxRatio. Only the cluster size differs: same
 * etcd binary and flags, value size, puts, concurrency, time caps, and the warm-up etcd3.sh
 * runs right before its measured puts (2,000 puts at concurrency 1).
 */

const etcdBinary = "/usr/bin/etcd";
/** A member that is not healthy by then is given up on (etcd3.sh waits 20 s for three). */
const etcdReadyMs = 20_000;
/** etcd3.sh waits this long for a member to stop before SIGKILL (leader transfer can take seconds). */
const etcdStopGraceMs = 15_000;
/** etcd3.sh's put at concurrency 1 before the measured one, and its time cap. */
const warmPuts = 2_000;
const warmCapS = 60;
/** etcd3.sh's time cap of the measured puts. */
const measureCapS = 120;
/** The Go client's gRPC connections at the bench's concurrency, as etcd3.sh runs it. */
const goConnections = 8;
/** A load generator gets this long past its own cap before it is killed. */
const clientGraceMs = 30_000;

export type EtcdClient = EtcdFigures["client"];

/** The Go client binary etcd3.sh builds (once, where Go and Debian's etcd sources exist). */
export function etcdGoClient(home: string): string {
  return join(home, "etcd-go", "etcd-bench-go");
}

/** The client etcd3.sh's parsed figure came from (Go when built), for a run without that figure. */
export function etcdClientAvailable(home: string): EtcdClient {
  return existsSync(etcdGoClient(home)) ? "go" : "node";
}

/** One put load with the given client; the same command lines as etcd3.sh. */
function putLoad(
  home: string,
  client: EtcdClient,
  endpoint: string,
  concurrency: number,
  puts: number,
  capS: number,
): Promise<string> {
  const limitMs = capS * 1000 + clientGraceMs;
  if (client === "go") {
    const conns = concurrency === 1 ? 1 : goConnections;
    return runCommand(
      etcdGoClient(home),
      [
        ...["-endpoints", endpoint, "-op", "put", "-clients", String(concurrency), "-conns", String(conns)],
        ...["-n", String(puts), "-val", String(etcdValueBytes), "-max", `${capS}s`],
      ],
      { cwd: home, limitMs },
    );
  }
  const args = ["put", endpoint, String(concurrency), String(puts), String(etcdValueBytes), String(capS)];
  return runCommand(process.execPath, [join(home, "etcd-bench.mjs"), ...args], { cwd: home, limitMs });
}

async function etcdHealthy(clientPort: number): Promise<boolean> {
  const response = await fetch(`http://127.0.0.1:${clientPort}/health`);
  const body = (await response.json()) as { health?: string };
  return body.health === "true";
}

function startMember(directory: string, clientPort: number, peerPort: number): Daemon {
  const clientUrl = `http://127.0.0.1:${clientPort}`;
  const peerUrl = `http://127.0.0.1:${peerPort}`;
  return startDaemon("etcd", etcdBinary, [
    ...["--name", "m1", "--data-dir", join(directory, "m1")],
    ...["--listen-client-urls", clientUrl, "--advertise-client-urls", clientUrl],
    ...["--listen-peer-urls", peerUrl, "--initial-advertise-peer-urls", peerUrl],
    ...["--initial-cluster", `m1=${peerUrl}`, "--initial-cluster-token", "plexus-bench-alone"],
    ...["--initial-cluster-state", "new", "--logger", "zap", "--log-level", "warn"],
  ]);
}

/** Puts/s at the bench's concurrency on a 1-member etcd, with `client` (the 3-member run's). */
export async function runEtcdAlone(
  home: string,
  knobs: PeerKnobs,
  client: EtcdClient,
): Promise<PeerRun<EtcdFigures>> {
  try {
    const base = await freePortRun(2);
    const [clientPort, peerPort] = [base + 1, base + 2];
    return await withScratchDir("plexus-bench-etcd-alone-", async (directory) => {
      await refuseTakenPorts([clientPort, peerPort]);
      const member = startMember(directory, clientPort, peerPort);
      try {
        await waitReady(member, () => etcdHealthy(clientPort), etcdReadyMs);
        const endpoint = `127.0.0.1:${clientPort}`;
        const warm = await putLoad(home, client, endpoint, 1, warmPuts, warmCapS);
        const measured = await putLoad(
          home,
          client,
          endpoint,
          knobs.concurrency,
          knobs.etcdPuts,
          measureCapS,
        );
        const output = `${warm}${measured}`;
        return { ok: true, figures: parseEtcd(output, knobs), output };
      } finally {
        await stopDaemon(member, etcdStopGraceMs);
      }
    });
  } catch (error) {
    return { ok: false, reason: (error as Error).message };
  }
}
