import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { entryPath, eventually, http, LocalCluster } from "../../test/support/cluster.ts";
import { minuteOfWeek } from "../core/node/partners.ts";

/**
 * A site link's weekly schedule between two real node processes (east: e1, west: w1): while it
 * is closed nothing crosses, and the minute it opens w1 pulls. w1 starts at second 25 of a
 * minute and the window opens at the next full minute, so a node that noticed the window only
 * on a wake a minute after its own start (or its last commit or peer request) would pull about
 * half a minute late. The test takes 40 to 100 seconds.
 */
const msPerMinute = 60_000;
/** e1 is started and serving before w1 starts. */
const e1StartMs = 10_000;
/** w1 starts this far into a minute, which is when its once-a-minute wakes would come. */
const w1StartSecondMs = 25_000;
/** How soon after the window opens the write must be on w1 (the pull is due at once). */
const openedWithinMs = 5_000;
const base = "dc=example,dc=com";

describe("a site link's schedule between node processes", { timeout: 180_000 }, () => {
  const earliest = Date.now() + e1StartMs;
  const minuteStart = Math.floor(earliest / msPerMinute) * msPerMinute;
  const startW1At =
    minuteStart + w1StartSecondMs + (earliest - minuteStart > w1StartSecondMs ? msPerMinute : 0);
  const opensAtWall = Math.ceil(startW1At / msPerMinute) * msPerMinute;
  const opens = minuteOfWeek(opensAtWall);
  const topology = {
    sites: [{ name: "east" }, { name: "west" }],
    links: [
      {
        name: "east-west",
        sites: ["east", "west"],
        cost: 10,
        intervalMinutes: 15,
        schedule: [{ fromMinute: opens, toMinute: opens + 2 }],
      },
    ],
    settings: { intraSitePullIntervalMs: 60_000, notifyDelayMs: 5 },
  };
  const cluster = new LocalCluster(topology, { pullTimeoutMs: 3_000 });

  after(async () => {
    await cluster.stopAll();
  });

  it("pulls nothing while the window is closed, and at once when it opens", async (context) => {
    if (opens + 2 > 7 * 24 * 60) {
      context.skip("the window would wrap around the end of the week");
      return;
    }
    const e1 = await cluster.start("e1", "east");
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, startW1At - Date.now())));
    const w1 = await cluster.start("w1", "west", { join: [e1.url] });
    const dn = `cn=scheduled,${base}`;
    const written = await http("POST", `${e1.url}/v1/entries`, {
      dn,
      attributes: { objectClass: ["person"], cn: ["scheduled"], sn: ["s"] },
    });
    assert.equal(written.status, 201, JSON.stringify(written.body));
    assert.ok(Date.now() < opensAtWall, "the write came before the window opened");
    await new Promise((resolve) => setTimeout(resolve, opensAtWall - Date.now() - 1_000));
    assert.equal((await http("GET", entryPath(w1.url, dn))).status, 404, "nothing crossed while closed");
    const status = (await http("GET", `${w1.url}/v1/status`)).body as { partners: unknown[] };
    assert.deepEqual(status.partners, [], "no partner across a closed link");
    await eventually(
      "w1 holding the write once the window opened",
      async () => (await http("GET", entryPath(w1.url, dn))).status === 200,
      openedWithinMs + 1_000,
    );
    const late = Date.now() - opensAtWall;
    assert.ok(late <= openedWithinMs, `arrived ${late} ms after the window opened`);
  });
});
