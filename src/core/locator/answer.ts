import { canonicalName, type DnsRecord, type Zone, type ZoneSet, zoneOf } from "./records.ts";

/**
 * The locator's answer to one DNS question, as an authoritative-only server gives it: a pure
 * function of the zones, the question and what this node knows of other nodes' health. The
 * edge turns the result into a packet (and truncates it); nothing here does I/O.
 */
export type Rcode = "NOERROR" | "FORMERR" | "SERVFAIL" | "NXDOMAIN" | "NOTIMP" | "REFUSED";

export interface Question {
  /** As asked (any case, with or without the trailing dot). */
  readonly name: string;
  /** The RR type mnemonic ("SRV", "ANY", "TYPE65280" for unknown ones). */
  readonly type: string;
  readonly class: string;
}

export interface Answer {
  readonly rcode: Rcode;
  /** AA: the name lies in a zone this server is authoritative for. */
  readonly authoritative: boolean;
  readonly answers: readonly DnsRecord[];
  readonly authority: readonly DnsRecord[];
  /** Glue: addresses of SRV and NS targets that lie in a served zone. Optional data. */
  readonly additional: readonly DnsRecord[];
}

export interface Health {
  /** Nodes this node knows to be unreachable: their SRV records move to a worse priority. */
  readonly unhealthy: ReadonlySet<string>;
}

export const healthyEverywhere: Health = { unhealthy: new Set() };

/**
 * Added to the SRV priority of an unreachable node's records (RFC 2782: lower is tried first).
 * Moved back, never removed: an answer that only names unreachable nodes still names them,
 * since this node may be the one cut off.
 */
export const unhealthyPriorityPenalty = 1_000;
const srvPriorityMax = 65_535;
/** CNAMEs followed inside the served zones before the answer stops (loops end here too). */
export const cnameChainMax = 8;

/** Types that ask for a zone transfer or mailbox data: never served by the locator. */
const refusedTypes = new Set(["AXFR", "IXFR"]);
const unimplementedTypes = new Set(["MAILA", "MAILB"]);

function refused(): Answer {
  return { rcode: "REFUSED", authoritative: false, answers: [], authority: [], additional: [] };
}

/** The SOA for a negative answer: its TTL is min(SOA TTL, SOA minimum) (RFC 2308 section 5). */
export function negativeSoa(zone: Zone): DnsRecord {
  return { ...zone.soa, ttl: Math.min(zone.soa.ttl, zone.soa.minimum) };
}

function withHealth(record: DnsRecord, health: Health): DnsRecord {
  if (record.type !== "SRV" || record.node === undefined || !health.unhealthy.has(record.node)) return record;
  return { ...record, priority: Math.min(srvPriorityMax, record.priority + unhealthyPriorityPenalty) };
}

export function answerQuestion(set: ZoneSet, question: Question, health: Health = healthyEverywhere): Answer {
  const qclass = question.class.toUpperCase();
  const qtype = question.type.toUpperCase();
  let name = canonicalName(question.name);
  const first = zoneOf(set, name);
  if (first === undefined || (qclass !== "IN" && qclass !== "ANY")) return refused();
  if (refusedTypes.has(qtype)) return refused();
  if (unimplementedTypes.has(qtype))
    return { rcode: "NOTIMP", authoritative: false, answers: [], authority: [], additional: [] };
  const answers: DnsRecord[] = [];
  // A chain that comes back to a name stops there: each record once (RFC 2181 section 5), and
  // the asker sees the loop in the answer.
  const visited = new Set<string>([name]);
  let zone: Zone = first;
  for (let hop = 0; hop <= cnameChainMax; hop++) {
    const records = zone.names.get(name);
    if (records === undefined) {
      const rcode = zone.nonTerminals.has(name) ? "NOERROR" : "NXDOMAIN";
      return { rcode, authoritative: true, answers, authority: [negativeSoa(zone)], additional: [] };
    }
    const matching = qtype === "ANY" ? records : records.filter((record) => record.type === qtype);
    if (matching.length > 0) {
      answers.push(...matching.map((record) => withHealth(record, health)));
      return {
        rcode: "NOERROR",
        authoritative: true,
        answers,
        authority: [],
        additional: glue(set, answers),
      };
    }
    const cname = records.find((record) => record.type === "CNAME");
    if (cname === undefined || cname.type !== "CNAME")
      return {
        rcode: "NOERROR",
        authoritative: true,
        answers,
        authority: [negativeSoa(zone)],
        additional: [],
      };
    answers.push(cname);
    const next = zoneOf(set, cname.target);
    // A target outside the served zones is the asker's to resolve: this server does not recurse.
    if (next === undefined || visited.has(canonicalName(cname.target))) break;
    zone = next;
    name = canonicalName(cname.target);
    visited.add(name);
  }
  return { rcode: "NOERROR", authoritative: true, answers, authority: [], additional: [] };
}

/** A and AAAA records of the SRV and NS targets among the answers, when a served zone has them. */
function glue(set: ZoneSet, answers: readonly DnsRecord[]): DnsRecord[] {
  const targets = new Set<string>();
  for (const record of answers) if (record.type === "SRV" || record.type === "NS") targets.add(record.target);
  const additional: DnsRecord[] = [];
  for (const target of targets) {
    const records = zoneOf(set, target)?.names.get(target) ?? [];
    for (const record of records) if (record.type === "A" || record.type === "AAAA") additional.push(record);
  }
  return additional;
}
