import { startCommand } from "./start.ts";
import { topologyCommand } from "./topology.ts";

/**
 * The `plexus` command. Today only the replication core and its SQLite store exist; the node
 * server, the locator and the demo cluster are still to come, so this command says what runs
 * today instead of pretending to start a cluster.
 */
const status = `Plexus — a multi-master, site-aware replicated directory service.

Any server accepts writes; servers replicate inside a site quickly and between sites on a
schedule; clients find a server through DNS SRV records and move on when one dies.

What runs today (in this checkout):
  - the replication core (src/core): entries, DNs, filters, stamped per-attribute and
    per-value merge, naming conflicts, LostAndFound, tombstones, strict mode, rollback
    safety, and the node state machine that schedules pulls between partners
  - the SQLite store (src/store), one database file per node
  - the deterministic simulator (src/sim): many nodes, faults, invariants, replayable seeds
  - npm test              type check, lint, unit, contract, property, scenario and simulator tests
  - npm run sim -- --seeds N   run N random simulator seeds (--seed S replays one)
  - npm run sim:canaries  prove the simulator catches each planted bug
  - npm run bench:core    write, apply and page throughput at 100k and 1M entries
  - the topology core (src/core/topology): config checks, intra-site rings, bridgeheads,
    path-vector routing between sites with the valley-free policy, and its simulator
  - npm run sim:routing -- --seeds N   inter-site routing under link and bridgehead faults
  - npm run bench:topology  route convergence at 100 to 10,000 sites (--quick: 100, 1,000)
  - plexus topology --config FILE [--site NAME]
                          print sites, links, bridgeheads, connections and routes of a
                          topology file (see examples/topology.json)

Not yet: the node server and HTTP API, pulling along the routes, the DNS locator, the other
CLI commands and the local demo cluster. See README.md.
`;

const [command, ...rest] = process.argv.slice(2);
if (command === undefined || command === "help" || command === "--help" || command === "-h") {
  process.stdout.write(status);
} else if (command === "--version" || command === "version") {
  process.stdout.write("plexus 0.1.0\n");
} else if (command === "start") {
  process.exitCode = await startCommand(rest, process.stdout, process.stderr);
} else if (command === "topology") {
  process.exitCode = topologyCommand(rest, process.stdout, process.stderr);
} else {
  process.stderr.write(
    `plexus: unknown command '${command}' (this version has no commands yet; run 'plexus --help')\n`,
  );
  process.exitCode = 2;
}
