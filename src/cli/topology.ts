import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { checkTopology } from "../core/topology/model.ts";
import { renderTopology } from "../core/topology/view.ts";
import { liveTopologyCommand } from "./repl.ts";

const usage =
  "usage: plexus topology --config FILE | --url URL | --zone ZONE [--dns-server HOST:PORT]... [--site NAME]";
/** A topology file larger than this is refused before it is read. */
const configBytesMax = 64 * 1024 * 1024;

interface Output {
  write(text: string): unknown;
}

/**
 * `plexus topology`: prints the text view of a topology file, or with --url the live topology
 * a node reads from its cn=config (src/cli/repl.ts). Returns the exit code.
 */
export function topologyCommand(
  args: readonly string[],
  stdout: Output,
  stderr: Output,
): number | Promise<number> {
  let values: {
    config?: string | undefined;
    url?: string | undefined;
    site?: string | undefined;
    help?: boolean | undefined;
  };
  try {
    ({ values } = parseArgs({
      args: [...args],
      options: {
        config: { type: "string" },
        url: { type: "string" },
        site: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
    }));
  } catch (error) {
    stderr.write(`plexus topology: ${(error as Error).message}\n${usage}\n`);
    return 2;
  }
  if (values.help === true) {
    stdout.write(
      `${usage}\nPrints sites, site links, subnets, bridgeheads, intra-site connections and the\nroutes between sites of a topology file (JSON; see examples/topology.json), or with\n--url the live topology read from that node's cn=config.\n`,
    );
    return 0;
  }
  if ((values.config === undefined) === (values.url === undefined)) {
    const problem =
      values.config === undefined
        ? "--config is required (or --url for the live topology)"
        : "give --config or --url, not both";
    stderr.write(`plexus topology: ${problem}\n${usage}\n`);
    return 2;
  }
  if (values.url !== undefined) return liveTopologyCommand(values.url, values.site, stdout, stderr);
  if (values.config === undefined) return 2;
  let raw: unknown;
  try {
    const text = readFileSync(values.config);
    if (text.length > configBytesMax) throw new Error(`larger than ${configBytesMax} bytes`);
    raw = JSON.parse(text.toString("utf8"));
  } catch (error) {
    stderr.write(`plexus topology: cannot read ${values.config}: ${(error as Error).message}\n`);
    return 1;
  }
  const config = checkTopology(raw);
  if (!config.ok) {
    stderr.write(`plexus topology: ${values.config}: ${config.error.message}\n`);
    return 1;
  }
  if (
    values.site !== undefined &&
    !config.value.sites.some((site) => site.name.toLowerCase() === values.site?.toLowerCase())
  ) {
    // A wrong argument, as with --url (repl.ts): bad usage.
    stderr.write(`plexus topology: no site named ${values.site} in ${values.config}\n${usage}\n`);
    return 2;
  }
  stdout.write(renderTopology(config.value, values.site === undefined ? {} : { site: values.site }));
  return 0;
}
