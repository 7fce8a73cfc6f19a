import * as dnsPacket from "dns-packet";
import { type Answer, answerQuestion, type Health, type Rcode } from "../../core/locator/answer.ts";
import type { DnsRecord, ZoneSet } from "../../core/locator/records.ts";

/**
 * Wire packets to the core's questions and back (dns-packet does the encoding). Everything
 * about sizes lives here: EDNS0 payload size, truncation with TC, the response size limit.
 * `respond` never throws on bad input: a query it cannot read gets FORMERR when its header is
 * readable, and nothing otherwise.
 */

/** UDP payload without EDNS0 (RFC 1035). */
export const udpPayloadBytesClassic = 512;
/**
 * Largest UDP payload answered, whatever the client offers: 1232 bytes avoids IP fragmentation
 * on any path (DNS Flag Day 2020); larger answers go over TCP.
 */
export const udpPayloadBytesMax = 1_232;
/** Largest response over TCP: what the 2-byte length prefix can frame. */
export const tcpResponseBytesMax = 65_535;
export const headerBytes = 12;
/** QTYPE and QCLASS after a question's name. */
const questionFixedBytes = 4;

const rcodeNumbers: Readonly<Record<Rcode, number>> = {
  NOERROR: 0,
  FORMERR: 1,
  SERVFAIL: 2,
  NXDOMAIN: 3,
  NOTIMP: 4,
  REFUSED: 5,
};
/** BADVERS is 16: its upper bits travel in the OPT record's extended rcode. */
const badversExtended = 1;
const opcodeQuery = 0;

export type Transport = "udp" | "tcp";

/** The header of a query, read without decoding the rest; null when it is no query. */
export function queryHeader(message: Buffer): { id: number; opcode: number; rd: boolean } | null {
  if (message.length < headerBytes) return null;
  const flags = message[2] as number;
  if ((flags & 0x80) !== 0) return null; // QR: a response; answering responses makes loops
  return { id: message.readUInt16BE(0), opcode: (flags >> 3) & 0x0f, rd: (flags & 0x01) !== 0 };
}

function headerOnly(id: number, opcode: number, rd: boolean, rcode: number): Buffer {
  const buffer = Buffer.alloc(headerBytes);
  buffer.writeUInt16BE(id, 0);
  buffer.writeUInt16BE(0x8000 | (opcode << 11) | (rd ? 0x0100 : 0) | rcode, 2);
  return buffer;
}

function wireRecord(record: DnsRecord): dnsPacket.Answer {
  const base = { name: record.name, ttl: record.ttl, class: "IN" as const };
  switch (record.type) {
    case "A":
    case "AAAA":
      return { ...base, type: record.type, data: record.address };
    case "CNAME":
    case "NS":
      return { ...base, type: record.type, data: record.target };
    case "SRV":
      return {
        ...base,
        type: "SRV",
        data: { priority: record.priority, weight: record.weight, port: record.port, target: record.target },
      };
    case "TXT":
      return { ...base, type: "TXT", data: txtStrings(record.text) };
    case "SOA":
      return {
        ...base,
        type: "SOA",
        data: {
          mname: record.mname,
          rname: record.rname,
          serial: record.serial,
          refresh: record.refresh,
          retry: record.retry,
          expire: record.expire,
          minimum: record.minimum,
        },
      };
  }
}

/** TXT text as character-strings of at most 255 bytes each. */
function txtStrings(text: string): Buffer[] {
  const bytes = Buffer.from(text, "utf8");
  const strings: Buffer[] = [];
  for (let offset = 0; offset < bytes.length; offset += 255)
    strings.push(bytes.subarray(offset, offset + 255));
  return strings.length === 0 ? [Buffer.alloc(0)] : strings;
}

/**
 * The labels of the first question's name as sent, and the bytes of the whole question; null
 * when the name uses a compression pointer (before the first question there is only the
 * header to point at) or runs past the message.
 */
function wireQuestion(message: Buffer): { labels: Buffer[]; bytes: Buffer } | null {
  const labels: Buffer[] = [];
  let offset = headerBytes;
  // Each pass consumes at least one byte of the message, so the loop ends.
  for (;;) {
    const length = message[offset];
    if (length === undefined || (length & 0xc0) !== 0) return null;
    offset++;
    if (length === 0) break;
    labels.push(message.subarray(offset, offset + length));
    offset += length;
  }
  const end = offset + questionFixedBytes;
  return end > message.length ? null : { labels, bytes: message.subarray(headerBytes, end) };
}

/**
 * Whether a zone could hold a name with this label: printable ASCII other than the dot, as the
 * zones' names are (isServableName). dns-packet reads labels as text joined by dots, so a label
 * holding a dot, or bytes that are not UTF-8, would read as other labels or other bytes.
 */
function isHoldableLabel(label: Buffer): boolean {
  for (const byte of label) if (byte < 0x21 || byte > 0x7e || byte === 0x2e) return false;
  return true;
}

/** A label no zone holds (a space, which isServableName refuses): names below it do not exist. */
const unholdableLabel = " ";

/**
 * The name to look up for a question whose labels are `labels`: the decoded text when every
 * label could be in a zone; otherwise the part after the last label that could not, below a
 * label no zone holds, so that the answer is NXDOMAIN in a served zone and REFUSED outside.
 */
function lookupName(decoded: string, labels: readonly Buffer[]): string {
  let last = -1;
  for (const [index, label] of labels.entries()) if (!isHoldableLabel(label)) last = index;
  if (last < 0) return decoded;
  return [unholdableLabel, ...labels.slice(last + 1).map((label) => label.toString("latin1"))].join(".");
}

/** dns-packet names the types it does not know UNKNOWN_<n>; the core reads RFC 3597's TYPE<n>. */
const typeNamesByNumber: Readonly<Record<string, string>> = { "253": "MAILA", "254": "MAILB" };
function coreTypeName(type: string): string {
  const number = /^UNKNOWN_([0-9]+)$/.exec(type)?.[1];
  if (number === undefined) return type;
  return typeNamesByNumber[number] ?? `TYPE${number}`;
}

interface Reply {
  readonly id: number;
  readonly rd: boolean;
  readonly question: dnsPacket.Question;
  /**
   * The question as sent, when one of its labels is not one a zone could hold: dns-packet's
   * text for it (a label holding a dot, bytes that are not UTF-8) would encode back as other
   * labels or bytes, and resolvers match the question byte for byte.
   */
  readonly questionBytes: Buffer | null;
  readonly answer: Answer;
  /** The OPT record to send back, when the query had one. */
  readonly opt: dnsPacket.Answer | null;
}

function encodeReply(
  reply: Reply,
  sections: { answers: boolean; additional: boolean; truncated: boolean },
): Buffer {
  const { answer } = reply;
  const flags =
    (answer.authoritative ? dnsPacket.AUTHORITATIVE_ANSWER : 0) |
    (sections.truncated ? dnsPacket.TRUNCATED_RESPONSE : 0) |
    (reply.rd ? dnsPacket.RECURSION_DESIRED : 0) |
    rcodeNumbers[answer.rcode];
  const encoded = dnsPacket.encode({
    type: "response",
    id: reply.id,
    flags,
    questions: [reply.questionBytes === null ? reply.question : placeholderQuestion],
    answers: sections.answers ? answer.answers.map(wireRecord) : [],
    authorities: sections.answers ? answer.authority.map(wireRecord) : [],
    additionals: [
      ...(sections.additional ? answer.additional.map(wireRecord) : []),
      ...(reply.opt === null ? [] : [reply.opt]),
    ],
  });
  if (reply.questionBytes === null) return encoded;
  // dns-packet compresses no names, so nothing after the question points into it.
  const placeholderEnd = headerBytes + placeholderQuestionBytes;
  return Buffer.concat([
    encoded.subarray(0, headerBytes),
    reply.questionBytes,
    encoded.subarray(placeholderEnd),
  ]);
}

/** Encoded in place of a question that is then replaced by the bytes sent: the root, A, IN. */
const placeholderQuestion: dnsPacket.Question = { name: ".", type: "A", class: "IN" };
/** The root name (one byte) and QTYPE, QCLASS. */
const placeholderQuestionBytes = 1 + 4;

/**
 * Encodes within `limitBytes`: glue is dropped first (it is optional, no TC), then, if the
 * answer itself does not fit, an empty response with TC tells the client to ask over TCP.
 */
function fit(reply: Reply, limitBytes: number): Buffer {
  const full = encodeReply(reply, { answers: true, additional: true, truncated: false });
  if (full.length <= limitBytes) return full;
  const noGlue = encodeReply(reply, { answers: true, additional: false, truncated: false });
  if (noGlue.length <= limitBytes) return noGlue;
  return encodeReply(reply, { answers: false, additional: false, truncated: true });
}

/** The response to one query message, or null when the message gets no answer at all. */
export function respond(
  message: Buffer,
  transport: Transport,
  zones: ZoneSet,
  health: Health,
): Buffer | null {
  const header = queryHeader(message);
  if (header === null) return null;
  if (header.opcode !== opcodeQuery)
    return headerOnly(header.id, header.opcode, header.rd, rcodeNumbers.NOTIMP);
  let packet: dnsPacket.DecodedPacket;
  try {
    packet = dnsPacket.decode(message);
  } catch {
    return headerOnly(header.id, header.opcode, header.rd, rcodeNumbers.FORMERR);
  }
  const question = packet.questions?.[0];
  const sent = wireQuestion(message);
  const opts = (packet.additionals ?? []).filter((record) => record.type === "OPT");
  // RFC 6891 section 6.1.2: the OPT record's owner is the root; at most one OPT record.
  if (
    packet.questions?.length !== 1 ||
    question === undefined ||
    sent === null ||
    opts.length > 1 ||
    opts.some((record) => record.name !== ".")
  )
    return headerOnly(header.id, header.opcode, header.rd, rcodeNumbers.FORMERR);
  const name = lookupName(question.name, sent.labels);
  const clientOpt = opts[0] as
    | (dnsPacket.Answer & { udpPayloadSize: number; ednsVersion: number })
    | undefined;
  const badVersion = clientOpt !== undefined && clientOpt.ednsVersion !== 0;
  const opt: dnsPacket.Answer | null =
    clientOpt === undefined
      ? null
      : ({
          type: "OPT",
          name: ".",
          udpPayloadSize: udpPayloadBytesMax,
          extendedRcode: badVersion ? badversExtended : 0,
          ednsVersion: 0,
          flags: 0,
          options: [],
        } as unknown as dnsPacket.Answer);
  const answer: Answer = badVersion
    ? { rcode: "NOERROR", authoritative: false, answers: [], authority: [], additional: [] }
    : answerQuestion(
        zones,
        { name, type: coreTypeName(question.type), class: question.class ?? "IN" },
        health,
      );
  const limit =
    transport === "tcp"
      ? tcpResponseBytesMax
      : clientOpt === undefined
        ? udpPayloadBytesClassic
        : Math.min(udpPayloadBytesMax, Math.max(udpPayloadBytesClassic, clientOpt.udpPayloadSize));
  try {
    const questionBytes = name === question.name ? null : sent.bytes;
    return fit({ id: header.id, rd: header.rd, question, questionBytes, answer, opt }, limit);
  } catch {
    // Something dns-packet cannot encode again. Not expected since questions with odd labels
    // go back as the bytes sent (above), but it must cost one answer, not the server.
    return headerOnly(header.id, header.opcode, header.rd, rcodeNumbers.FORMERR);
  }
}
