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

Not yet: the node server and HTTP API, sites and topology, the DNS locator, the CLI commands
and the local demo cluster. See README.md.
`;

const [command] = process.argv.slice(2);
if (command === undefined || command === "help" || command === "--help" || command === "-h") {
  process.stdout.write(status);
} else if (command === "--version" || command === "version") {
  process.stdout.write("plexus 0.1.0\n");
} else {
  process.stderr.write(
    `plexus: unknown command '${command}' (this version has no commands yet; run 'plexus --help')\n`,
  );
  process.exitCode = 2;
}
