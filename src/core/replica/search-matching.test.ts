import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { makeDirectory } from "../../../test/support/replicas.ts";
import { unwrap } from "../result.ts";
import { search } from "./read.ts";

/**
 * How a search's filter compares an entry's values. Link attributes (member, seeAlso, …) are
 * keyed by DN when written, so two spellings of one DN are one value; a filter must agree, as
 * OpenLDAP's distinguishedNameMatch does, or a group is not found by the member it holds.
 */
const base = "dc=example,dc=com";

function directoryWithGroup(): ReturnType<typeof makeDirectory>[number] {
  const [a] = makeDirectory(["node-a"]);
  assert.ok(a !== undefined);
  const add = (dn: string, attributes: Record<string, string[]>) =>
    unwrap(a.replica.writeOne({ op: "add", dn, attributes }));
  add(`ou=people,${base}`, { objectClass: ["organizationalUnit"] });
  add(`cn=alice,ou=people,${base}`, { objectClass: ["person"], sn: ["Liddell"] });
  add(`cn=staff,${base}`, {
    objectClass: ["groupOfNames"],
    member: ["CN=Alice, OU=People, DC=Example, DC=Com"],
    seeAlso: [`cn=alice,ou=people,${base}`],
    description: ["CN=Alice, OU=People"],
  });
  return a;
}

function found(a: ReturnType<typeof directoryWithGroup>, filter: string): string[] {
  const result = unwrap(search(a.store, { base, scope: "sub", filter, attributes: ["1.1"] }));
  return result.entries.map((entry) => entry.dn);
}

describe("search: DN-valued attributes", () => {
  it("finds a group by its member however the DN is spelt", () => {
    const a = directoryWithGroup();
    const group = [`cn=staff,${base}`];
    assert.deepEqual(found(a, `(member=cn=alice,ou=people,${base})`), group);
    assert.deepEqual(found(a, "(member=CN=ALICE,ou=People,dc=example,dc=com)"), group);
    assert.deepEqual(found(a, "(seeAlso=CN=Alice, OU=People, DC=Example, DC=Com)"), group);
    assert.deepEqual(found(a, "(seeAlso=cn=\\5c41lice,ou=people,dc=example,dc=com)"), group);
    assert.deepEqual(found(a, "(member=CN=Alice, OU=People, DC=Example, DC=Com)"), group);
  });

  it("matches no other DN, and no assertion that is not a DN", () => {
    const a = directoryWithGroup();
    assert.deepEqual(found(a, `(member=cn=bob,ou=people,${base})`), []);
    assert.deepEqual(found(a, "(member=cn=alice,ou=people)"), []);
    assert.deepEqual(found(a, "(member=alice)"), []);
  });

  it("leaves other attributes to caseIgnoreMatch", () => {
    const a = directoryWithGroup();
    assert.deepEqual(found(a, "(description=cn=alice,ou=people)"), []);
    assert.deepEqual(found(a, "(description=cn=alice, ou=people)"), [`cn=staff,${base}`]);
  });
});
