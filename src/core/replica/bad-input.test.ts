import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { pathsOf, replacedAt } from "../../../test/support/json-paths.ts";
import { makeDirectory, makeReplica, pull, type TestReplica } from "../../../test/support/replicas.ts";
import { dumpStore } from "../../store/store-contract.ts";
import { attributeTypeLengthMax, dnDepthMax, dnLengthMax, dnValueLengthMax } from "../directory/dn.ts";
import { filterDepthMax, filterItemsMax, filterLengthMax } from "../directory/filter.ts";
import {
  attributesPerEntryMax,
  entryBytesMax,
  modificationsPerRequestMax,
  valueBytesMax,
  valuesPerAttributeMax,
} from "../directory/schema.ts";
import { pageBytesMaxLimit, pageEntriesMaxLimit } from "../replication/page.ts";
import { utdEntriesMax } from "../replication/validate.ts";
import type { Result } from "../result.ts";
import { unwrap } from "../result.ts";
import type { WriteRequest } from "./originating.ts";

/**
 * Everything that comes from outside (client requests, replication requests and pages) is
 * validated: a bad input gets a typed failure with a stable code and leaves the store exactly
 * as it was, which every test proves by comparing a complete dump of the store.
 */
const base = "dc=example,dc=com";
const person = `cn=alice,${base}`;

type JsonObject = { [key: string]: unknown };

function codeOf(result: Result<unknown>): string {
  return result.ok ? "ok" : result.error.code;
}

/** Runs `run` (which must not throw) and proves the store is unchanged and the code is one of `codes`. */
function refusedUnchanged(replica: TestReplica, codes: readonly string[], run: () => Result<unknown>): void {
  const before = dumpStore(replica.store);
  const usn = replica.replica.usn;
  const result = run();
  assert.ok(codes.includes(codeOf(result)), `expected ${codes.join(" or ")}, got ${JSON.stringify(result)}`);
  assert.deepEqual(dumpStore(replica.store), before);
  assert.equal(replica.replica.usn, usn);
}

/** A write request built from untrusted data: the type system cannot vouch for its shape. */
function untrusted(request: unknown): WriteRequest {
  return request as WriteRequest;
}

function withPerson(): TestReplica {
  const [replica] = makeDirectory(["node-a"]);
  assert.ok(replica !== undefined);
  unwrap(
    replica.replica.writeOne({
      op: "add",
      dn: person,
      attributes: { objectClass: ["person"], description: ["first"] },
    }),
  );
  return replica;
}

function addWith(attributes: unknown, dn = `cn=new,${base}`): WriteRequest {
  return untrusted({ op: "add", dn, attributes });
}

function modifyWith(...changes: unknown[]): WriteRequest {
  return untrusted({ op: "modify", dn: person, changes });
}

// ---------------------------------------------------------------------------------------------
// client requests

const deepDn = Array.from({ length: dnDepthMax + 1 }, (_, index) => `ou=l${index}`).join(",");
const invalidDns: ReadonlyArray<readonly [string, string]> = [
  ["cn=a,,dc=x", "invalid-dn"],
  ["=x", "invalid-dn"],
  ["cn", "invalid-dn"],
  ["cn=a\\", "invalid-dn"],
  ["cn=a,", "invalid-dn"],
  ["cn=a+cn=b", "invalid-dn"],
  ["cn;lang-en=a", "invalid-dn"],
  ['cn=a"b', "invalid-dn"],
  ["cn=#zz", "invalid-dn"],
  ["cn=\\ff", "invalid-dn"],
  [`cn=${"a".repeat(dnLengthMax)}`, "limit-exceeded"],
  [deepDn, "limit-exceeded"],
  [`cn=${"a".repeat(dnValueLengthMax + 1)},${base}`, "limit-exceeded"],
  [`${"c".repeat(attributeTypeLengthMax + 1)}=a,${base}`, "limit-exceeded"],
];

describe("invalid DNs", () => {
  const replica = withPerson();
  for (const [dn, code] of invalidDns) {
    const shown = dn.length > 40 ? `${dn.slice(0, 30)}… (${dn.length} characters)` : dn;
    it(`'${shown}' fails ${code} everywhere a DN is read`, () => {
      const requests: Array<() => Result<unknown>> = [
        () => replica.replica.writeOne({ op: "add", dn, attributes: { objectClass: ["person"] } }),
        () =>
          replica.replica.writeOne({
            op: "modify",
            dn,
            changes: [{ operation: "add", attribute: "sn", values: ["x"] }],
          }),
        () => replica.replica.writeOne({ op: "delete", dn }),
        () => replica.replica.writeOne({ op: "delete", dn, subtree: true }),
        () => replica.replica.writeOne({ op: "modifyDn", dn, newRdn: "cn=b" }),
        () => replica.replica.get(dn),
        () => replica.replica.search({ base: dn }),
        () => replica.replica.createPartition(dn),
      ];
      for (const request of requests) refusedUnchanged(replica, [code], request);
    });
  }

  it("a new RDN that is not exactly one RDN fails invalid-dn or limit-exceeded", () => {
    for (const [newRdn, code] of [
      ["", "invalid-dn"],
      ["cn=b,dc=x", "invalid-dn"],
      ["cn=a,,dc=x", "invalid-dn"],
      ["=x", "invalid-dn"],
      ["cn", "invalid-dn"],
      ["cn=a\\", "invalid-dn"],
      [`cn=${"a".repeat(dnLengthMax)}`, "limit-exceeded"],
      [`cn=${"a".repeat(dnValueLengthMax + 1)}`, "limit-exceeded"],
    ] as const) {
      refusedUnchanged(replica, [code], () =>
        replica.replica.writeOne({ op: "modifyDn", dn: person, newRdn }),
      );
    }
  });

  it("a new parent that does not parse fails with its parse error", () => {
    const replica = withPerson();
    // originating.ts targetParent maps every failure of resolveDn(newParent) to no-such-parent,
    // so a malformed or oversized new parent is reported as a missing one (without matchedDn).
    for (const [newParent, code] of invalidDns) {
      refusedUnchanged(replica, [code], () =>
        replica.replica.writeOne({ op: "modifyDn", dn: person, newRdn: "cn=alice", newParent }),
      );
    }
  });
});

describe("invalid filters", () => {
  const replica = withPerson();
  const deep = `${"(!".repeat(filterDepthMax)}(cn=a)${")".repeat(filterDepthMax)}`;
  const wide = `(|${"(cn=a)".repeat(filterItemsMax)})`;
  const cases: ReadonlyArray<readonly [string, string]> = [
    ["(cn=a", "invalid-filter"],
    ["(cn=a)(", "invalid-filter"],
    ["(:dn:=x)", "invalid-filter"],
    ["(cn:dn:=x)", "invalid-filter"],
    ["", "invalid-filter"],
    ["   ", "invalid-filter"],
    ["()", "invalid-filter"],
    ["(cn=a*(b)", "invalid-filter"],
    ["(cn;lang-en=a)", "invalid-filter"],
    ["(cn=\\zz)", "invalid-filter"],
    ["(cn=\\ff)", "invalid-filter"],
    ["(!(cn=a)(cn=b))", "invalid-filter"],
    ["(cn>a)", "invalid-filter"],
    ["(&(cn=a)", "invalid-filter"],
    [`(cn=${"a".repeat(filterLengthMax)})`, "limit-exceeded"],
    [deep, "limit-exceeded"],
    [wide, "limit-exceeded"],
    [`(${"c".repeat(attributeTypeLengthMax + 1)}=a)`, "limit-exceeded"],
  ];
  for (const [filter, code] of cases) {
    const shown = filter.length > 40 ? `${filter.slice(0, 30)}… (${filter.length} characters)` : filter;
    it(`'${shown}' fails ${code}`, () => {
      refusedUnchanged(replica, [code], () => replica.replica.search({ base, filter }));
    });
  }

  it("filters just inside the limits are accepted", () => {
    const inside = `${"(!".repeat(filterDepthMax - 1)}(cn=a)${")".repeat(filterDepthMax - 1)}`;
    assert.equal(codeOf(replica.replica.search({ base, filter: inside })), "ok");
    assert.equal(
      codeOf(replica.replica.search({ base, filter: `(|${"(cn=a)".repeat(filterItemsMax - 1)})` })),
      "ok",
    );
  });
});

describe("invalid attribute types", () => {
  const replica = withPerson();
  const types = [
    "c n",
    "cn;lang-en",
    "@name",
    "@deleted",
    "",
    "-cn",
    "1cn",
    "cn.x",
    "1.",
    "cné",
    "x".repeat(200),
  ];
  for (const type of types) {
    const shown = type.length > 20 ? `${type.slice(0, 10)}… (${type.length} characters)` : type;
    it(`'${shown}' is refused by add and by every modify operation`, () => {
      const codes = ["invalid-attribute", "limit-exceeded"];
      refusedUnchanged(replica, codes, () =>
        replica.replica.writeOne(addWith({ objectClass: ["x"], [type]: ["v"] })),
      );
      for (const operation of ["add", "delete", "replace"]) {
        refusedUnchanged(replica, codes, () =>
          replica.replica.writeOne(modifyWith({ operation, attribute: type, values: ["v"] })),
        );
      }
    });
  }

  it("a type that is not a string is refused by modify", () => {
    for (const attribute of [5, null, undefined, ["cn"], { cn: 1 }]) {
      refusedUnchanged(replica, ["invalid-attribute"], () =>
        replica.replica.writeOne(modifyWith({ operation: "add", attribute, values: ["v"] })),
      );
    }
  });
});

describe("limits on values and attributes", () => {
  const replica = withPerson();
  const oversized = "x".repeat(valueBytesMax + 1);
  // Half as many characters, but two UTF-8 bytes each: the limit counts bytes.
  const oversizedInBytes = "é".repeat(valueBytesMax / 2 + 1);
  const tooMany = Array.from({ length: valuesPerAttributeMax + 1 }, (_, index) => `v${index}`);

  it("a value over valueBytesMax fails limit-exceeded in add and modify", () => {
    for (const value of [oversized, oversizedInBytes]) {
      refusedUnchanged(replica, ["limit-exceeded"], () =>
        replica.replica.writeOne(addWith({ objectClass: ["x"], description: [value] })),
      );
      for (const operation of ["add", "replace"]) {
        refusedUnchanged(replica, ["limit-exceeded"], () =>
          replica.replica.writeOne(modifyWith({ operation, attribute: "title", values: [value] })),
        );
      }
    }
    refusedUnchanged(replica, ["limit-exceeded"], () =>
      replica.replica.writeOne(addWith({ objectClass: ["group"], member: [`cn=${oversized}`] })),
    );
  });

  it("a value of exactly valueBytesMax is accepted", () => {
    const exact = "é".repeat(valueBytesMax / 2);
    const fresh = withPerson();
    assert.equal(codeOf(fresh.replica.writeOne(addWith({ objectClass: ["x"], description: [exact] }))), "ok");
    assert.deepEqual(unwrap(fresh.replica.get(`cn=new,${base}`, ["description"])).attributes, {
      description: [exact],
    });
  });

  it("more than valuesPerAttributeMax values fail limit-exceeded", () => {
    refusedUnchanged(replica, ["limit-exceeded"], () =>
      replica.replica.writeOne(addWith({ objectClass: ["x"], description: tooMany })),
    );
    refusedUnchanged(replica, ["limit-exceeded"], () =>
      replica.replica.writeOne(
        modifyWith({ operation: "replace", attribute: "description", values: tooMany }),
      ),
    );
  });

  it("a modify that would leave more than valuesPerAttributeMax values fails limit-exceeded", () => {
    const full = withPerson();
    unwrap(
      full.replica.writeOne(
        modifyWith({ operation: "replace", attribute: "description", values: tooMany.slice(1) }),
      ),
    );
    refusedUnchanged(full, ["limit-exceeded"], () =>
      full.replica.writeOne(modifyWith({ operation: "add", attribute: "description", values: ["one more"] })),
    );
  });

  it("values of one attribute over entryBytesMax fail limit-exceeded", () => {
    const count = Math.floor(entryBytesMax / valueBytesMax) + 1;
    const large = Array.from({ length: count }, (_, index) => `${index}`.padEnd(valueBytesMax, "x"));
    refusedUnchanged(replica, ["limit-exceeded"], () =>
      replica.replica.writeOne(addWith({ objectClass: ["x"], description: large })),
    );
  });

  it("an entry over entryBytesMax in total fails limit-exceeded", () => {
    // attributes.ts keyedValues sums the bytes of one attribute; nothing sums the entry, so
    // two attributes just under the limit each make an entry of about twice entryBytesMax.
    const half = Math.floor(entryBytesMax / valueBytesMax / 2) + 1;
    const large = (prefix: string) =>
      Array.from({ length: half }, (_, index) => `${prefix}${index}`.padEnd(valueBytesMax, "x"));
    const fresh = withPerson();
    refusedUnchanged(fresh, ["limit-exceeded"], () =>
      fresh.replica.writeOne(addWith({ objectClass: ["x"], description: large("d"), title: large("t") })),
    );
  });

  it("more than attributesPerEntryMax attributes fail limit-exceeded in add and modify", () => {
    const attributes: Record<string, string[]> = { objectClass: ["x"], cn: ["new"] };
    for (let index = 0; Object.keys(attributes).length <= attributesPerEntryMax; index++)
      attributes[`a${index}`] = ["v"];
    refusedUnchanged(replica, ["limit-exceeded"], () => replica.replica.writeOne(addWith(attributes)));

    const full = withPerson();
    const changes = Array.from({ length: attributesPerEntryMax - 3 }, (_, index) => ({
      operation: "add",
      attribute: `a${index}`,
      values: ["v"],
    }));
    unwrap(full.replica.writeOne(modifyWith(...changes)));
    assert.equal(Object.keys(unwrap(full.replica.get(person)).attributes).length, attributesPerEntryMax);
    refusedUnchanged(full, ["limit-exceeded"], () =>
      full.replica.writeOne(modifyWith({ operation: "add", attribute: "oneMore", values: ["v"] })),
    );
  });

  it("the RDN's attribute counts toward attributesPerEntryMax", () => {
    // originating.ts attributesForAdd compares the number of given attributes with the limit
    // before addNamingValues adds the RDN's attribute, so 256 given attributes without cn plus
    // the RDN cn=... store 257.
    const attributes: Record<string, string[]> = { objectClass: ["x"] };
    for (let index = 0; Object.keys(attributes).length < attributesPerEntryMax; index++)
      attributes[`a${index}`] = ["v"];
    const fresh = withPerson();
    refusedUnchanged(fresh, ["limit-exceeded"], () =>
      fresh.replica.writeOne(addWith(attributes, `cn=many,${base}`)),
    );
  });

  it("more than modificationsPerRequestMax changes fail limit-exceeded", () => {
    const changes = Array.from({ length: modificationsPerRequestMax + 1 }, (_, index) => ({
      operation: "replace",
      attribute: `a${index}`,
      values: ["v"],
    }));
    refusedUnchanged(replica, ["limit-exceeded"], () => replica.replica.writeOne(modifyWith(...changes)));
  });
});

describe("request shapes", () => {
  const replica = withPerson();

  it("values that are not strings fail invalid-value", () => {
    for (const value of [5, null, true, ["a"], { a: 1 }, undefined]) {
      refusedUnchanged(replica, ["invalid-value"], () =>
        replica.replica.writeOne(addWith({ objectClass: ["x"], description: [value] })),
      );
      refusedUnchanged(replica, ["invalid-value"], () =>
        replica.replica.writeOne(
          modifyWith({ operation: "replace", attribute: "description", values: ["ok", value] }),
        ),
      );
    }
  });

  it("values that are not a list fail invalid-value", () => {
    for (const values of ["a", 5, { 0: "a" }, null, true]) {
      refusedUnchanged(replica, ["invalid-value"], () =>
        replica.replica.writeOne(addWith({ objectClass: ["x"], description: values })),
      );
    }
    for (const values of ["a", 5, { 0: "a" }, true]) {
      refusedUnchanged(replica, ["invalid-value"], () =>
        replica.replica.writeOne(modifyWith({ operation: "add", attribute: "description", values })),
      );
    }
  });

  it("attributes that are not an object fail invalid-request", () => {
    for (const attributes of [null, undefined, [], [["objectClass", ["x"]]], "objectClass", 5]) {
      refusedUnchanged(replica, ["invalid-request"], () => replica.replica.writeOne(addWith(attributes)));
    }
  });

  it("changes that are not a list of change objects fail invalid-request", () => {
    for (const changes of [null, undefined, {}, "replace", 5]) {
      refusedUnchanged(replica, ["invalid-request"], () =>
        replica.replica.writeOne(untrusted({ op: "modify", dn: person, changes })),
      );
    }
    for (const change of [null, 5, "add", []]) {
      refusedUnchanged(replica, ["invalid-request"], () => replica.replica.writeOne(modifyWith(change)));
    }
    for (const operation of ["increment", "ADD", "", undefined, 0]) {
      refusedUnchanged(replica, ["invalid-request"], () =>
        replica.replica.writeOne(modifyWith({ operation, attribute: "description", values: ["x"] })),
      );
    }
  });

  it("an unknown op, or a DN, filter or attribute list of the wrong type, fails instead of throwing", () => {
    // originating.ts originate has no default case: write([{ op: "rename" }]) returns
    // [undefined]. parseDn and parseFilter assume strings: a number as dn (add, modify,
    // delete, modifyDn), newRdn, newParent, search base or filter throws a TypeError out of
    // write()/search(), which also rolls back the other requests of the batch; so does a
    // non-string name in get()'s or search()'s attribute list (read.ts selection).
    const replica = withPerson();
    const results = replica.replica.write([untrusted({ op: "rename", dn: person })]);
    assert.equal(codeOf(results[0] ?? { ok: true, value: undefined }), "invalid-request");
    for (const request of [
      { op: "add", dn: 5, attributes: { objectClass: ["x"] } },
      { op: "delete", dn: null },
      { op: "modifyDn", dn: person, newRdn: 5 },
      { op: "modifyDn", dn: person, newRdn: "cn=alice", newParent: 5 },
    ]) {
      refusedUnchanged(replica, ["invalid-request", "invalid-dn"], () =>
        replica.replica.writeOne(untrusted(request)),
      );
    }
    refusedUnchanged(replica, ["invalid-request", "invalid-filter"], () =>
      replica.replica.search({ base, filter: 5 as unknown as string }),
    );
    refusedUnchanged(replica, ["invalid-request", "invalid-attribute"], () =>
      replica.replica.get(person, [5 as unknown as string]),
    );
  });
});

// ---------------------------------------------------------------------------------------------
// replication messages

/** A source replica with a few entries of every item kind, and an empty destination. */
function replicationPair(): { source: TestReplica; destination: TestReplica } {
  const [source, destination] = makeDirectory(["node-a", "node-b"]);
  assert.ok(source !== undefined && destination !== undefined);
  const results = source.replica.write([
    { op: "add", dn: `ou=people,${base}`, attributes: { objectClass: ["organizationalUnit"] } },
    {
      op: "add",
      dn: `cn=alice,ou=people,${base}`,
      attributes: { objectClass: ["person"], description: ["d"] },
    },
    {
      op: "add",
      dn: `cn=staff,${base}`,
      attributes: { objectClass: ["group"], member: [`cn=alice,ou=people,${base}`] },
    },
    { op: "add", dn: `cn=gone,${base}`, attributes: { objectClass: ["person"] } },
    { op: "delete", dn: `cn=gone,${base}` },
  ]);
  assert.ok(results.every((result) => result.ok));
  return { source, destination };
}

function isObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function objectAt(value: unknown, what: string): JsonObject {
  assert.ok(isObject(value), `${what} is not an object`);
  return value;
}

function listAt(value: unknown, what: string): unknown[] {
  assert.ok(Array.isArray(value), `${what} is not a list`);
  return value;
}

function cloneJson<T>(value: T): JsonObject {
  return objectAt(JSON.parse(JSON.stringify(value)), "clone");
}

/** A mutable JSON copy of a real page, with accessors for the parts the mutations change. */
class PageDraft {
  readonly page: JsonObject;

  constructor(page: unknown) {
    this.page = cloneJson(page);
  }

  get entries(): unknown[] {
    return listAt(this.page.entries, "entries");
  }

  get from(): JsonObject {
    return objectAt(this.page.from, "from");
  }

  /** The entry whose name item has this RDN (a partition root's is the partition DN). */
  entry(rdn: string): JsonObject {
    for (const candidate of this.entries) {
      const entry = objectAt(candidate, "entry");
      const name = listAt(entry.items, "items").find(
        (item) =>
          isObject(item) && item.attribute === "@name" && isObject(item.value) && item.value.rdn === rdn,
      );
      if (name !== undefined) return entry;
    }
    assert.fail(`no entry named ${rdn} in the page`);
  }

  items(rdn: string): unknown[] {
    return listAt(this.entry(rdn).items, "items");
  }

  item(rdn: string, attribute: string): JsonObject {
    const found = this.items(rdn).find((item) => isObject(item) && item.attribute === attribute);
    return objectAt(found, `${rdn} ${attribute}`);
  }

  value(rdn: string, attribute: string): JsonObject {
    return objectAt(this.item(rdn, attribute).value, "value");
  }

  stamp(rdn: string, attribute: string): JsonObject {
    return objectAt(this.item(rdn, attribute).stamp, "stamp");
  }

  origin(rdn: string): JsonObject {
    return objectAt(this.entry(rdn).origin, "origin");
  }
}

type Mutation = readonly [string, (draft: PageDraft) => void];

const alice = "cn=alice";
const staff = "cn=staff";
const gone = "cn=gone";
const lostAndFound = "cn=LostAndFound";
/** A deletion item, stamped after `stamp`. */
function deletion(stamp: JsonObject): JsonObject {
  return {
    attribute: "@deleted",
    key: "",
    value: { kind: "deleted" },
    stamp: { ...stamp, version: Number(stamp.version) + 1 },
  };
}
const tooManyUtdEntries: JsonObject = {};
for (let index = 0; index <= utdEntriesMax; index++)
  tooManyUtdEntries[index.toString(16).padStart(32, "0")] = 1;

const pageMutations: readonly Mutation[] = [
  // the page itself
  ["source is not a string", (d) => (d.page.source = 5)],
  ["source is not a node id", (d) => (d.page.source = "Node_A")],
  ["source is the destination itself", (d) => (d.page.source = "node-b")],
  ["sourceInvocation is not hex", (d) => (d.page.sourceInvocation = "not-an-invocation-id-0000000000000")],
  [
    "sourceInvocation is upper-case",
    (d) => (d.page.sourceInvocation = String(d.page.sourceInvocation).toUpperCase()),
  ],
  ["sourceInvocation is missing", (d) => delete d.page.sourceInvocation],
  ["highUsn is a string", (d) => (d.page.highUsn = String(d.page.highUsn))],
  ["highUsn is negative", (d) => (d.page.highUsn = -1)],
  ["highUsn is fractional", (d) => (d.page.highUsn = 1.5)],
  ["highUsn is beyond the safe integers", (d) => (d.page.highUsn = 2 ** 53)],
  ["more is a string", (d) => (d.page.more = "false")],
  [
    "more is claimed without highUsn above from.objectUsn",
    (d) => {
      d.page.more = true;
      d.page.highUsn = d.from.objectUsn;
    },
  ],
  ["more is null", (d) => (d.page.more = null)],
  ["from is missing", (d) => delete d.page.from],
  ["from is a list", (d) => (d.page.from = [])],
  ["from.invocation is not hex", (d) => (d.from.invocation = "xyz")],
  ["from.objectUsn is negative", (d) => (d.from.objectUsn = -1)],
  ["from.propertyUsn is a string", (d) => (d.from.propertyUsn = "0")],
  [
    "from.propertyUsn is above from.objectUsn",
    (d) => {
      d.from.objectUsn = 1;
      d.from.propertyUsn = 2;
    },
  ],
  [
    "highUsn is below from.objectUsn",
    (d) => {
      d.from.objectUsn = Number(d.page.highUsn) + 1;
      d.from.propertyUsn = 0;
    },
  ],
  ["utd is a list", (d) => (d.page.utd = [])],
  ["utd is missing", (d) => delete d.page.utd],
  ["utd has a key that is not an invocation id", (d) => (d.page.utd = { "not-hex": 1 })],
  ["utd has a negative USN", (d) => (d.page.utd = { [String(d.page.sourceInvocation)]: -1 })],
  ["utd has a string USN", (d) => (d.page.utd = { [String(d.page.sourceInvocation)]: "3" })],
  ["utd has more than utdEntriesMax entries", (d) => (d.page.utd = tooManyUtdEntries)],
  ["entries is an object", (d) => (d.page.entries = {})],
  ["entries is missing", (d) => delete d.page.entries],
  [
    "entries holds more than pageEntriesMaxLimit",
    (d) => (d.page.entries = Array(pageEntriesMaxLimit + 1).fill(d.entries[0])),
  ],
  // entries
  ["an entry is a string", (d) => (d.entries[0] = "entry")],
  ["an entry is null", (d) => (d.entries[0] = null)],
  ["a guid is a number", (d) => (d.entry(alice).guid = 5)],
  ["a guid is not hex", (d) => (d.entry(alice).guid = "zz".repeat(16))],
  ["a guid is upper-case", (d) => (d.entry(alice).guid = String(d.entry(alice).guid).toUpperCase())],
  ["a guid is too short", (d) => (d.entry(alice).guid = String(d.entry(alice).guid).slice(1))],
  ["a guid appears twice", (d) => d.entries.push(cloneJson(d.entry(alice)))],
  ["a partition is not a string", (d) => (d.entry(alice).partition = 5)],
  ["a partition is not normalised", (d) => (d.entry(alice).partition = "DC=Example,DC=com")],
  ["a partition has spaces", (d) => (d.entry(alice).partition = "dc=example, dc=com")],
  ["a partition is empty", (d) => (d.entry(alice).partition = "")],
  ["a partition does not parse", (d) => (d.entry(alice).partition = "dc=example,,dc=com")],
  ["an origin is missing", (d) => delete d.entry(alice).origin],
  ["an origin USN is negative", (d) => (d.origin(alice).usn = -1)],
  ["an origin invocation is empty", (d) => (d.origin(alice).invocation = "")],
  ["items is an object", (d) => (d.entry(alice).items = {})],
  ["items is empty", (d) => (d.entry(alice).items = [])],
  // items
  ["an item is a number", (d) => (d.items(alice)[0] = 5)],
  ["an item attribute is a number", (d) => (d.item(alice, "description").attribute = 5)],
  ["an item key is null", (d) => (d.item(alice, "description").key = null)],
  ["an item appears twice", (d) => d.items(alice).push(cloneJson(d.item(alice, "description")))],
  ["an attribute is not lower-case", (d) => (d.item(alice, "description").attribute = "Description")],
  ["an attribute is not a type", (d) => (d.item(alice, "description").attribute = "des cription")],
  ["an attribute is an unknown system item", (d) => (d.item(alice, "description").attribute = "@other")],
  ["a type does not match its attribute", (d) => (d.value(alice, "description").type = "sn")],
  ["a values item has a key", (d) => (d.item(alice, "description").key = "d")],
  ["a values list is a string", (d) => (d.value(alice, "description").values = "d")],
  ["a value is a number", (d) => (d.value(alice, "description").values = [5])],
  [
    "a value is over valueBytesMax",
    (d) => (d.value(alice, "description").values = ["x".repeat(valueBytesMax + 1)]),
  ],
  [
    "a values list is over valuesPerAttributeMax",
    (d) =>
      (d.value(alice, "description").values = Array.from(
        { length: valuesPerAttributeMax + 1 },
        (_, i) => `${i}`,
      )),
  ],
  ["an item value is null", (d) => (d.item(alice, "description").value = null)],
  ["an item kind is unknown", (d) => (d.value(alice, "description").kind = "blob")],
  ["a name item has the values kind", (d) => (d.value(alice, "@name").kind = "values")],
  ["a deletion item has a key", (d) => (d.item(gone, "@deleted").key = "x")],
  ["a deletion item has another kind", (d) => (d.value(gone, "@deleted").kind = "name")],
  // stamps
  ["a stamp is missing", (d) => delete d.item(alice, "description").stamp],
  ["a stamp version is 0", (d) => (d.stamp(alice, "description").version = 0)],
  ["a stamp version is negative", (d) => (d.stamp(alice, "description").version = -1)],
  ["a stamp version is fractional", (d) => (d.stamp(alice, "description").version = 1.5)],
  ["a stamp time is a string", (d) => (d.stamp(alice, "description").time = "now")],
  ["a stamp time is fractional", (d) => (d.stamp(alice, "description").time = 1.5)],
  ["a stamp invocation is upper-case", (d) => (d.stamp(alice, "description").invocation = "A".repeat(32))],
  ["a stamp USN is 0", (d) => (d.stamp(alice, "description").usn = 0)],
  ["a stamp USN is negative", (d) => (d.stamp(alice, "description").usn = -1)],
  // names
  ["an RDN does not parse", (d) => (d.value(alice, "@name").rdn = "cn")],
  ["an RDN is a whole DN", (d) => (d.value(alice, "@name").rdn = "cn=alice,ou=people")],
  ["an RDN is empty", (d) => (d.value(alice, "@name").rdn = "")],
  ["an RDN is a number", (d) => (d.value(alice, "@name").rdn = 5)],
  ["a parent is not a guid", (d) => (d.value(alice, "@name").parent = "parent")],
  ["a non-root guid has a null parent", (d) => (d.value(alice, "@name").parent = null)],
  ["a root has a parent", (d) => (d.value(base, "@name").parent = d.entry(alice).guid)],
  ["a root is named by another DN", (d) => (d.value(base, "@name").rdn = "dc=other,dc=com")],
  // a partition's root and LostAndFound: no write can delete, rename or move them
  ["a partition root is deleted", (d) => d.items(base).push(deletion(d.stamp(base, "@name")))],
  ["a LostAndFound is deleted", (d) => d.items(lostAndFound).push(deletion(d.stamp(lostAndFound, "@name")))],
  ["a LostAndFound is renamed", (d) => (d.value(lostAndFound, "@name").rdn = "cn=found")],
  ["a LostAndFound is moved", (d) => (d.value(lostAndFound, "@name").parent = d.entry(alice).guid)],
  // links
  ["a link key does not match its value", (d) => (d.item(staff, "member").key = "cn=bob,dc=example,dc=com")],
  [
    "a link value is not a DN",
    (d) => {
      d.value(staff, "member").value = "not a dn";
      d.item(staff, "member").key = "not a dn";
    },
  ],
  ["a link value is a number", (d) => (d.value(staff, "member").value = 5)],
  ["a link present flag is a string", (d) => (d.value(staff, "member").present = "true")],
  [
    "a link value is over valueBytesMax",
    (d) => {
      const value = `cn=${"x".repeat(valueBytesMax)}`;
      d.value(staff, "member").value = value;
      d.item(staff, "member").key = value;
    },
  ],
  [
    "the link attribute member comes as a values item",
    (d) => {
      const item = d.item(staff, "member");
      item.key = "";
      item.value = { kind: "values", type: "member", values: [`cn=alice,ou=people,${base}`] };
    },
  ],
];

describe("malformed pages to applyChanges", () => {
  const { source, destination } = replicationPair();
  const page = unwrap(source.replica.getChanges(destination.replica.changeRequest(source.name)));

  for (const [name, mutate] of pageMutations) {
    it(`refuses a page where ${name}`, () => {
      const draft = new PageDraft(page);
      mutate(draft);
      refusedUnchanged(destination, ["invalid-page"], () => destination.replica.applyChanges(draft.page));
    });
  }

  it("refuses a page that is not an object", () => {
    for (const value of [null, undefined, 5, "page", [], [page], true]) {
      refusedUnchanged(destination, ["invalid-page"], () => destination.replica.applyChanges(value));
    }
  });

  it("after all that, the unmodified page still applies", () => {
    const outcome = unwrap(destination.replica.applyChanges(page));
    assert.equal(outcome.cycleComplete, true);
    assert.equal(outcome.entriesChanged, page.entries.length);
    assert.deepEqual(
      unwrap(destination.replica.get(`cn=staff,${base}`)),
      unwrap(source.replica.get(`cn=staff,${base}`)),
    );
    assert.equal(codeOf(destination.replica.get(`cn=gone,${base}`)), "no-such-entry");
  });

  it("refuses a values item that lists one value twice", () => {
    // replication/validate.ts validateItemValue checks each value's type and size but not
    // duplicates (nor the entry's attribute count or total bytes), so a page can store
    // description: ["d", "d", "D"], which add and modify refuse with attribute-or-value-exists.
    const { source: from, destination: to } = replicationPair();
    const draft = new PageDraft(unwrap(from.replica.getChanges(to.replica.changeRequest(from.name))));
    draft.value(alice, "description").values = ["d", "d", "D"];
    refusedUnchanged(to, ["invalid-page"], () => to.replica.applyChanges(draft.page));
  });

  it("a stamp version that would overflow on the next write does not wedge replication", () => {
    // validate.ts validateStamp accepts any safe integer version. context.ts
    // originatingStamp adds one, giving 2^53, which is not a safe integer: every later page
    // from this replica that holds the item is refused whole with invalid-page, so nothing
    // it writes can replicate any more.
    const [a, b, c] = makeDirectory(["node-a", "node-b", "node-c"]);
    assert.ok(a !== undefined && b !== undefined && c !== undefined);
    unwrap(
      a.replica.writeOne({
        op: "add",
        dn: person,
        attributes: { objectClass: ["person"], description: ["d"] },
      }),
    );
    const draft = new PageDraft(unwrap(a.replica.getChanges(b.replica.changeRequest(a.name))));
    draft.stamp(alice, "description").version = Number.MAX_SAFE_INTEGER;
    const accepted = b.replica.applyChanges(draft.page);
    if (!accepted.ok) return; // refusing the page is a fix too
    unwrap(
      b.replica.writeOne({
        op: "modify",
        dn: person,
        changes: [{ operation: "replace", attribute: "description", values: ["e"] }],
      }),
    );
    const page = unwrap(b.replica.getChanges(c.replica.changeRequest(b.name)));
    assert.equal(codeOf(c.replica.applyChanges(page)), "ok");
  });
});

describe("a UTD a page brings, merged", () => {
  it("a page whose UTD would take the replica's past utdEntriesMax leaves it as it was", () => {
    // Each page's UTD is within utdEntriesMax; its merge with this replica's was not bounded:
    // one page naming utdEntriesMax invocations took node-b's UTD past it, and every request
    // and page node-b sent from then on was refused by every partner ("UTD has more than
    // 100000 entries"), for good.
    const [a, b, c] = makeDirectory(["node-a", "node-b", "node-c"]);
    assert.ok(a !== undefined && b !== undefined && c !== undefined);
    pull(b.replica, a.replica);
    const draft = new PageDraft(unwrap(a.replica.getChanges(b.replica.changeRequest(a.name))));
    const crowded: JsonObject = { [String(draft.page.sourceInvocation)]: draft.page.highUsn };
    for (let index = 1; index < utdEntriesMax; index++) crowded[index.toString(16).padStart(32, "0")] = 1;
    draft.page.utd = crowded;
    const before = b.replica.utd();
    unwrap(b.replica.applyChanges(draft.page));
    assert.deepEqual(b.replica.utd(), before);
    unwrap(b.replica.writeOne({ op: "add", dn: person, attributes: { objectClass: ["person"] } }));
    pull(c.replica, b.replica);
    pull(a.replica, b.replica);
    assert.equal(codeOf(c.replica.get(person)), "ok", "node-b still replicates");
  });
});

describe("malformed change requests to getChanges", () => {
  const { source, destination } = replicationPair();
  const request = destination.replica.changeRequest(source.name);
  const invocation = source.replica.invocationId;

  const mutations: ReadonlyArray<readonly [string, (request: JsonObject) => void, string]> = [
    ["destination is missing", (r) => delete r.destination, "invalid-page"],
    ["destination is a number", (r) => (r.destination = 5), "invalid-page"],
    ["destination is empty", (r) => (r.destination = ""), "invalid-page"],
    ["destination has upper-case letters", (r) => (r.destination = "Node-B"), "invalid-page"],
    ["destination starts with a dash", (r) => (r.destination = "-node"), "invalid-page"],
    ["destination is 64 characters", (r) => (r.destination = "n".repeat(64)), "invalid-page"],
    ["destination is the source itself", (r) => (r.destination = "node-a"), "invalid-request"],
    ["from is missing", (r) => delete r.from, "invalid-page"],
    ["from is null", (r) => (r.from = null), "invalid-page"],
    [
      "from.invocation is not hex",
      (r) => (r.from = { invocation: "xyz", objectUsn: 0, propertyUsn: 0 }),
      "invalid-page",
    ],
    [
      "from.objectUsn is negative",
      (r) => (r.from = { invocation: null, objectUsn: -1, propertyUsn: 0 }),
      "invalid-page",
    ],
    [
      "from.objectUsn is fractional",
      (r) => (r.from = { invocation: null, objectUsn: 1.5, propertyUsn: 0 }),
      "invalid-page",
    ],
    [
      "from.objectUsn is unsafe",
      (r) => (r.from = { invocation: null, objectUsn: 2 ** 53, propertyUsn: 0 }),
      "invalid-page",
    ],
    [
      "from.propertyUsn is a string",
      (r) => (r.from = { invocation: null, objectUsn: 0, propertyUsn: "0" }),
      "invalid-page",
    ],
    [
      "from.propertyUsn is above from.objectUsn",
      (r) => (r.from = { invocation: invocation, objectUsn: 1, propertyUsn: 2 }),
      "invalid-page",
    ],
    ["utd is missing", (r) => delete r.utd, "invalid-page"],
    ["utd is a list", (r) => (r.utd = [invocation]), "invalid-page"],
    ["utd has a key that is not an invocation id", (r) => (r.utd = { "node-a": 1 }), "invalid-page"],
    ["utd has an upper-case key", (r) => (r.utd = { [invocation.toUpperCase()]: 1 }), "invalid-page"],
    ["utd has a negative USN", (r) => (r.utd = { [invocation]: -1 }), "invalid-page"],
    ["utd has a fractional USN", (r) => (r.utd = { [invocation]: 0.5 }), "invalid-page"],
    ["utd has a null USN", (r) => (r.utd = { [invocation]: null }), "invalid-page"],
    ["utd has more than utdEntriesMax entries", (r) => (r.utd = tooManyUtdEntries), "invalid-page"],
    ["limits is missing", (r) => delete r.limits, "invalid-page"],
    ["limits.entriesMax is 0", (r) => (r.limits = { entriesMax: 0, bytesMax: 1024 }), "invalid-page"],
    [
      "limits.entriesMax is above pageEntriesMaxLimit",
      (r) => (r.limits = { entriesMax: pageEntriesMaxLimit + 1, bytesMax: 1024 }),
      "invalid-page",
    ],
    [
      "limits.entriesMax is fractional",
      (r) => (r.limits = { entriesMax: 1.5, bytesMax: 1024 }),
      "invalid-page",
    ],
    [
      "limits.entriesMax is a string",
      (r) => (r.limits = { entriesMax: "10", bytesMax: 1024 }),
      "invalid-page",
    ],
    ["limits.bytesMax is 0", (r) => (r.limits = { entriesMax: 10, bytesMax: 0 }), "invalid-page"],
    [
      "limits.bytesMax is above pageBytesMaxLimit",
      (r) => (r.limits = { entriesMax: 10, bytesMax: pageBytesMaxLimit + 1 }),
      "invalid-page",
    ],
  ];

  for (const [name, mutate, code] of mutations) {
    it(`refuses a request where ${name} (${code})`, () => {
      const bad = cloneJson(request);
      mutate(bad);
      refusedUnchanged(source, [code], () => source.replica.getChanges(bad));
    });
  }

  it("refuses a request that is not an object", () => {
    for (const value of [null, undefined, 5, "request", [], [request], false]) {
      refusedUnchanged(source, ["invalid-page"], () => source.replica.getChanges(value));
    }
  });

  it("answers the unmodified request", () => {
    const page = unwrap(source.replica.getChanges(cloneJson(request)));
    assert.equal(page.source, source.name);
    assert.ok(page.entries.length > 0);
  });
});

// ---------------------------------------------------------------------------------------------
// properties

/** Calls `run`, which must not throw; a refusal must carry one of `codes` and change nothing. */
function neverThrowsOrChangesOnRefusal(
  replica: TestReplica,
  codes: readonly string[],
  run: () => Result<unknown>,
): void {
  const before = dumpStore(replica.store);
  const result = run();
  if (result.ok) return;
  assert.ok(codes.includes(result.error.code), JSON.stringify(result.error));
  assert.deepEqual(dumpStore(replica.store), before);
}

describe("properties", () => {
  const { source, destination } = replicationPair();
  const page = unwrap(source.replica.getChanges(destination.replica.changeRequest(source.name)));
  const request = destination.replica.changeRequest(source.name);
  const pagePaths = pathsOf(cloneJson(page));
  const requestPaths = pathsOf(cloneJson(request));

  it("random JSON never throws and never changes the store", () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        const beforeDestination = dumpStore(destination.store);
        const applied = destination.replica.applyChanges(value);
        assert.equal(codeOf(applied), "invalid-page");
        assert.deepEqual(dumpStore(destination.store), beforeDestination);
        const beforeSource = dumpStore(source.store);
        const answered = source.replica.getChanges(value);
        assert.equal(codeOf(answered), "invalid-page");
        assert.deepEqual(dumpStore(source.store), beforeSource);
      }),
      { numRuns: 150 },
    );
  });

  it("a real page with one field replaced or removed never throws, and is refused whole or applied", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...pagePaths),
        fc.jsonValue({ maxDepth: 2 }),
        fc.boolean(),
        (path, replacement, remove) => {
          const mutated = replacedAt(page, path, replacement, remove);
          neverThrowsOrChangesOnRefusal(destination, ["invalid-page"], () =>
            destination.replica.applyChanges(mutated),
          );
        },
      ),
      { numRuns: 200 },
    );
  });

  it("a real request with one field replaced or removed never throws and never changes the store", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...requestPaths),
        fc.jsonValue({ maxDepth: 2 }),
        fc.boolean(),
        (path, replacement, remove) => {
          const mutated = replacedAt(request, path, replacement, remove);
          const before = dumpStore(source.store);
          const answered = source.replica.getChanges(mutated);
          const after = dumpStore(source.store);
          if (!answered.ok) {
            assert.ok(["invalid-page", "invalid-request"].includes(answered.error.code));
            assert.deepEqual(after, before);
            return;
          }
          // A valid request may teach the source about its peer (UTD report, purge horizon,
          // even a rollback); the directory's data never changes by answering a pull.
          assert.deepEqual(
            [after.entries, after.items, after.utd, after.watermarks],
            [before.entries, before.items, before.utd, before.watermarks],
          );
        },
      ),
      { numRuns: 100 },
    );
  });
});

describe("a fresh replica refuses replication input before it holds anything", () => {
  it("applyChanges and getChanges on an empty replica", () => {
    const empty = makeReplica("node-z", 9);
    const { source } = replicationPair();
    const page = unwrap(source.replica.getChanges(empty.replica.changeRequest(source.name)));
    const draft = new PageDraft(page);
    draft.value(alice, "@name").rdn = "cn";
    refusedUnchanged(empty, ["invalid-page"], () => empty.replica.applyChanges(draft.page));
    refusedUnchanged(empty, ["invalid-page"], () => empty.replica.getChanges({}));
    refusedUnchanged(empty, ["invalid-request"], () =>
      empty.replica.getChanges(cloneJson(empty.replica.changeRequest(source.name))),
    );
  });
});
