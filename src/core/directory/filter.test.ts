import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { AssertionError } from "../assert.ts";
import type { ErrorCode, PlexusError, Result } from "../result.ts";
import { unwrap } from "../result.ts";
import type { Filter } from "./filter.ts";
import {
  filterDepthMax,
  filterItemsMax,
  filterLengthMax,
  formatFilter,
  matchesFilter,
  parseFilter,
} from "./filter.ts";

function errorOf<T>(result: Result<T>): PlexusError {
  if (result.ok) assert.fail(`expected a failure, got ${JSON.stringify(result.value)}`);
  return result.error;
}

function filter(text: string): Filter {
  return unwrap(parseFilter(text));
}

/** An entry as a map from lowercased attribute type to values; absent means no values. */
type Entry = Readonly<Record<string, readonly string[]>>;

function matches(text: string, entry: Entry): boolean {
  return matchesFilter(filter(text), (attribute) => entry[attribute] ?? []);
}

describe("parseFilter: RFC 4515 section 4 examples", () => {
  it("(cn=Babs Jensen)", () => {
    assert.deepEqual(filter("(cn=Babs Jensen)"), { type: "equality", attribute: "cn", value: "Babs Jensen" });
  });

  it("(!(cn=Tim Howes))", () => {
    assert.deepEqual(filter("(!(cn=Tim Howes))"), {
      type: "not",
      filter: { type: "equality", attribute: "cn", value: "Tim Howes" },
    });
  });

  it("(&(objectClass=Person)(|(sn=Jensen)(cn=Babs J*)))", () => {
    assert.deepEqual(filter("(&(objectClass=Person)(|(sn=Jensen)(cn=Babs J*)))"), {
      type: "and",
      filters: [
        { type: "equality", attribute: "objectclass", value: "Person" },
        {
          type: "or",
          filters: [
            { type: "equality", attribute: "sn", value: "Jensen" },
            { type: "substring", attribute: "cn", initial: "Babs J", any: [] },
          ],
        },
      ],
    });
  });

  it("(o=univ*of*mich*)", () => {
    assert.deepEqual(filter("(o=univ*of*mich*)"), {
      type: "substring",
      attribute: "o",
      initial: "univ",
      any: ["of", "mich"],
    });
  });

  it("(seeAlso=)", () => {
    assert.deepEqual(filter("(seeAlso=)"), { type: "equality", attribute: "seealso", value: "" });
  });

  it("(o=Parens R Us \\28for all your parenthetical needs\\29)", () => {
    assert.deepEqual(filter("(o=Parens R Us \\28for all your parenthetical needs\\29)"), {
      type: "equality",
      attribute: "o",
      value: "Parens R Us (for all your parenthetical needs)",
    });
  });

  it("(cn=*\\2A*)", () => {
    assert.deepEqual(filter("(cn=*\\2A*)"), { type: "substring", attribute: "cn", any: ["*"] });
  });

  it("(filename=C:\\5cMyFile)", () => {
    assert.deepEqual(filter("(filename=C:\\5cMyFile)"), {
      type: "equality",
      attribute: "filename",
      value: "C:\\MyFile",
    });
  });

  it("(bin=\\00\\00\\00\\04)", () => {
    assert.deepEqual(filter("(bin=\\00\\00\\00\\04)"), {
      type: "equality",
      attribute: "bin",
      value: "\u0000\u0000\u0000\u0004",
    });
  });

  it("(sn=Lu\\c4\\8di\\c4\\87)", () => {
    assert.deepEqual(filter("(sn=Lu\\c4\\8di\\c4\\87)"), {
      type: "equality",
      attribute: "sn",
      value: "Lučić",
    });
  });
});

describe("parseFilter: other accepted forms", () => {
  it("parses presence, ordering and approximate items", () => {
    assert.deepEqual(filter("(objectClass=*)"), { type: "present", attribute: "objectclass" });
    assert.deepEqual(filter("(cn=**)"), { type: "present", attribute: "cn" });
    assert.deepEqual(filter("(age>=30)"), { type: "greaterOrEqual", attribute: "age", value: "30" });
    assert.deepEqual(filter("(age<=30)"), { type: "lessOrEqual", attribute: "age", value: "30" });
    assert.deepEqual(filter("(cn~=babs)"), { type: "approx", attribute: "cn", value: "babs" });
    assert.deepEqual(filter("(2.5.4.3=x)"), { type: "equality", attribute: "2.5.4.3", value: "x" });
  });

  it("parses substrings with and without initial and final pieces", () => {
    assert.deepEqual(filter("(cn=*sen)"), { type: "substring", attribute: "cn", any: [], final: "sen" });
    assert.deepEqual(filter("(cn=a*b)"), {
      type: "substring",
      attribute: "cn",
      initial: "a",
      any: [],
      final: "b",
    });
    assert.deepEqual(filter("(cn=a**b)"), {
      type: "substring",
      attribute: "cn",
      initial: "a",
      any: [],
      final: "b",
    });
  });

  it("accepts empty '&' and '|' (RFC 4526 absolute true and false)", () => {
    assert.deepEqual(filter("(&)"), { type: "and", filters: [] });
    assert.deepEqual(filter("(|)"), { type: "or", filters: [] });
  });

  it("tolerates whitespace around the whole filter and keeps it inside values", () => {
    assert.deepEqual(filter(" \t(cn= a )\n"), { type: "equality", attribute: "cn", value: " a " });
  });

  it("accepts a bare item without parentheses", () => {
    assert.deepEqual(filter("cn=alice"), { type: "equality", attribute: "cn", value: "alice" });
    assert.deepEqual(filter("  sn=Jen*  "), { type: "substring", attribute: "sn", initial: "Jen", any: [] });
    assert.deepEqual(filter("mail=*"), { type: "present", attribute: "mail" });
  });

  it("an and, or or not without its parentheses is refused with the fix", () => {
    const cases: [string, string][] = [
      ["&(a=1)(b=2)", "write (&(a=1)(b=2))"],
      [" |(a=1)(b=2) ", "write (|(a=1)(b=2))"],
      ["!(a=1)", "write (!(a=1))"],
    ];
    for (const [text, fix] of cases) {
      const parsed = parseFilter(text);
      assert.equal(parsed.ok, false, text);
      assert.equal(!parsed.ok && parsed.error.code, "invalid-filter");
      assert.match(!parsed.ok ? parsed.error.message : "", new RegExp(fix.replace(/[()|&!]/g, "\\$&")), text);
    }
  });
});

describe("parseFilter: rejections", () => {
  const rejected: [string, string, ErrorCode][] = [
    ["the empty string", "", "invalid-filter"],
    ["only whitespace", "  ", "invalid-filter"],
    ["a missing ')'", "(cn=a", "invalid-filter"],
    ["an unclosed list", "(&(cn=a)", "invalid-filter"],
    ["an extra ')'", "(cn=a))", "invalid-filter"],
    ["a bare item followed by ')'", "cn=a)", "invalid-filter"],
    ["two top-level filters", "(cn=a)(cn=b)", "invalid-filter"],
    ["doubled parentheses", "((cn=a))", "invalid-filter"],
    ["an empty pair of parentheses", "()", "invalid-filter"],
    ["an empty attribute", "(=a)", "invalid-filter"],
    ["a bad attribute type", "(1cn=a)", "invalid-filter"],
    ["attribute options", "(cn;lang-en=a)", "invalid-filter"],
    ["a missing operator", "(cn)", "invalid-filter"],
    ["a bad operator", "(cn>a)", "invalid-filter"],
    ["a bad escape", "(cn=\\zz)", "invalid-filter"],
    ["a short escape", "(cn=\\2)", "invalid-filter"],
    ["a dangling backslash", "(cn=a\\)", "invalid-filter"],
    ["a dangling backslash in a bare item", "cn=a\\", "invalid-filter"],
    ["a non-hex escape of a special", "(cn=\\*)", "invalid-filter"],
    ["escapes that are not UTF-8", "(cn=\\c4)", "invalid-filter"],
    ["an unescaped '(' in a value", "(cn=a(b)", "invalid-filter"],
    ["an unescaped NUL in a value", "(cn=a\u0000)", "invalid-filter"],
    ["a '*' in an ordering value", "(cn>=a*)", "invalid-filter"],
    ["a '*' in an approximate value", "(cn~=*)", "invalid-filter"],
    ["'!' without parentheses", "(!cn=a)", "invalid-filter"],
    ["'!' with two operands", "(!(a=b)(c=d))", "invalid-filter"],
    ["junk in a list", "(&(a=b)x)", "invalid-filter"],
  ];
  for (const [name, text, code] of rejected) {
    it(`rejects ${name}: ${JSON.stringify(text)}`, () => {
      const error = errorOf(parseFilter(text));
      assert.equal(error.code, code);
      assert.match(error.message, /at offset \d+/);
    });
  }

  it("rejects extensible match with a clear message", () => {
    for (const text of [
      "(cn:dn:=x)",
      "(:1.2.3:=x)",
      "(cn:=x)",
      "(cn:caseExactMatch:=x)",
      "(:dn:2.4.8.10:=Dino)",
    ]) {
      const error = errorOf(parseFilter(text));
      assert.equal(error.code, "invalid-filter");
      assert.match(error.message, /^extensible match filters are not supported at offset \d+$/);
    }
  });

  it("names the offset of the problem", () => {
    assert.equal(
      errorOf(parseFilter("(cn=\\zz)")).message,
      "backslash must be followed by two hex digits at offset 4",
    );
    assert.equal(
      errorOf(parseFilter("(&(cn=a)")).message,
      "expected ')' at offset 8 to close the '(' at offset 0, found the end of the filter",
    );
  });
});

describe("limits", () => {
  const nested = (levels: number) => `${"(!".repeat(levels - 1)}(a=b)${")".repeat(levels - 1)}`;

  it("limits the nesting depth", () => {
    assert.ok(parseFilter(nested(filterDepthMax)).ok);
    assert.equal(errorOf(parseFilter(nested(filterDepthMax + 1))).code, "limit-exceeded");
  });

  it("limits the number of items", () => {
    const list = (operands: number) => `(&${"(a=b)".repeat(operands)})`;
    assert.ok(parseFilter(list(filterItemsMax - 1)).ok);
    assert.equal(errorOf(parseFilter(list(filterItemsMax))).code, "limit-exceeded");
  });

  it("limits the input length", () => {
    const atLimit = `(cn=${"a".repeat(filterLengthMax - 5)})`;
    assert.equal(atLimit.length, filterLengthMax);
    assert.ok(parseFilter(atLimit).ok);
    assert.equal(errorOf(parseFilter(`${atLimit} `)).code, "limit-exceeded");
  });

  it("formatFilter and matchesFilter refuse filters deeper than the limit", () => {
    let deep: Filter = { type: "present", attribute: "cn" };
    for (let level = 1; level <= filterDepthMax; level++) deep = { type: "not", filter: deep };
    assert.throws(() => formatFilter(deep), AssertionError);
    assert.throws(() => matchesFilter(deep, () => []), AssertionError);
  });
});

describe("formatFilter", () => {
  it("writes the RFC 4515 form", () => {
    const text =
      "(&(objectclass=Person)(|(sn=Jensen)(cn=Babs J*))(!(age>=30))(cn~=x)(age<=5)(mail=*)(o=*a*b))";
    assert.equal(formatFilter(filter(text)), text);
    assert.equal(formatFilter(filter("(&)")), "(&)");
    assert.equal(formatFilter(filter("cn=alice")), "(cn=alice)");
  });

  it("escapes '*', '(', ')', '\\', NUL and control characters", () => {
    assert.equal(
      formatFilter({ type: "equality", attribute: "cn", value: "a*(b)\\c\u0000\n\u007fé" }),
      "(cn=a\\2A\\28b\\29\\5Cc\\00\\0A\\7Fé)",
    );
    assert.equal(
      formatFilter(filter("(o=Parens R Us \\28for all your parenthetical needs\\29)")),
      "(o=Parens R Us \\28for all your parenthetical needs\\29)",
    );
  });
});

describe("matchesFilter", () => {
  const babs: Entry = {
    cn: ["Babs  Jensen", "Barbara Jensen"],
    sn: ["Jensen"],
    objectclass: ["top", "Person"],
    age: ["9"],
    o: ["University of Michigan"],
    seealso: [""],
  };

  it("matches equality and approx after normalization", () => {
    assert.ok(matches("(cn=babs jensen)", babs));
    assert.ok(matches("(CN= BABS JENSEN )", babs));
    assert.ok(matches("(objectClass=person)", babs));
    assert.ok(matches("(cn~=BARBARA jensen)", babs));
    assert.ok(!matches("(cn=babs)", babs));
    assert.ok(matches("(seeAlso=)", babs));
    assert.ok(!matches("(mail=)", babs));
  });

  it("tests presence", () => {
    assert.ok(matches("(cn=*)", babs));
    assert.ok(!matches("(mail=*)", babs));
  });

  it("matches substrings in order without overlap", () => {
    assert.ok(matches("(cn=Babs J*)", babs));
    assert.ok(matches("(cn=*JENS*)", babs));
    assert.ok(matches("(cn=*sen)", babs));
    assert.ok(matches("(o=univ*of*mich*)", babs));
    assert.ok(!matches("(o=univ*mich*of*)", babs));
    assert.ok(matches("(cn=babs *)", babs));
    assert.ok(matches("(cn=  babs*)", babs));
    assert.ok(!matches("(cn=*babs)", babs));
    assert.ok(!matches("(x=ab*ba)", { x: ["aba"] }));
    assert.ok(matches("(x=ab*ba)", { x: ["abba"] }));
    assert.ok(!matches("(x=a*a)", { x: ["a"] }));
    assert.ok(matches("(x=a*a)", { x: ["aa"] }));
    assert.ok(!matches("(x=*a*a*)", { x: ["a"] }));
  });

  it("orders integers numerically and other values as normalized strings", () => {
    assert.ok(!matches("(age>=10)", babs));
    assert.ok(matches("(age<=10)", babs));
    assert.ok(matches("(age>=9)", babs));
    assert.ok(matches("(n>=123456789012345678901234567890)", { n: ["123456789012345678901234567891"] }));
    assert.ok(matches("(sn>=jensen)", babs));
    assert.ok(matches("(sn<=JENSEN)", babs));
    assert.ok(!matches("(sn>=k)", babs));
    assert.ok(!matches("(mail>=a)", babs));
  });

  it("combines with two-valued logic", () => {
    assert.ok(matches("(&)", babs));
    assert.ok(!matches("(|)", babs));
    assert.ok(matches("(!(mail=*))", babs));
    assert.ok(matches("(&(objectClass=Person)(|(sn=Jensen)(cn=Babs J*)))", babs));
    assert.ok(!matches("(&(objectClass=Person)(!(sn=Jensen)))", babs));
    assert.ok(matches("(|(mail=x)(age=9))", babs));
  });

  it("compares the values of DN-valued attributes as DNs (distinguishedNameMatch)", () => {
    const group: Entry = { member: ["CN=Alice, OU=People, DC=Example, DC=Com"], cn: ["cn=x, dc=y"] };
    const dnMatches = (text: string): boolean =>
      matchesFilter(
        filter(text),
        (attribute) => group[attribute] ?? [],
        (attribute) => attribute === "member",
      );
    assert.ok(dnMatches("(member=cn=alice,ou=people,dc=example,dc=com)"));
    assert.ok(dnMatches("(member~=cn=ALICE , ou=people,dc=example,dc=com)"));
    assert.ok(dnMatches("(member=cn=\\5c41lice,ou=people,dc=example,dc=com)"), "a hex pair in the DN");
    assert.ok(!dnMatches("(member=cn=alice,dc=example,dc=com)"));
    assert.ok(!dnMatches("(member=alice)"), "an assertion that is no DN matches nothing");
    assert.ok(dnMatches("(!(member=alice))"));
    assert.ok(dnMatches("(member=*alice*)"), "substrings still see the value as written");
    // Other attributes keep caseIgnoreMatch, where the space after a comma counts.
    assert.ok(!dnMatches("(cn=cn=x,dc=y)"));
    assert.ok(dnMatches("(cn=CN=X, DC=Y)"));
  });

  it("asks the callback for the lowercased attribute", () => {
    const asked: string[] = [];
    matchesFilter(filter("(&(objectClass=*)(CN=a)(SN>=b)(Mail=*x*))"), (attribute) => {
      asked.push(attribute);
      return [];
    });
    assert.deepEqual(asked, ["objectclass"]);
    matchesFilter(filter("(|(objectClass=*)(CN=a)(SN>=b)(Mail=*x*))"), (attribute) => {
      asked.push(attribute);
      return [];
    });
    assert.deepEqual(asked, ["objectclass", "objectclass", "cn", "sn", "mail"]);
  });
});

// ---------------------------------------------------------------------------------------------
// Properties

/** Builds filters up to `depth` levels of `&`, `|` and `!` over the given items. */
function filterOf(items: fc.Arbitrary<Filter>, depth: number): fc.Arbitrary<Filter> {
  if (depth <= 1) return items;
  const operand = filterOf(items, depth - 1);
  return fc.oneof(
    { weight: 3, arbitrary: items },
    {
      weight: 1,
      arbitrary: fc.array(operand, { maxLength: 3 }).map((filters): Filter => ({ type: "and", filters })),
    },
    {
      weight: 1,
      arbitrary: fc.array(operand, { maxLength: 3 }).map((filters): Filter => ({ type: "or", filters })),
    },
    { weight: 1, arbitrary: operand.map((inner): Filter => ({ type: "not", filter: inner })) },
  );
}

function itemsOf(attribute: fc.Arbitrary<string>, value: fc.Arbitrary<string>): fc.Arbitrary<Filter> {
  const piece = value.filter((text) => text !== "");
  const substring = fc
    .record({
      initial: fc.option(piece, { nil: undefined }),
      any: fc.array(piece, { maxLength: 2 }),
      final: fc.option(piece, { nil: undefined }),
    })
    .filter(({ initial, any, final }) => initial !== undefined || any.length > 0 || final !== undefined);
  return fc.oneof(
    fc
      .tuple(fc.constantFrom("equality", "approx", "greaterOrEqual", "lessOrEqual"), attribute, value)
      .map(([type, name, text]): Filter => ({ type, attribute: name, value: text })),
    attribute.map((name): Filter => ({ type: "present", attribute: name })),
    fc.tuple(attribute, substring).map(
      ([name, { initial, any, final }]): Filter => ({
        type: "substring",
        attribute: name,
        ...(initial === undefined ? {} : { initial }),
        any,
        ...(final === undefined ? {} : { final }),
      }),
    ),
  );
}

/** Values rich in what needs escaping: `*()\`, NUL, controls, non-ASCII, spaces. */
const trickyValue = fc.string({
  unit: fc.oneof(
    { weight: 3, arbitrary: fc.constantFrom("*", "(", ")", "\\", "=", "&", "|", "!", " ", "~", ">", "<") },
    { weight: 2, arbitrary: fc.constantFrom("\u0000", "\n", "\u001f", "\u007f", "\t") },
    { weight: 2, arbitrary: fc.constantFrom("é", "e\u0301", "Č", "中", "😀", "\u00a0") },
    { weight: 4, arbitrary: fc.string({ unit: "binary", minLength: 1, maxLength: 1 }) },
  ),
  maxLength: 8,
});

const lowercaseAttribute = fc.oneof(
  fc.constantFrom("cn", "objectclass", "2.5.4.3"),
  fc.stringMatching(/^[a-z][a-z0-9-]{0,6}$/),
);

const entryAttributes = ["cn", "sn", "age"] as const;
const smallValue = fc.constantFrom("a", "A", "ab", "b a", "B  A", "10", "9", "-3", "");
const entry: fc.Arbitrary<Entry> = fc.record({
  cn: fc.array(smallValue, { maxLength: 3 }),
  sn: fc.array(smallValue, { maxLength: 3 }),
  age: fc.array(smallValue, { maxLength: 3 }),
});
const smallFilter = filterOf(itemsOf(fc.constantFrom(...entryAttributes), smallValue), 4);

function lookup(values: Entry): (attribute: string) => readonly string[] {
  return (attribute) => values[attribute] ?? [];
}

describe("properties", () => {
  it("parseFilter(formatFilter(f)) gives back an equal filter", () => {
    fc.assert(
      fc.property(filterOf(itemsOf(lowercaseAttribute, trickyValue), 5), (value) => {
        assert.deepEqual(unwrap(parseFilter(formatFilter(value))), value);
      }),
      { numRuns: 500 },
    );
  });

  it("(!f) matches exactly when f does not", () => {
    fc.assert(
      fc.property(smallFilter, entry, (value, values) => {
        const negated: Filter = { type: "not", filter: value };
        assert.equal(matchesFilter(negated, lookup(values)), !matchesFilter(value, lookup(values)));
      }),
      { numRuns: 500 },
    );
  });

  it("'&' and '|' agree with every and some over their operands", () => {
    fc.assert(
      fc.property(fc.array(smallFilter, { maxLength: 4 }), entry, (filters, values) => {
        const each = filters.map((operand) => matchesFilter(operand, lookup(values)));
        assert.equal(matchesFilter({ type: "and", filters }, lookup(values)), each.every(Boolean));
        assert.equal(matchesFilter({ type: "or", filters }, lookup(values)), each.some(Boolean));
      }),
      { numRuns: 500 },
    );
  });

  it("substring matching agrees with an anchored regular expression", () => {
    const piece = fc.stringMatching(/^[ab]{1,3}$/);
    fc.assert(
      fc.property(
        fc.option(piece, { nil: undefined }),
        fc.array(piece, { maxLength: 3 }),
        fc.option(piece, { nil: undefined }),
        fc.stringMatching(/^[ab]{0,8}$/),
        (initial, any, final, value) => {
          const pattern = new RegExp(
            `^${initial ?? ""}.*${any.map((text) => `${text}.*`).join("")}${final ?? ""}$`,
          );
          const substring: Filter = {
            type: "substring",
            attribute: "x",
            ...(initial === undefined ? {} : { initial }),
            any,
            ...(final === undefined ? {} : { final }),
          };
          assert.equal(
            matchesFilter(substring, () => [value]),
            pattern.test(value),
          );
        },
      ),
      { numRuns: 1000 },
    );
  });

  it("an equality item built from one of the entry's values matches, whatever its case", () => {
    fc.assert(
      fc.property(entry, fc.constantFrom(...entryAttributes), fc.nat(), (values, attribute, pick) => {
        const present = values[attribute] ?? [];
        fc.pre(present.length > 0);
        const chosen = present[pick % present.length] ?? "";
        const item: Filter = { type: "equality", attribute, value: ` ${chosen.toUpperCase()} ` };
        assert.ok(matchesFilter(item, lookup(values)));
      }),
    );
  });
});
