import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { isUrgentWrite } from "./urgent.ts";

describe("urgent changes", () => {
  it("config writes and urgent attributes are urgent; ordinary writes are not", () => {
    assert.equal(
      isUrgentWrite({ op: "add", dn: "cn=s1,cn=Servers,CN=config", attributes: { cn: ["s1"] } }),
      true,
    );
    assert.equal(isUrgentWrite({ op: "delete", dn: "cn=x,cn=config" }), true);
    assert.equal(
      isUrgentWrite({
        op: "modify",
        dn: "cn=u,dc=example,dc=com",
        changes: [{ operation: "replace", attribute: "lockoutTime", values: ["1"] }],
      }),
      true,
    );
    assert.equal(
      isUrgentWrite({
        op: "add",
        dn: "cn=u,dc=example,dc=com",
        attributes: { userPassword: ["x"], cn: ["u"] },
      }),
      true,
    );
    assert.equal(
      isUrgentWrite({
        op: "modify",
        dn: "cn=u,dc=example,dc=com",
        changes: [{ operation: "replace", attribute: "description", values: ["1"] }],
      }),
      false,
    );
    assert.equal(isUrgentWrite({ op: "delete", dn: "cn=u,dc=example,dc=com" }), false);
    assert.equal(isUrgentWrite({ op: "delete", dn: "not a dn ===" }), false);
  });
});
