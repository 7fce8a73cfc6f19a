import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { startOptions } from "./start.ts";

/** `plexus start`'s flags and config file: what each becomes, and a sentence for each bad one. */
describe("plexus start options", () => {
  const secret = "a cluster secret long enough for its minimum";
  const env = { PLEXUS_CLUSTER_SECRET: secret };
  const minimal = ["--data", "d", "--node", "n1", "--site", "hq"];
  let directory: string;
  before(() => {
    directory = mkdtempSync(join(tmpdir(), "plexus-start-options-"));
  });
  after(() => rmSync(directory, { recursive: true, force: true }));

  function file(name: string, content: unknown): string {
    const path = join(directory, name);
    writeFileSync(path, typeof content === "string" ? content : JSON.stringify(content));
    return path;
  }

  it("fills in the defaults around the three required flags", () => {
    const options = startOptions(minimal, env);
    assert.equal(options.dataDirectory, "d");
    assert.equal(options.node, "n1");
    assert.equal(options.site, "hq");
    assert.equal(options.host, "127.0.0.1");
    assert.equal(options.port, 0);
    assert.deepEqual(options.join, []);
    assert.equal(options.newSite, false, "a site the topology lacks is refused unless asked for");
    assert.deepEqual(options.partitions, ["dc=example,dc=com"], "a new directory gets the example partition");
    assert.equal(options.synchronous, "full");
    assert.equal(options.pageWorker, true);
    assert.equal(options.logLevel, "info");
    assert.equal(options.logFormat, "json");
    assert.equal(Buffer.from(options.secret).toString(), secret);
  });

  it("takes every field from a config file, and a flag wins over the file", () => {
    const config = file("config.json", {
      data: "from-file",
      node: "n2",
      site: "east",
      host: "127.0.0.2",
      port: 7000,
      join: ["http://127.0.0.1:7001"],
      newSite: true,
      secretFile: file("secret", `${secret}\n`),
      synchronous: "normal",
      pageWorker: false,
      logLevel: "warn",
      logFormat: "pretty",
    });
    const options = startOptions(["--config", config, "--port", "7002"], {});
    assert.equal(options.dataDirectory, join(directory, "from-file"), "relative to the config file");
    assert.equal(options.host, "127.0.0.2");
    assert.equal(options.port, 7002);
    assert.deepEqual(options.join, ["http://127.0.0.1:7001"]);
    assert.equal(options.newSite, true);
    assert.deepEqual(options.partitions, [], "a joining node takes the directory's partitions");
    assert.equal(options.synchronous, "normal");
    assert.equal(options.pageWorker, false);
    assert.equal(options.logFormat, "pretty");
    assert.equal(Buffer.from(options.secret).toString(), secret, "trimmed");
  });

  it("--new-site asks a joining node's admitter to create its site; the file's newSite is let be on a first node", () => {
    const joining = [...minimal, "--join", "http://127.0.0.1:7001"];
    assert.equal(startOptions([...joining, "--new-site"], env).newSite, true);
    assert.equal(startOptions(joining, env).newSite, false);
    // One config file may serve every node: its newSite on the first node is not an error.
    const shared = file("shared.json", { newSite: true });
    assert.deepEqual(startOptions([...minimal, "--config", shared], env).join, []);
    const fileSaysNo = file("no-new-site.json", { newSite: false, join: ["http://127.0.0.1:7001"] });
    assert.equal(
      startOptions([...minimal, "--config", fileSaysNo, "--new-site"], env).newSite,
      true,
      "the flag wins",
    );
  });

  it("reads a config file's relative paths from its own directory, absolute ones as they are", () => {
    const nested = join(directory, "etc");
    mkdirSync(nested, { recursive: true });
    writeFileSync(join(directory, "cluster.secret"), `${secret}\n`);
    writeFileSync(join(nested, "topology.json"), JSON.stringify({ sites: [{ name: "hq" }] }));
    const config = join(nested, "plexus.json");
    writeFileSync(
      config,
      JSON.stringify({
        data: "../var/n1",
        node: "n1",
        site: "hq",
        secretFile: "../cluster.secret",
        topology: "topology.json",
      }),
    );
    const options = startOptions(["--config", config], {});
    assert.equal(options.dataDirectory, join(directory, "var", "n1"));
    assert.equal(Buffer.from(options.secret).toString(), secret);
    assert.deepEqual(options.topology, { sites: [{ name: "hq" }] });
    const absolute = file("absolute.json", { data: "/srv/plexus/n1", node: "n1", site: "hq" });
    assert.equal(startOptions(["--config", absolute], env).dataDirectory, "/srv/plexus/n1");
    assert.equal(
      startOptions(["--config", absolute, "--data", "relative-flag"], env).dataDirectory,
      "relative-flag",
      "a flag is taken from where plexus start runs, as flags are",
    );
  });

  it("refuses each bad input with a sentence that names it", () => {
    const cases: [string[], NodeJS.ProcessEnv, RegExp][] = [
      [["--node", "n1", "--site", "hq"], env, /^--data is required$/],
      [["--data", "d", "--node", "N 1", "--site", "hq"], env, /^--node must be a node id/],
      [["--data", "d", "--node", "n1", "--site", "not a label"], env, /^--site must be a site name/],
      [[...minimal, "--host", "0.0.0.0"], env, /^--host must be one IP address/],
      [[...minimal, "--host", "localhost"], env, /^--host must be one IP address/],
      [[...minimal, "--port", "70000"], env, /^--port must be 0\.\.65535$/],
      [[...minimal, "--port=-1"], env, /^--port must be 0\.\.65535$/],
      [[...minimal, "--join", "nope"], env, /^--join nope is not a URL$/],
      [[...minimal, "--join", "https://127.0.0.1:1"], env, /only http:\/\/ URLs are supported$/],
      [[...minimal, "--join", "http://127.0.0.1:1/plexus"], env, /without a path \(http:\/\/HOST:PORT\)$/],
      [[...minimal, "--join", "http://127.0.0.1:1?x=1"], env, /without a path/],
      [minimal, {}, /^a cluster secret is required/],
      [minimal, { PLEXUS_CLUSTER_SECRET: "short" }, /^the cluster secret must hold at least \d+ bytes$/],
      [[...minimal, "--synchronous", "off"], env, /^--synchronous must be full or normal$/],
      [[...minimal, "--page-worker", "yes"], env, /^--page-worker must be on or off$/],
      [[...minimal, "--log-level", "loud"], env, /^--log-level must be debug, info, warn or error$/],
      [[...minimal, "--log-format", "xml"], env, /^--log-format must be json or pretty$/],
      [[...minimal, "--topology", file("list.json", [])], env, /^the topology must be a JSON object$/],
      [
        [...minimal, "--config", file("unknown.json", { colour: "red" })],
        env,
        /^unknown config field colour$/,
      ],
      [[...minimal, "--config", file("array.json", [1])], env, /^the config file must hold a JSON object$/],
      [
        [...minimal, "--config", file("bad-worker.json", { pageWorker: "on" })],
        env,
        /^pageWorker must be true or false$/,
      ],
      [[...minimal, "--colour"], env, /Unknown option '--colour'/],
      // The first node creates its site anyway: the flag would suggest it did something.
      [[...minimal, "--new-site"], env, /^--new-site is for a joining node \(with --join\)/],
      [[...minimal, "--new-site=yes"], env, /--new-site' does not take an argument/],
      [
        [...minimal, "--config", file("bad-new-site.json", { newSite: "yes", join: ["http://127.0.0.1:1"] })],
        env,
        /^newSite must be true or false$/,
      ],
      [[...minimal, "--partition", "notadn"], env, /^--partition notadn is not a DN \(missing '='/],
      // First-node options on a joining node would be ignored without a word.
      [
        [...minimal, "--join", "http://127.0.0.1:1", "--partition", "dc=new,dc=com"],
        env,
        /^--partition and --topology are for the first node only/,
      ],
      [
        [...minimal, "--join", "http://127.0.0.1:1", "--topology", file("joiner-topology.json", {})],
        env,
        /^--partition and --topology are for the first node only/,
      ],
      // A file that cannot be read is named with the option that gave it, not as a bare ENOENT.
      [
        [...minimal, "--config", join(directory, "missing.json")],
        env,
        /^cannot read the config file .*missing\.json: no such file$/,
      ],
      [[...minimal, "--config", directory], env, /^cannot read the config file .*: it is a directory$/],
      [
        [...minimal, "--secret-file", join(directory, "missing.secret")],
        env,
        /^cannot read the secret file .*missing\.secret: no such file$/,
      ],
      [
        [...minimal, "--topology", join(directory, "missing-topology.json")],
        env,
        /^cannot read the topology file .*missing-topology\.json: no such file$/,
      ],
      [
        [...minimal, "--config", file("config-missing-secret.json", { secretFile: "nowhere.secret" })],
        {},
        /^cannot read the secret file .*nowhere\.secret: no such file$/,
      ],
    ];
    for (const [args, environment, message] of cases)
      assert.throws(() => startOptions(args, environment), { message }, args.join(" "));
  });
});
