import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { OutcomeUnknownError } from "../client/client.ts";
import type { NodeId } from "../core/ids.ts";
import { checkReplicateBody } from "../edge/http/replicate.ts";
import { forEachBounded, nodeUrl, reportFailures, UsageError, usageErrorText } from "./cli-support.ts";
import {
  firstRdn,
  formatEntries,
  formatEntry,
  formatOutcome,
  ldifLine,
  parseAttributes,
  parseChanges,
} from "./entry-text.ts";
import { checkBaseUrl, connect } from "./remote.ts";
import { configSearcher } from "./repl.ts";
import {
  formatConflicts,
  formatDelta,
  formatReplStatus,
  formatSummary,
  originLags,
  originNames,
  parseOriginAges,
  parseStatus,
  type StatusView,
  summarize,
} from "./repl-text.ts";
import { startCommand } from "./start.ts";

/** The CLI's parsing and formatting, without a node: what people type and what they read. */
describe("entry command text", () => {
  it("parses type=value arguments, splitting at the first '=' and merging repeated types", () => {
    assert.deepEqual(parseAttributes(["objectClass=person", "cn=a=b", "CN=c", "description="]), {
      objectClass: ["person"],
      cn: ["a=b", "c"],
      description: [""],
    });
    assert.throws(() => parseAttributes(["novalue"]), /'novalue' is not type=value/);
    assert.throws(() => parseAttributes(["bad type=x"]), /'bad type' is not an attribute type/);
  });

  it("turns modify flags into changes in order, merging consecutive values", () => {
    assert.deepEqual(
      parseChanges([
        { operation: "add", text: "mail=a" },
        { operation: "add", text: "mail=b" },
        { operation: "delete", text: "description" },
        { operation: "replace", text: "sn=Smith" },
        { operation: "replace", text: "title" },
        { operation: "add", text: "mail=c" },
      ]),
      [
        { operation: "add", attribute: "mail", values: ["a", "b"] },
        { operation: "delete", attribute: "description" },
        { operation: "replace", attribute: "sn", values: ["Smith"] },
        { operation: "replace", attribute: "title", values: [] },
        { operation: "add", attribute: "mail", values: ["c"] },
      ],
    );
    assert.throws(() => parseChanges([{ operation: "add", text: "mail" }]), /not type=value/);
  });

  it("finds the first RDN of a DN, escaped commas included", () => {
    assert.equal(firstRdn("cn=a\\,b,dc=example,dc=com"), "cn=a\\,b");
    assert.equal(firstRdn("dc=com"), "dc=com");
  });

  it("prints entries as LDIF, base64 for values LDIF cannot carry as they are", () => {
    assert.equal(ldifLine("cn", "alice"), "cn: alice");
    assert.equal(ldifLine("cn", " lead"), `cn:: ${Buffer.from(" lead").toString("base64")}`);
    assert.equal(ldifLine("cn", "Zoë"), `cn:: ${Buffer.from("Zoë").toString("base64")}`);
    assert.equal(
      ldifLine("description", "two\nlines"),
      `description:: ${Buffer.from("two\nlines").toString("base64")}`,
    );
    const entry = { dn: "cn=a,dc=x", guid: "g", attributes: { cn: ["a"], mail: ["a@x", "b@x"] } };
    assert.equal(formatEntry(entry), "dn: cn=a,dc=x\ncn: a\nmail: a@x\nmail: b@x");
    assert.equal(
      formatEntries([entry], true),
      `${formatEntry(entry)}\n\n# 1 entry (truncated: the size limit was reached)\n`,
    );
    assert.equal(formatEntries([], false), "# 0 entries\n");
  });

  it("says what a write did and what its write concern reached", () => {
    const answer = { dn: "cn=a,dc=x", usn: 7, changed: 1 };
    assert.equal(
      formatOutcome("added", { ...answer, writeConcern: { requested: "local" } }),
      "added cn=a,dc=x (usn 7, 1 entry)\n",
    );
    assert.equal(
      formatOutcome("added", {
        ...answer,
        writeConcern: { requested: "site", met: true, nodes: ["e1", "e2"], sites: ["east"] },
      }),
      "added cn=a,dc=x (usn 7, 1 entry)\nwrite concern site: met on e1, e2 (sites east)\n",
    );
  });

  it("takes the node URL from --url, then PLEXUS_URL, and checks it", () => {
    assert.equal(nodeUrl("http://a:1", { PLEXUS_URL: "http://b:2" }), "http://a:1");
    assert.equal(nodeUrl(undefined, { PLEXUS_URL: "http://b:2" }), "http://b:2");
    assert.throws(() => nodeUrl(undefined, {}), UsageError);
    assert.equal(checkBaseUrl("http://127.0.0.1:8080/"), "http://127.0.0.1:8080");
    assert.throws(() => checkBaseUrl("ftp://127.0.0.1:8080"), /not an http/);
    assert.throws(() => checkBaseUrl("nonsense"), /not a URL/);
    // A path would be prefixed to every request (/v1/v1/status answers "no route").
    assert.throws(() => checkBaseUrl("http://127.0.0.1:8080/v1"), /without a path/);
    assert.throws(() => checkBaseUrl("http://127.0.0.1:8080/v1/status"), /without a path/);
  });

  it("follows a usage error with the synopsis and a pointer to --help, not every option", async () => {
    const usage = "usage: plexus x A\n          [--b]\n\n  --b   what b does\n  --c   what c does\n";
    assert.equal(
      usageErrorText("x", "bad thing", usage),
      "plexus x: bad thing\nusage: plexus x A\n          [--b]\n(plexus x --help for every option)\n",
    );
    // A usage of one paragraph is printed whole, with nothing to point to.
    assert.equal(usageErrorText("y", "bad", "usage: plexus y\n"), "plexus y: bad\nusage: plexus y\n");
    // plexus start's usage is a page long: a mistake in its flags shows the error first and last.
    let stderr = "";
    const code = await startCommand(
      ["--port", "nope"],
      { write: () => true },
      { write: (t: string) => (stderr += t) },
    );
    assert.equal(code, 2);
    assert.match(stderr, /^plexus start: --data is required\n/);
    assert.match(stderr, /\(plexus start --help for every option\)\n$/);
    assert.doesNotMatch(stderr, /--secret-file FILE {2}the cluster secret/);
  });

  it("reports a bad node URL as bad usage (exit 2), whichever command connects with it", async () => {
    // Commands that call connect() without wrapping its error (plexus dns) must still get a
    // sentence and exit code 2 from reportFailures, not a stack trace.
    for (const url of ["nonsense", "http://127.0.0.1:8080/v1"]) {
      let stderr = "";
      const code = await reportFailures(
        "test",
        "usage: plexus test",
        { write: (t: string) => (stderr += t) },
        () =>
          connect(url)
            .status()
            .then(() => 0),
      );
      assert.equal(code, 2, url);
      assert.match(stderr, /^plexus test: '.*' (is not a URL|must be the node's address)/, url);
    }
  });

  it("reports a write whose outcome is unknown (--zone) apart from an unreachable node: exit 4", async () => {
    let stderr = "";
    const unknown = new OutcomeUnknownError(
      "POST /v1/entries",
      "http://127.0.0.1:9",
      { kind: "generic" },
      "the connection was reset",
      [],
    );
    // As a --zone command's fetch through the client library raises it.
    const api = connect("http://zone.test", async () => Promise.reject(unknown), "any node of the zone");
    const code = await reportFailures("add", "usage", { write: (t: string) => (stderr += t) }, () =>
      api.status().then(() => 0),
    );
    assert.equal(code, 4);
    assert.match(
      stderr,
      /^plexus: outcome unknown: POST \/v1\/entries may have been applied on http:\/\/127\.0\.0\.1:9/,
    );
  });
});

const partner = (node: string, extra: Record<string, unknown> = {}) => ({
  node,
  url: `http://${node}`,
  kind: "intra",
  site: "east",
  pulling: false,
  lastSuccessAt: "2026-01-01T00:00:50.000Z",
  lastFailureAt: null,
  lastFailure: null,
  consecutiveFailures: 0,
  ...extra,
});

function status(
  node: string,
  invocationId: string,
  usn: number,
  utd: Record<string, number>,
  partners: unknown[],
  originatedUsn?: number,
): StatusView {
  const parsed = parseStatus({
    node,
    site: "east",
    url: `http://${node}`,
    ready: true,
    invocationId,
    usn,
    ...(originatedUsn === undefined ? {} : { originatedUsn }),
    utd,
    partners,
  });
  assert.ok(parsed !== null);
  return parsed;
}

describe("replication health text", () => {
  const now = Date.parse("2026-01-01T00:01:00.000Z");

  it("formats deltas like a person would say them", () => {
    assert.deepEqual([0, 45_000, 192_000, 7_380_000, 370_800_000].map(formatDelta), [
      "0s",
      "45s",
      "3m12s",
      "2h03m",
      "4d07h",
    ]);
  });

  it("refuses a status that is not one", () => {
    assert.equal(parseStatus({ node: "x" }), null);
    assert.equal(parseStatus("nope"), null);
    assert.equal(parseStatus({ node: "x", invocationId: "i", utd: {}, partners: [{ url: 1 }] }), null);
  });

  it("shows per origin what a node has against its partners", () => {
    const self = status("e1", "aaaa", 10, { aaaa: 10, bbbb: 4 }, [partner("e2")]);
    const e2 = status("e2", "bbbb", 7, { aaaa: 9, bbbb: 7 }, [partner("e1")]);
    const lags = originLags(self, new Map([["e2", e2]]), originNames([self, e2], []));
    assert.deepEqual(
      lags.map((lag) => [lag.node, lag.here, lag.partners.e2, lag.behind]),
      [
        ["e1", 10, 9, 0],
        ["e2", 4, 7, 3],
      ],
    );
    const text = formatReplStatus(self, lags, new Map(), now);
    assert.match(text, /last success: {10}2026-01-01T00:00:50.000Z \(10s ago\)/);
    assert.match(text, /e1 \(this node\) +aaaa +10 +9 +0/);
    assert.match(text, /e2 +bbbb +4 +7 +3/);
    const unknown = originLags(self, new Map([["e2", null]]), new Map());
    assert.match(
      formatReplStatus(self, unknown, new Map([["e2", "refused"]]), now),
      /\? +bbbb +4 +\? +0[\s\S]*/,
    );
  });

  it("reads per-origin ages from /metrics and shows how much older the newest change here is", () => {
    const metrics = [
      "# HELP plexus_origin_last_change_age_seconds Seconds since ...",
      'plexus_origin_last_change_age_seconds{origin="aaaa",origin_node="e1",node="e2",site="east"} 12.5',
      'plexus_origin_last_change_age_seconds{origin="bbbb",origin_node="e2",node="e2",site="east"} 2',
      'plexus_origin_utd_usn{origin="aaaa",origin_node="e1",node="e2",site="east"} 9',
    ].join("\n");
    assert.deepEqual(
      [...parseOriginAges(metrics)],
      [
        ["aaaa", 12_500],
        ["bbbb", 2_000],
      ],
    );
    const self = status("e1", "aaaa", 10, { aaaa: 10, bbbb: 4 }, [partner("e2")]);
    const e2 = status("e2", "bbbb", 7, { aaaa: 9, bbbb: 7 }, [partner("e1")]);
    const ages = new Map([
      ["e1", new Map([["bbbb", 30_000]])],
      ["e2", parseOriginAges(metrics)],
    ]);
    const lags = originLags(self, new Map([["e2", e2]]), new Map(), ages);
    assert.deepEqual(
      lags.map((lag) => [lag.invocation, lag.behind, lag.newestAgeMs, lag.timeBehindMs]),
      [
        ["aaaa", 0, null, 0],
        ["bbbb", 3, 30_000, 28_000],
      ],
    );
    assert.match(formatReplStatus(self, lags, new Map(), now), /\? +bbbb +4 +7 +3 +30s ago +28s\n/);
  });

  it("measures time behind against the origin's own newest change when its partners lack it too", () => {
    // A site cut off from hq: e1 and its partner e2 both hold hq1's changes up to USN 60 (made
    // 250 s ago); hq1 has made three more since, the newest 5 s ago. Against e2 alone, e1
    // would look 0 s behind while 3 changes behind.
    const e1 = status("e1", "aaaa", 70, { aaaa: 70, hhhh: 60 }, [partner("e2")], 70);
    const e2 = status("e2", "bbbb", 71, { aaaa: 70, bbbb: 71, hhhh: 60 }, [partner("e1")], 71);
    const hq1 = status("hq1", "hhhh", 63, { hhhh: 63 }, [], 63);
    const ages = new Map([
      ["e1", new Map([["hhhh", 250_000]])],
      ["e2", new Map([["hhhh", 250_000]])],
      ["hq1", new Map([["hhhh", 5_000]])],
    ]);
    const lags = originLags(e1, new Map([["e2", e2]]), new Map(), ages, [hq1]);
    const hq = lags.find((lag) => lag.invocation === "hhhh");
    assert.deepEqual([hq?.behind, hq?.timeBehindMs], [3, 245_000]);
  });

  it("counts as behind only the changes an origin made, not the USNs it took to apply others'", () => {
    // e1 made changes up to USN 10 and applied e2's up to its USN 20; e2 made up to 9 (USN 15).
    const e1 = status("e1", "aaaa", 20, { aaaa: 20, bbbb: 9, cccc: 30 }, [partner("e2")], 10);
    const e2 = status("e2", "bbbb", 15, { aaaa: 12, bbbb: 15, cccc: 28 }, [partner("e1")], 9);
    const fromE1 = originLags(e1, new Map([["e2", e2]]), new Map());
    assert.deepEqual(
      fromE1.map((lag) => [lag.invocation, lag.here, lag.partners.e2, lag.behind]),
      [
        ["aaaa", 20, 12, 0],
        ["bbbb", 9, 15, 0],
        ["cccc", 30, 28, 0],
      ],
    );
    // cccc's node was not asked: the most any asked node has stands in for its newest change.
    const fromE2 = originLags(e2, new Map([["e1", e1]]), new Map());
    assert.deepEqual(
      fromE2.map((lag) => [lag.invocation, lag.behind]),
      [
        ["aaaa", 0],
        ["bbbb", 0],
        ["cccc", 2],
      ],
    );
    assert.deepEqual(summarize([e1, e2], now).behind, { e1: 0, e2: 2 });
    // e1 makes a change (USN 21) that e2 has not pulled yet.
    const e1Later = status("e1", "aaaa", 21, { aaaa: 21, bbbb: 9, cccc: 30 }, [partner("e2")], 21);
    const missing = originLags(e2, new Map([["e1", e1Later]]), new Map());
    assert.equal(missing.find((lag) => lag.invocation === "aaaa")?.behind, 9);
    assert.deepEqual(summarize([e1Later, e2], now).behind, { e1: 0, e2: 11 });
  });

  it("summarizes largest deltas and failures per source and destination", () => {
    const e1 = status("e1", "aaaa", 10, { aaaa: 10, bbbb: 5 }, [
      partner("e2", {
        consecutiveFailures: 3,
        lastFailureAt: "2026-01-01T00:00:59.000Z",
        lastFailure: "connection refused",
      }),
      partner("w1", { lastSuccessAt: null }),
    ]);
    const w1 = status("w1", "cccc", 2, { aaaa: 8, cccc: 2 }, [partner("e1")]);
    const summary = summarize([e1, w1], now);
    assert.deepEqual(summary.destinations, [
      { node: "e1", largestDeltaMs: null, fails: 1, total: 2, error: "connection refused" },
      { node: "w1", largestDeltaMs: 10_000, fails: 0, total: 1, error: null },
    ]);
    assert.deepEqual(
      summary.sources.map((row) => [row.node, row.fails, row.total]),
      [
        ["e1", 0, 1],
        ["e2", 1, 1],
        ["w1", 0, 1],
      ],
    );
    assert.deepEqual(summary.behind, { e1: 2, w1: 7 });
    const text = formatSummary(summary, new Map([["e2", "cannot reach http://e2: connection refused"]]));
    assert.match(text, /e1 +never +1 \/ 2 +50 +2 +connection refused/);
    assert.match(text, /w1 +10s +0 \/ 1 +0 +7\n/);
    assert.match(text, /Unreachable \(1\):\n {2}e2: cannot reach/);
  });

  it("lists conflicts with what they claimed", () => {
    assert.equal(formatConflicts([]), "# 0 conflicts\n");
    assert.equal(
      formatConflicts([
        {
          kind: "name",
          dn: "cn=alice\\0ACNF:ab12,dc=x",
          guid: "ab12",
          claimedRdn: "cn=alice",
          claimedParent: "cd34",
          claimedParentDn: "dc=x",
        },
        {
          kind: "orphan",
          dn: "cn=bob,cn=LostAndFound,dc=x",
          guid: "ef56",
          claimedRdn: "cn=bob",
          claimedParent: "9a78",
          claimedParentDn: null,
        },
      ]),
      "name  cn=alice\\0ACNF:ab12,dc=x\n  claimed: cn=alice under dc=x  (guid ab12)\n" +
        "orphan  cn=bob,cn=LostAndFound,dc=x\n  claimed: cn=bob under the entry 9a78, which this node does not hold  (guid ef56)\n" +
        "# 2 conflicts\n",
    );
  });

  it("reads the topology's objects from one fetched cn=config", () => {
    const searcher = configSearcher([
      { dn: "cn=sites,cn=config", guid: "1", attributes: { objectClass: ["container"] } },
      {
        dn: "cn=East, cn=sites,cn=config",
        guid: "2",
        attributes: { objectClass: ["plexusSite"], cn: ["East"] },
      },
      { dn: "cn=x,cn=east,cn=sites,cn=config", guid: "3", attributes: { objectClass: ["plexusSite"] } },
    ]);
    const found = searcher.search({
      base: "cn=sites,cn=config",
      scope: "one",
      filter: "(objectClass=plexusSite)",
    });
    assert.ok(found.ok);
    assert.deepEqual(
      found.value.entries.map((entry) => entry.dn),
      ["cn=East, cn=sites,cn=config"],
    );
  });

  it("checks POST /v1/replicate bodies", () => {
    const partners = ["e2" as NodeId];
    assert.deepEqual(checkReplicateBody(undefined, partners), { from: null, timeoutMs: 10_000 });
    assert.deepEqual(checkReplicateBody({ from: "e2", timeoutMs: 5 }, partners), {
      from: "e2",
      timeoutMs: 5,
    });
    for (const bad of [{ from: "w9" }, { timeoutMs: 0 }, { timeoutMs: 60_001 }, { other: 1 }, []]) {
      const checked = checkReplicateBody(bad, partners);
      assert.ok("code" in checked && checked.code === "invalid-request", JSON.stringify(bad));
    }
  });

  it("asks other nodes a bounded number at a time, every one of them once", async () => {
    const items = Array.from({ length: 100 }, (_, index) => index);
    let running = 0;
    let most = 0;
    const done: number[] = [];
    await forEachBounded(items, 7, async (item) => {
      running++;
      most = Math.max(most, running);
      await new Promise((resolve) => setTimeout(resolve, item % 3));
      running--;
      done.push(item);
    });
    assert.equal(most, 7);
    assert.deepEqual(
      [...done].sort((a, b) => a - b),
      items,
    );
    await forEachBounded([], 7, async () => assert.fail("no items, no task"));
    let once = 0;
    await forEachBounded(["a"], 0, async () => {
      once++;
    });
    assert.equal(once, 1, "a limit below 1 still runs the tasks, one at a time");
  });
});
