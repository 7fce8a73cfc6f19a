import { dnsPartition } from "../core/directory/partition.ts";
import type { NodeId } from "../core/ids.ts";
import type { Health } from "../core/locator/answer.ts";
import type { ZoneSet } from "../core/locator/records.ts";
import { canonicalName } from "../core/locator/records.ts";
import {
  healthOf,
  type LocatorSettings,
  missingOwnEntries,
  type NodeEndpoint,
  registrationWrites,
  scavenge,
  type WantedRecord,
  wantedRecords,
} from "../core/locator/registration.ts";
import { type CompiledZones, compileZones, dnsEntriesFilter, dnsEntriesMax } from "../core/locator/zone.ts";
import type { WriteRequest } from "../core/replica/originating.ts";
import type { EntryView, SearchRequest, SearchResult } from "../core/replica/read.ts";
import type { Result } from "../core/result.ts";
import type { TopologyConfig } from "../core/topology/model.ts";
import { type DnsServer, startDnsServer, type ZoneSource, type ZoneView } from "../edge/dns/server.ts";
import { errorText, type Logger } from "./log.ts";
import { monotonicClock, systemClock } from "./ports.ts";

/**
 * The locator inside a node process: serves DNS from the replica's `dns` partition (compiled
 * again when the replica changed, at most every zoneRecompileMs), keeps this node's records
 * registered and refreshed, and scavenges other nodes' stale records, on a timer. Decisions
 * are the core's (core/locator); this class reads, times and writes.
 */
export interface LocatorOptions {
  /** Where DNS listens (UDP and TCP on one port; 0 picks a free one). */
  readonly host: string;
  readonly port: number;
  readonly settings: LocatorSettings;
  /** 0 turns the per-source rate limit off. */
  readonly queriesPerSecondPerSource: number;
}

/** What the locator needs from its node. */
export interface LocatorHost {
  search(request: SearchRequest): Result<SearchResult>;
  /**
   * Changes committed to the dns partition (Replica.changesIn): the zones are compiled again
   * when it moves. Not the replica's USN, which every data write moves: under write load the
   * zones would be read again, and the answer cache dropped, every zoneRecompileMs.
   */
  dnsChanges(): number;
  topology(): TopologyConfig | null;
  partners(): readonly { readonly partner: NodeId; readonly consecutiveFailures: number }[];
  /** Consecutive failed pulls after which a partner counts as unreachable. */
  unreachableAfterFailures(): number;
  write(request: WriteRequest): Promise<Result<unknown>>;
  readonly log: Logger;
}

/** A changing replica is compiled into zones at most this often (answers may lag it by this much). */
export const zoneRecompileMs = 100;
/** The health view (partner failures) is looked at again at most this often. */
const healthRefreshMs = 100;
/** Registration and scavenging passes run at least this often (and at most every second). */
const registrationPassMaxMs = 30_000;
/**
 * How often the locator looks whether the topology changed: a change (a node joined an empty
 * site this one covered, a server was removed) gets a pass at once, not at the next interval.
 */
const topologyCheckMs = 1_000;
/** A pass to write back this node's own records, gone from the replica, comes at most this often (ms). */
const ownRecordsRewriteMs = 5_000;

export class NodeLocator implements ZoneSource {
  private compiled: CompiledZones = compileZones([]);
  /** What is answered: the compiled zones, plus this node's own records the replica lacks. */
  private served: ZoneSet = this.compiled.set;
  /** The replica lacks some of this node's records: the next pass runs without waiting. */
  private ownMissing = false;
  private compiledChanges = Number.NaN;
  private compiledAt = Number.NEGATIVE_INFINITY;
  private health: Health = { unhealthy: new Set() };
  private healthKey = "";
  private healthAt = Number.NEGATIVE_INFINITY;
  private generation = 0;
  private current: ZoneView;
  private timer: NodeJS.Timeout | null = null;
  private passing = false;
  private passedAt = Number.NEGATIVE_INFINITY;
  private passedTopology: TopologyConfig | null = null;
  /**
   * The nodes with records in the zone (registeredKey) as the last pass found them, and as its
   * writes were to leave them: a pass runs when the replica shows another set than both (a
   * node's records arrived or went), and not again for writes of its own that failed.
   */
  private registeredBeforePass = "";
  private registeredAfterPass = "";
  private closed = false;
  private lastProblems = "";
  private lastReadFailure = "";
  private registered = { writes: 0, scavenged: 0, lastPassAt: null as string | null };

  private constructor(
    private readonly host: LocatorHost,
    private readonly options: LocatorOptions,
    private readonly endpoint: NodeEndpoint,
    private server: DnsServer | null = null,
  ) {
    this.current = { generation: 0, zones: this.served, health: this.health };
  }

  static async start(
    host: LocatorHost,
    options: LocatorOptions,
    endpoint: NodeEndpoint,
  ): Promise<NodeLocator> {
    const locator = new NodeLocator(host, options, endpoint);
    locator.server = await startDnsServer({
      host: options.host,
      port: options.port,
      source: locator,
      log: host.log,
      queriesPerSecondPerSource: options.queriesPerSecondPerSource,
    });
    locator.schedule(0);
    return locator;
  }

  get address(): string {
    return this.server?.address ?? "";
  }

  view(): ZoneView {
    const now = monotonicClock.now();
    if (this.host.dnsChanges() !== this.compiledChanges && now - this.compiledAt >= zoneRecompileMs)
      this.recompile(now);
    if (now - this.healthAt >= healthRefreshMs) {
      this.healthAt = now;
      const health = healthOf(this.host.partners(), this.host.unreachableAfterFailures());
      const key = [...health.unhealthy].sort().join(",");
      if (key !== this.healthKey) {
        this.healthKey = key;
        this.health = health;
        this.publish();
      }
    }
    return this.current;
  }

  /** What the DNS server answers from from now on; a new generation drops its cached answers. */
  private publish(): void {
    this.generation++;
    this.current = { generation: this.generation, zones: this.served, health: this.health };
  }

  private recompile(now: number): void {
    this.compiledChanges = this.host.dnsChanges();
    this.compiledAt = now;
    const found = this.host.search({
      base: dnsPartition,
      scope: "sub",
      filter: dnsEntriesFilter,
      sizeLimit: dnsEntriesMax,
    });
    // No dns partition (yet): no zones. Any other failure keeps the last zones read, which is
    // better than answering REFUSED for all of them; the next view tries again.
    if (!found.ok && found.error.code !== "no-such-entry") {
      this.compiledChanges = Number.NaN;
      if (found.error.message !== this.lastReadFailure)
        this.host.log.log("warn", "dns-zone-read-failed", { error: found.error.message });
      this.lastReadFailure = found.error.message;
      return;
    }
    this.lastReadFailure = "";
    const entries = found.ok ? found.value.entries : [];
    const compiled = compileZones(entries);
    this.compiled =
      found.ok && found.value.truncated
        ? {
            ...compiled,
            problems: [
              `the dns partition holds more than ${dnsEntriesMax} zone and record entries: the rest are left out`,
              ...compiled.problems,
            ],
          }
        : compiled;
    this.served = this.withOwnRecords(entries);
    this.publish();
    const problems = this.compiled.problems.join("\n");
    if (problems !== this.lastProblems && this.compiled.problems.length > 0)
      this.host.log.log("warn", "dns-zone-problems", { problems: this.compiled.problems.slice(0, 20) });
    this.lastProblems = problems;
  }

  /**
   * The zones to answer from: those compiled, and when the replica lacks records this node
   * wants (deleted by other nodes' scavenging that arrived with a heal, say), the zones
   * compiled again with them, so that this node answers for itself until its pass has
   * written them back (ownMissing makes that pass come at once).
   */
  private withOwnRecords(entries: readonly EntryView[]): ZoneSet {
    const topology = this.host.topology();
    const { settings } = this.options;
    const missing =
      topology === null
        ? []
        : missingOwnEntries(
            this.compiled.records,
            this.compiled.set.zones.has(canonicalName(settings.zone)),
            this.wanted(topology),
            this.endpoint.node,
            settings,
            systemClock.now(),
          );
    this.ownMissing = missing.length > 0;
    return missing.length === 0 ? this.compiled.set : compileZones([...entries, ...missing]).set;
  }

  /**
   * This node's records as the topology and the nodes registered in the replica want them.
   * This node counts as registered (it writes its records in the same pass), so that its own
   * site is served, and the empty sites it covers are registered, from its first pass on.
   * Records in `leaving` (being scavenged) do not count: a site whose only node's records go
   * is covered in the same pass, not one pass interval later.
   */
  private wanted(topology: TopologyConfig, leaving: ReadonlySet<string> = new Set()): WantedRecord[] {
    const registered = this.registeredNodes(leaving);
    registered.add(this.endpoint.node);
    return wantedRecords(topology, this.endpoint, this.options.settings, (node) => registered.has(node));
  }

  /** Nodes with records in the compiled zones, records whose DN is in `leaving` left out. */
  private registeredNodes(leaving: ReadonlySet<string> = new Set()): Set<string> {
    return new Set(
      this.compiled.records.flatMap((record) =>
        record.node === undefined || leaving.has(record.dn) ? [] : [record.node],
      ),
    );
  }

  /** Registered nodes as one comparable text. */
  private static nodesKey(nodes: ReadonlySet<string>): string {
    return [...nodes].sort().join(",");
  }

  status(): unknown {
    this.view();
    const stats = this.server?.stats();
    return {
      address: this.address,
      zone: canonicalName(this.options.settings.zone),
      zones: [...this.compiled.set.zones.keys()],
      records: this.compiled.records.length,
      problems: this.compiled.problems.slice(0, 20),
      unhealthy: [...this.health.unhealthy],
      registration: this.registered,
      queries: stats ?? null,
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer !== null) clearTimeout(this.timer);
    await this.server?.close();
  }

  private schedule(delayMs: number): void {
    if (this.closed) return;
    this.timer = setTimeout(() => void this.pass(), delayMs);
  }

  private passIntervalMs(): number {
    return Math.max(1_000, Math.min(registrationPassMaxMs, Math.floor(this.options.settings.refreshMs / 4)));
  }

  /**
   * One registration and scavenging pass when the topology changed, the nodes with records in
   * the zone changed (site coverage moves: a node's records arrived in a site this one covers,
   * or this node's first records made its own site served), or the interval passed; the next
   * check is scheduled whatever happens in this one.
   */
  private async pass(): Promise<void> {
    if (this.closed || this.passing) return;
    this.passing = true;
    try {
      const topology = this.host.topology();
      // Compiles what replicated since the last query, which tells whether own records went.
      this.view();
      const since = monotonicClock.now() - this.passedAt;
      // Own records gone: written back soon (they are answered from memory meanwhile), but not
      // every second while the writes keep failing (each failure is a warning in the log).
      const due = since >= this.passIntervalMs() || (this.ownMissing && since >= ownRecordsRewriteMs);
      const registered = NodeLocator.nodesKey(this.registeredNodes());
      const coverageMoved =
        registered !== this.registeredBeforePass && registered !== this.registeredAfterPass;
      if (topology !== null && (due || coverageMoved || topology !== this.passedTopology)) {
        this.passedAt = monotonicClock.now();
        this.passedTopology = topology;
        await this.register(topology);
      }
    } catch (error) {
      this.host.log.log("warn", "dns-registration-failed", { error: errorText(error) });
    } finally {
      this.passing = false;
      this.schedule(topologyCheckMs);
    }
  }

  private async register(topology: TopologyConfig): Promise<void> {
    this.recompile(monotonicClock.now());
    const nowMs: number = systemClock.now();
    const { settings } = this.options;
    const zoneExists = this.compiled.set.zones.has(canonicalName(settings.zone));
    const stale = scavenge(this.compiled.records, topology, this.endpoint.node, settings, nowMs);
    const leaving = new Set(stale.map((found) => found.dn));
    const wanted = this.wanted(topology, leaving);
    this.registeredBeforePass = NodeLocator.nodesKey(this.registeredNodes());
    const after = this.registeredNodes(leaving);
    if (wanted.length > 0) after.add(this.endpoint.node);
    else after.delete(this.endpoint.node);
    this.registeredAfterPass = NodeLocator.nodesKey(after);
    const writes = registrationWrites(
      this.compiled.records,
      zoneExists,
      wanted,
      this.endpoint.node,
      settings,
      nowMs,
    );
    for (const found of stale) this.host.log.log("info", "dns-record-scavenged", { ...found });
    const all = [...writes, ...stale.map((found): WriteRequest => ({ op: "delete", dn: found.dn }))];
    // In order: the zone entry (when missing) must exist before the records below it.
    for (const write of all) {
      const result = await this.host.write(write);
      if (!result.ok && result.error.code !== "entry-exists" && result.error.code !== "no-such-entry")
        this.host.log.log("warn", "dns-registration-write-failed", {
          dn: write.dn,
          error: result.error.message,
        });
    }
    this.registered = {
      writes: this.registered.writes + writes.length,
      scavenged: this.registered.scavenged + stale.length,
      lastPassAt: new Date(nowMs).toISOString(),
    };
    if (all.length > 0) this.compiledChanges = Number.NaN;
  }
}
