/**
 * IPv4 and IPv6 addresses and CIDR prefixes, parsed without the network stack (the core has
 * none): subnets map a client's address to its site by longest prefix.
 */
export interface Cidr {
  readonly family: 4 | 6;
  /** The network address, host bits cleared: 4 or 16 bytes. */
  readonly bytes: Uint8Array;
  readonly prefix: number;
  /** Canonical text: the cleared network address and the prefix, e.g. `10.1.0.0/16`, `2001:db8::/32`. */
  readonly text: string;
}

const textLengthMax = 64;

/** Parses `address` or `address/prefix`; an address alone is a full-length prefix. Null when invalid. */
export function parseCidr(value: unknown): Cidr | null {
  if (typeof value !== "string" || value.length === 0 || value.length > textLengthMax) return null;
  const slash = value.indexOf("/");
  const addressText = slash < 0 ? value : value.slice(0, slash);
  const bytes = parseAddress(addressText);
  if (bytes === null) return null;
  const family = bytes.length === 4 ? 4 : 6;
  const bits = bytes.length * 8;
  let prefix = bits;
  if (slash >= 0) {
    const prefixText = value.slice(slash + 1);
    if (!/^(0|[1-9][0-9]{0,2})$/.test(prefixText)) return null;
    prefix = Number(prefixText);
    if (prefix > bits) return null;
  }
  const network = maskTo(bytes, prefix);
  return { family, bytes: network, prefix, text: `${formatAddress(network)}/${prefix}` };
}

/** 4 bytes for IPv4, 16 for IPv6 (an IPv4-mapped IPv6 address stays IPv6); null when invalid. */
export function parseAddress(text: string): Uint8Array | null {
  if (text.includes(":")) return parseIpv6(text);
  return parseIpv4(text);
}

function parseIpv4(text: string): Uint8Array | null {
  const parts = text.split(".");
  if (parts.length !== 4) return null;
  const bytes = new Uint8Array(4);
  for (const [index, part] of parts.entries()) {
    if (!/^(0|[1-9][0-9]{0,2})$/.test(part)) return null;
    const value = Number(part);
    if (value > 255) return null;
    bytes[index] = value;
  }
  return bytes;
}

function parseIpv6(text: string): Uint8Array | null {
  const halves = text.split("::");
  if (halves.length > 2) return null;
  const groups = (half: string): number[] | null => {
    if (half === "") return [];
    const out: number[] = [];
    const parts = half.split(":");
    for (const [index, part] of parts.entries()) {
      if (index === parts.length - 1 && part.includes(".")) {
        const v4 = parseIpv4(part);
        if (v4 === null) return null;
        out.push(((v4[0] as number) << 8) | (v4[1] as number), ((v4[2] as number) << 8) | (v4[3] as number));
        continue;
      }
      if (!/^[0-9a-f]{1,4}$/i.test(part)) return null;
      out.push(Number.parseInt(part, 16));
    }
    return out;
  };
  const head = groups(halves[0] as string);
  const tail = halves.length === 2 ? groups(halves[1] as string) : [];
  if (head === null || tail === null) return null;
  const missing = 8 - head.length - tail.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return null;
  const all = [...head, ...new Array<number>(missing).fill(0), ...tail];
  const bytes = new Uint8Array(16);
  for (const [index, group] of all.entries()) {
    bytes[2 * index] = group >> 8;
    bytes[2 * index + 1] = group & 0xff;
  }
  return bytes;
}

function maskTo(bytes: Uint8Array, prefix: number): Uint8Array {
  const out = new Uint8Array(bytes);
  for (let index = 0; index < out.length; index++) {
    const keep = Math.max(0, Math.min(8, prefix - index * 8));
    out[index] = (out[index] as number) & ((0xff << (8 - keep)) & 0xff);
  }
  return out;
}

/** Canonical text: dotted quad, or RFC 5952 IPv6 (lower case, longest zero run compressed). */
export function formatAddress(bytes: Uint8Array): string {
  if (bytes.length === 4) return [...bytes].join(".");
  const groups = Array.from(
    { length: 8 },
    (_, index) => ((bytes[2 * index] as number) << 8) | (bytes[2 * index + 1] as number),
  );
  let bestStart = -1;
  let bestLength = 1;
  for (let start = 0; start < 8; ) {
    if (groups[start] !== 0) {
      start++;
      continue;
    }
    let end = start;
    while (end < 8 && groups[end] === 0) end++;
    if (end - start > bestLength) {
      bestStart = start;
      bestLength = end - start;
    }
    start = end;
  }
  const hex = groups.map((group) => group.toString(16));
  if (bestStart < 0) return hex.join(":");
  return `${hex.slice(0, bestStart).join(":")}::${hex.slice(bestStart + bestLength).join(":")}`;
}

/** Whether the address (4 or 16 bytes) lies inside the prefix. */
export function cidrContains(cidr: Cidr, address: Uint8Array): boolean {
  if (address.length !== cidr.bytes.length) return false;
  const masked = maskTo(address, cidr.prefix);
  return masked.every((byte, index) => byte === cidr.bytes[index]);
}

/** The longest prefix containing the address, or undefined. */
export function longestMatch<T extends { readonly cidr: Cidr }>(
  prefixes: readonly T[],
  address: Uint8Array,
): T | undefined {
  let best: T | undefined;
  for (const candidate of prefixes) {
    if (
      cidrContains(candidate.cidr, address) &&
      (best === undefined || candidate.cidr.prefix > best.cidr.prefix)
    ) {
      best = candidate;
    }
  }
  return best;
}
