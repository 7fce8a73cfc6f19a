/**
 * Planted defects ("canary bugs"). The simulator switches one on to prove that its invariants
 * catch it; production code paths never set any of them. Each flag names the defect it plants.
 */
export interface Canaries {
  /** After the last page of a cycle, do not merge the source's UTD. */
  readonly skipUtdMerge?: boolean;
  /** Compare stamps by originating time before version. */
  readonly compareTimeFirst?: boolean;
  /** Apply pages but never persist the advanced watermark. */
  readonly skipWatermarkPersist?: boolean;
  /** Count an item that arrives again (same stamp) as one more version: applying twice differs. */
  readonly nonIdempotentApply?: boolean;
  /** On detected or declared restore, keep the old invocation id (reusing its USNs). */
  readonly reuseUsnAfterRestore?: boolean;
  /** Purge a tombstone as soon as one partner covers it, not every replica. */
  readonly purgeTombstonesEarly?: boolean;
  /** Treat a page that says `more` as the last one of its cycle (drops the rest of the batch). */
  readonly dropLastPage?: boolean;
  /** After an origin-filtered cycle, merge the source's whole UTD, filtered origins included. */
  readonly mergeFilteredUtd?: boolean;
  /** Keep the watermark when a pull's origin filter gives back an invocation it left out. */
  readonly keepWatermarkOnRefilter?: boolean;
  /** Answer an origin-filtered pull as if it had no filter (every neighbour sends everything). */
  readonly ignoreOriginFilter?: boolean;
  /** Answer a pull with an empty page when the destination covers the stamps held from others. */
  readonly forgetOwnHeldStamps?: boolean;
  /** Put off every pull a relayed notification asks for, even when nothing else brings the changes. */
  readonly deferEveryRelay?: boolean;
  /** Hold back, for a partner that hears others directly, notifications of changes from anyone. */
  readonly ignoreRelayHears?: boolean;
  /** Drop, instead of holding back till the lease ends, a notification a relay lease covers. */
  readonly dropHeldRelays?: boolean;
  /**
   * Pull the partners a relayed notification names and never the relay, even when one of
   * them fails: what the relay passed on then waits for a periodic pull.
   */
  readonly skipRelayWait?: boolean;
  /** Make every ordinary change wait a whole batching window, even one after a quiet window. */
  readonly batchEveryNotification?: boolean;
  /**
   * The last page of a pull cycle also cancels what was held back after its pull was admitted
   * (and so maybe after its page was read). Caught by machine.test.ts, not by random seeds:
   * the window is a page build's few milliseconds in a triangle that lost a notification.
   */
  readonly clearHeldAfterAdmission?: boolean;
  /**
   * Stop pulling from a neighbour site's stale bridgehead once duty passed over it: its failures
   * go with it, it is fresh at the next plan, and the plan flips back and forth (core/topology/
   * connections.ts). Caught by the site simulator, whose nodes derive their stale sets.
   */
  readonly dropStaleBridgeheads?: boolean;
  /**
   * Leave in the origin filter the sites a node has no route to: their changes then come
   * through whichever neighbour has them, a branch between two hubs included (origins.ts).
   * Caught by the site simulator's valley-free check.
   */
  readonly keepUnroutableOrigins?: boolean;
  /**
   * Give a site with no route to any other served site no source elsewhere (connections.ts
   * isolatedSiteSources): a node that joined before any server of its neighbouring sites pulls
   * from no one across its site's boundary and never learns of the servers that give it a route.
   * Caught by the site simulator, whose nodes learn the topology by replication.
   */
  readonly dropIsolatedSiteSources?: boolean;
  /**
   * Leave a node's own invocations out of its inter-site pulls like the rest of its site's
   * (origins.ts): a server restored alone in its site never gets back, from the sites it passed
   * them to, its changes newer than its backup. Caught by the site simulator's restores.
   */
  readonly leaveOutOwnOrigins?: boolean;
  /**
   * Of the links joining one pair of sites, route over the first listed, not the cheapest
   * (graph.ts): a cheaper link added beside an existing one goes unused. Caught by the site
   * simulator's least-cost-path check once an operator adds one.
   */
  readonly keepFirstParallelLink?: boolean;
}

export type CanaryName = keyof Canaries;

export const canaryNames: readonly CanaryName[] = [
  "skipUtdMerge",
  "compareTimeFirst",
  "skipWatermarkPersist",
  "nonIdempotentApply",
  "reuseUsnAfterRestore",
  "purgeTombstonesEarly",
  "dropLastPage",
  "forgetOwnHeldStamps",
  "deferEveryRelay",
  "ignoreRelayHears",
  "dropHeldRelays",
  "batchEveryNotification",
  "skipRelayWait",
];

/** Canaries of origin-filtered pulls that lose changes: the filtered-pull property catches them. */
export const filterCanaryNames: readonly CanaryName[] = ["mergeFilteredUtd", "keepWatermarkOnRefilter"];

/** Canaries the site-replication simulator (sim/sites.ts) must catch. */
export const siteCanaryNames: readonly CanaryName[] = [
  ...filterCanaryNames,
  "ignoreOriginFilter",
  "dropStaleBridgeheads",
  "keepUnroutableOrigins",
  "dropIsolatedSiteSources",
  "leaveOutOwnOrigins",
  "keepFirstParallelLink",
  "reuseUsnAfterRestore",
];

export const noCanaries: Canaries = Object.freeze({});

/** Planted defects of the inter-site router (core/topology/router.ts), for the routing simulator. */
export interface RoutingCanaries {
  /** Export every route to every neighbour, whatever the tiers. */
  readonly ignoreExportPolicy?: boolean;
  /** Keep the routes learned over a session after it went down. */
  readonly keepRoutesOfClosedSessions?: boolean;
  /** Accept a route whose path already holds this site. */
  readonly skipLoopCheck?: boolean;
}

export type RoutingCanaryName = keyof RoutingCanaries;

export const routingCanaryNames: readonly RoutingCanaryName[] = [
  "ignoreExportPolicy",
  "keepRoutesOfClosedSessions",
  "skipLoopCheck",
];
