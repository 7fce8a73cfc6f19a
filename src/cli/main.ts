/**
 * The `plexus` command: `start` runs a node, `demo` a local cluster, `topology` prints a
 * topology file; without a
 * command it says what Plexus is and what runs in this version. Each command's module is
 * imported only when it runs: a one-shot command then loads none of the server's dependencies.
 */
const status = `Plexus — a multi-master, site-aware replicated directory service.

Any server accepts writes; servers replicate inside a site quickly and between sites on a
schedule; clients find a server through DNS SRV records and move on when one dies.

Commands:
  plexus start --data DIR --node NAME --site SITE [--join URL]... [--secret-file FILE] ...
                          run a node: the first one (no --join) creates the directory
                          (cn=config, cn=dns, dc=example,dc=com); others join through any
                          node, sync, then serve the HTTP/JSON API under /v1 (docs/api.md)
                          and replicate over signed HTTP. 'plexus start --help' for options
  plexus demo [--json] [--keep] [--logs]
                          a local cluster (what 'npm start' runs): sites hq (hub), east and
                          branch, two nodes each, every node its own 'plexus start' process on
                          a free loopback port, data in a temporary directory; writes sample
                          users and a group, prints the nodes and commands to try; Ctrl-C
                          stops every node and removes the data. 'plexus demo --help'
  plexus backup --data DIR --output FILE
                          a consistent copy of a node's database, taken while it runs
  plexus restore --data DIR --from FILE
                          put a backup in place of a stopped node's database; the node then
                          takes a new invocation id and catches up (docs/operations.md)
  plexus import FILE [--url URL] [--batch N] [--resume-file F] [--restart] ...
                          send an LDIF file's records (RFC 2849) to a node in batches; a
                          bad record is reported as FILE:LINE and the rest go on; rerun
                          to resume after Ctrl-C or a crash (docs/ldif.md)
  plexus export [--url URL] [--base DN] [--filter F] [--scope S] [--output FILE] ...
                          a subtree as LDIF, parents before children (docs/ldif.md)
  plexus topology --config FILE | --url URL | --zone ZONE [--site NAME]
                          print sites, links, bridgeheads, connections and routes of a
                          topology file (see examples/topology.json), or with --url (or
                          --zone: a node the locator picks) the live topology a node reads
                          from its cn=config

Against a node (--url URL or $PLEXUS_URL; --json for JSON; 'plexus COMMAND --help'):
  plexus get DN [--attributes a,b]
  plexus add DN type=value... [--file FILE]
  plexus modify DN [--add type=value] [--delete type[=value]] [--replace type[=value]]...
  plexus delete DN [--subtree]
  plexus move DN [--new-rdn RDN] [--new-parent DN]
  plexus search BASE [--filter F] [--scope base|one|sub] [--attributes a,b] [--size-limit N]
                          entries as LDIF; writes take --write-concern local|site|sites=N|all
                          and --timeout MS, print their session token on stderr
                          (plexus-session: TOKEN) and every command takes --session TOKEN
                          (or $PLEXUS_SESSION) to read its writes on any node. Exit codes:
                          1 the node refused (plexus: <code>: <detail>), 2 bad usage,
                          3 no node could be reached, 4 a write's outcome unknown (the node
                          it went to broke the connection or did not answer in time; read to
                          know whether it was applied)
  plexus repl status [NODE]
                          one node's inbound partners (last success, last failure and its
                          reason, consecutive failures) and per origin what it has against
                          its partners (like repadmin /showrepl)
  plexus repl summary     every server: largest delta and failures as source and as
                          destination, USNs behind, unreachable ones (like repadmin /replsummary)
  plexus repl sync [--from NODE]
                          pull from inbound partners now and wait for the pulls
  plexus conflicts        naming conflicts, orphans and cycle breakers to look at
  plexus dns list | add NAME TYPE DATA | delete ID [--zone NAME]
                          the locator zone's records (docs/locator.md)

What runs today (in this checkout):
  - the replication core (src/core): entries, DNs, filters, stamped per-attribute and
    per-value merge, naming conflicts, LostAndFound, tombstones, strict mode, rollback
    safety, and the node state machine that schedules pulls between partners
  - the SQLite store (src/store), one database file per node
  - the node server (src/runtime, src/edge/http): join and initial sync, partners from the
    replicated topology (link schedules obeyed, inter-site pulls filtered by origin site),
    HMAC-signed transport (nonce, replay window, each signature once), gzip across sites, group commit, the
    client API with problem+json errors, write concern (Plexus-Write-Concern), session
    tokens (Plexus-Session), GET /v1/watch (server-sent events), GET /v1/status
  - GET /metrics on every node (Prometheus text format) and JSON logs on stderr
    (--log-format pretty for people); docs/operations-metrics.md
  - the DNS locator (src/edge/dns, src/core/locator): every node serves the locator zone
    from its dns partition over UDP and TCP (plexus start --dns HOST:PORT, --zone), and
    registers its SRV, A and NS records; dig it (docs/locator.md); npm run bench:dns
  - site discovery (GET /v1/locate, UDP ping) and the client library (plexus/client):
    own site first, then the next-closest, then any; failover with back-off, session
    token carried (docs/client.md); the commands against a node take --zone instead
    of --url
  - the deterministic simulator (src/sim): many nodes, faults, invariants, replayable seeds
  - npm start             the local demo cluster (plexus demo)
  - npm test              type check, lint, unit, contract, property, scenario, simulator
                          and multi-process cluster tests
  - npm run sim -- --seeds N   run N random simulator seeds (--seed S replays one)
  - npm run sim:canaries  prove the simulator catches each planted bug
  - npm run bench         node processes over HTTP: durable writes/s, replication tax,
                          lag, 10k bulk convergence, against OpenLDAP and etcd when
                          ../shared/peers is set up (docs/benchmarks.md)
  - npm run bench:core    write, apply and page throughput at 100k and 1M entries
  - npm run bench:ldif, bench:dns, bench:failover   import rate, DNS queries/s against
                          BIND, client failover time
  - the topology core (src/core/topology): config checks, intra-site rings, bridgeheads,
    path-vector routing between sites with the valley-free policy, and its simulator
  - npm run sim:routing -- --seeds N   inter-site routing under link and bridgehead faults
  - npm run sim:sites -- --seeds N   replication along the topology (reverse-path
                          pulling, one transfer per site boundary) with link and bridgehead faults
  - npm run bench:topology  route convergence and one change's propagation at 100 to
                          10,000 sites (--quick: 100, 1,000)

Not yet: client authentication and TLS, the LDAP server. See README.md and docs/operations.md.
`;

/** The entry commands (src/cli/entries.ts), listed here so that they are known before it loads. */
const entryCommands: readonly string[] = ["get", "add", "modify", "delete", "move", "search"];

const [command, ...given] = process.argv.slice(2);
const { stdout, stderr } = process;
/** Commands that handle their outputs' failures themselves: their nodes must stop in order. */
const ownOutputHandling: readonly string[] = ["start", "demo"];
if (command === undefined || !ownOutputHandling.includes(command)) endOnClosedOutput(command);

/**
 * A write to a pipe whose reader has gone (`plexus search … | head -1`) fails with EPIPE, an
 * 'error' event on the stream that, unhandled, ends the process with a stack trace. The command
 * ends here instead, with one line (as `plexus export` words it) and exit code 1: the rest of
 * its output has nowhere to go. A failed stderr gets no line.
 */
function endOnClosedOutput(name: string | undefined): void {
  const who = name === undefined || name.startsWith("-") ? "plexus" : `plexus ${name}`;
  let stderrOpen = true;
  stderr.on("error", () => {
    stderrOpen = false;
    process.exit(1);
  });
  stdout.on("error", (error) => {
    if (stderrOpen) stderr.write(`${who}: cannot write to stdout: ${error.message}\n`);
    process.exit(1);
  });
}
/** Commands against one node's URL that also take --zone (src/cli/located.ts, zoneToUrl). */
const locatableCommands: readonly string[] = ["repl", "conflicts", "topology", "import", "export"];
const rest = await locate(command, given);

/** The arguments, with --zone turned into --url when the command takes it; exits on failure. */
async function locate(name: string | undefined, args: string[]): Promise<string[]> {
  if (
    name === undefined ||
    !locatableCommands.includes(name) ||
    !args.some((arg) => arg.startsWith("--zone"))
  )
    return args;
  const { zoneToUrl } = await import("./located.ts");
  const { UsageError, exitUsage, exitUnreachable } = await import("./cli-support.ts");
  try {
    return await zoneToUrl(args);
  } catch (error) {
    stderr.write(`plexus ${name}: ${(error as Error).message}\n`);
    process.exit(error instanceof UsageError ? exitUsage : exitUnreachable);
  }
}
if (command === undefined || command === "help" || command === "--help" || command === "-h") {
  stdout.write(status);
} else if (command === "--version" || command === "version") {
  stdout.write("plexus 0.1.0\n");
} else if (command === "start") {
  // Once the node has stopped, a client's lingering keep-alive socket must not hold the process.
  process.exit(await (await import("./start.ts")).startCommand(rest, stdout, stderr));
} else if (command === "demo") {
  process.exit(await (await import("./demo.ts")).demoCommand(rest, stdout, stderr));
} else if (command === "backup" || command === "restore") {
  process.exitCode = (await import("./backup.ts")).backupCommand(command, rest, stdout, stderr);
} else if (entryCommands.includes(command)) {
  const { entryCommand, isEntryCommand } = await import("./entries.ts");
  if (!isEntryCommand(command))
    throw new Error(`main.ts lists ${command} as an entry command; entries.ts does not`);
  process.exitCode = await entryCommand(command, rest, stdout, stderr);
} else if (command === "repl") {
  process.exitCode = await (await import("./repl.ts")).replCommand(rest, stdout, stderr);
} else if (command === "conflicts") {
  process.exitCode = await (await import("./repl.ts")).conflictsCommand(rest, stdout, stderr);
} else if (command === "import") {
  process.exitCode = await (await import("./ldif-import.ts")).importCommand(rest, stdout, stderr);
} else if (command === "export") {
  process.exitCode = await (await import("./ldif-export.ts")).exportCommand(rest, stdout, stderr);
} else if (command === "dns") {
  process.exitCode = await (await import("./dns.ts")).dnsCommand(rest, stdout, stderr);
} else if (command === "topology") {
  process.exitCode = await (await import("./topology.ts")).topologyCommand(rest, stdout, stderr);
} else {
  stderr.write(`plexus: unknown command '${command}' (run 'plexus --help' for the commands)\n`);
  process.exitCode = 2;
}
