import type { Guid } from "../ids.ts";

/**
 * Partitions (naming contexts). Every partition has a root entry and a LostAndFound container
 * whose GUIDs are derived from the partition's normalised DN, so that every replica knows them
 * before they arrive and a partition created independently on two nodes merges into one.
 */
export const configPartition = "cn=config";
export const dnsPartition = "cn=dns";
export const lostAndFoundRdn = "cn=LostAndFound";

export function partitionRootGuid(partitionNorm: string): Guid {
  return derivedGuid(`root\u0000${partitionNorm}`);
}

export function lostAndFoundGuid(partitionNorm: string): Guid {
  return derivedGuid(`lost-and-found\u0000${partitionNorm}`);
}

export function isSystemGuid(guid: Guid, partitionNorm: string): boolean {
  return guid === partitionRootGuid(partitionNorm) || guid === lostAndFoundGuid(partitionNorm);
}

/**
 * A deterministic 128-bit hash (four 32-bit lanes, MurmurHash3-style mixing) rendered as 32 hex
 * digits. Not cryptographic: it only has to spread a handful of partition names.
 */
export function derivedGuid(text: string): Guid {
  let h1 = 0x1b873593;
  let h2 = 0xcc9e2d51;
  let h3 = 0x85ebca6b;
  let h4 = 0xc2b2ae35;
  for (let index = 0; index < text.length; index++) {
    const code = text.charCodeAt(index);
    h1 = h2 ^ Math.imul(h1 ^ code, 597399067);
    h2 = h3 ^ Math.imul(h2 ^ code, 2869860233);
    h3 = h4 ^ Math.imul(h3 ^ code, 951274213);
    h4 = h1 ^ Math.imul(h4 ^ code, 2716044179);
  }
  h1 = Math.imul(h3 ^ (h1 >>> 18), 597399067);
  h2 = Math.imul(h4 ^ (h2 >>> 22), 2869860233);
  h3 = Math.imul(h1 ^ (h3 >>> 17), 951274213);
  h4 = Math.imul(h2 ^ (h4 >>> 19), 2716044179);
  h1 ^= h2 ^ h3 ^ h4;
  h2 ^= h1;
  h3 ^= h1;
  h4 ^= h1;
  return [h1, h2, h3, h4].map((lane) => (lane >>> 0).toString(16).padStart(8, "0")).join("") as Guid;
}
