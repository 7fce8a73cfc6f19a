import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { pathToFileURL } from "node:url";
import { importCommand, operationOf, readFileUrl } from "./ldif-import.ts";
import { applyChanges, sameAttributes, withNamingValues } from "./ldif-replay.ts";

/** The pieces of `plexus import` that need no node: record to operation, replay checks, `:<` files. */
describe("LDIF import pieces", () => {
  it("turns each record kind into its batch operation", () => {
    assert.deepEqual(operationOf({ kind: "content", dn: "cn=a", attributes: { cn: ["a"] } }), {
      op: "create",
      dn: "cn=a",
      attributes: { cn: ["a"] },
    });
    assert.deepEqual(operationOf({ kind: "delete", dn: "cn=a" }), { op: "delete", dn: "cn=a" });
    assert.deepEqual(
      operationOf({
        kind: "modify",
        dn: "cn=a",
        changes: [
          { operation: "delete", attribute: "mail", values: [] },
          { operation: "replace", attribute: "sn", values: ["b"] },
        ],
      }),
      {
        op: "modify",
        dn: "cn=a",
        changes: [
          { operation: "delete", attribute: "mail" },
          { operation: "replace", attribute: "sn", values: ["b"] },
        ],
      },
    );
    assert.deepEqual(
      operationOf({
        kind: "modrdn",
        dn: "cn=a,dc=x",
        newRdn: "cn=b",
        deleteOldRdn: false,
        newSuperior: "ou=y",
      }),
      { op: "rename", dn: "cn=a,dc=x", newRdn: "cn=b", deleteOldRdn: false, newParent: "ou=y" },
    );
  });

  it("sees a modify as applied when applying it again changes nothing", () => {
    const entry = new Map([
      ["cn", ["a"]],
      ["mail", ["a@x", "b@x"]],
    ]);
    const same = (changes: Parameters<typeof applyChanges>[1]) =>
      sameAttributes(entry, applyChanges(entry, changes));
    assert.equal(same([{ operation: "add", attribute: "MAIL", values: ["a@x"] }]), true);
    assert.equal(same([{ operation: "add", attribute: "mail", values: ["c@x"] }]), false);
    assert.equal(same([{ operation: "delete", attribute: "description", values: [] }]), true);
    assert.equal(same([{ operation: "delete", attribute: "mail", values: ["z@x"] }]), true);
    assert.equal(same([{ operation: "delete", attribute: "mail", values: ["a@x"] }]), false);
    assert.equal(same([{ operation: "replace", attribute: "mail", values: ["b@x", "a@x"] }]), true);
    assert.equal(same([{ operation: "replace", attribute: "cn", values: [] }]), false);
  });

  it("counts the values the node adds from the RDN as part of a create", () => {
    const attributes = new Map([["objectclass", ["person"]]]);
    assert.deepEqual(
      withNamingValues("cn=Idem1+sn=X,ou=people,dc=example,dc=com", attributes),
      new Map([
        ["objectclass", ["person"]],
        ["cn", ["Idem1"]],
        ["sn", ["X"]],
      ]),
    );
    // A value equal to the RDN's as the node compares values is kept, none added.
    assert.deepEqual(
      withNamingValues("cn=idem  one,dc=x", new Map([["cn", ["IDEM one", "other"]]])),
      new Map([["cn", ["IDEM one", "other"]]]),
    );
    assert.deepEqual(attributes, new Map([["objectclass", ["person"]]]), "the input is left as it was");
  });

  it("refuses a directory as its input file with a usage error", async () => {
    const directory = mkdtempSync(join(tmpdir(), "plexus-ldif-dir-"));
    try {
      let stderr = "";
      const code = await importCommand(
        [directory, "--url", "http://127.0.0.1:1"],
        { write: () => {} },
        { write: (text: string) => (stderr += text) },
        {},
      );
      assert.equal(code, 2, stderr);
      assert.match(stderr, /^plexus import: .* is a directory: give an LDIF file\n/);
      assert.doesNotMatch(stderr, /EISDIR|\n\s+at /);
    } finally {
      rmSync(directory, { recursive: true, force: true });
    }
  });

  it("reads :< values from file:// URLs only", () => {
    const directory = mkdtempSync(join(tmpdir(), "plexus-ldif-url-"));
    try {
      const path = join(directory, "value.txt");
      writeFileSync(path, "from a file");
      assert.equal(
        Buffer.from(readFileUrl(pathToFileURL(path).href) as Uint8Array).toString(),
        "from a file",
      );
      assert.match((readFileUrl("http://example.com/x") as { error: string }).error, /only file:\/\//);
      assert.match(
        (readFileUrl(pathToFileURL(join(directory, "none")).href) as { error: string }).error,
        /ENOENT/,
      );
    } finally {
      rmSync(directory, { recursive: true, force: true });
    }
  });
});
