import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { AssertionError } from "../assert.ts";
import type { ErrorCode, PlexusError, Result } from "../result.ts";
import { unwrap } from "../result.ts";
import type { Ava, Dn, Rdn } from "./dn.ts";
import {
  attributeTypeLengthMax,
  dnChild,
  dnDepthMax,
  dnEquals,
  dnIsSuffixOf,
  dnLengthMax,
  dnParent,
  dnValueLengthMax,
  formatDn,
  formatRdn,
  isAttributeType,
  makeAva,
  makeRdn,
  normalizeDn,
  normalizeRdn,
  parseDn,
  parseRdn,
  rdnAvasMax,
  rdnEquals,
} from "./dn.ts";

function errorOf<T>(result: Result<T>): PlexusError {
  if (result.ok) assert.fail(`expected a failure, got ${JSON.stringify(result.value)}`);
  return result.error;
}

function dn(text: string): Dn {
  return unwrap(parseDn(text));
}

/** The (type, value) pairs of a DN, RDN by RDN, in canonical AVA order. */
function pairs(value: Dn): [string, string][][] {
  return value.rdns.map((rdn) => rdn.avas.map((ava): [string, string] => [ava.type, ava.value]));
}

describe("parseDn: RFC 4514 section 4 examples", () => {
  it("UID=jsmith,DC=example,DC=net", () => {
    const parsed = dn("UID=jsmith,DC=example,DC=net");
    assert.deepEqual(pairs(parsed), [[["UID", "jsmith"]], [["DC", "example"]], [["DC", "net"]]]);
    assert.deepEqual(parsed.rdns[0]?.avas[0], {
      type: "UID",
      typeNorm: "uid",
      value: "jsmith",
      valueNorm: "jsmith",
    });
  });

  it("OU=Sales+CN=J.  Smith,DC=example,DC=net (multi-valued, inner spaces kept)", () => {
    const parsed = dn("OU=Sales+CN=J.  Smith,DC=example,DC=net");
    assert.deepEqual(pairs(parsed), [
      [
        ["CN", "J.  Smith"],
        ["OU", "Sales"],
      ],
      [["DC", "example"]],
      [["DC", "net"]],
    ]);
    assert.equal(parsed.rdns[0]?.avas[0]?.valueNorm, "j. smith");
  });

  it('CN=James \\"Jim\\" Smith\\, III,DC=example,DC=net', () => {
    const text = 'CN=James \\"Jim\\" Smith\\, III,DC=example,DC=net';
    const parsed = dn(text);
    assert.deepEqual(pairs(parsed)[0], [["CN", 'James "Jim" Smith, III']]);
    assert.equal(formatDn(parsed), text);
  });

  it("CN=Before\\0dAfter,DC=example,DC=net", () => {
    const parsed = dn("CN=Before\\0dAfter,DC=example,DC=net");
    assert.deepEqual(pairs(parsed)[0], [["CN", "Before\rAfter"]]);
    assert.equal(formatDn(parsed), "CN=Before\\0DAfter,DC=example,DC=net");
  });

  it("1.3.6.1.4.1.1466.0=#04024869,DC=example,DC=com (BER OCTET STRING)", () => {
    const parsed = dn("1.3.6.1.4.1.1466.0=#04024869,DC=example,DC=com");
    assert.deepEqual(pairs(parsed)[0], [["1.3.6.1.4.1.1466.0", "Hi"]]);
    assert.equal(formatDn(parsed), "1.3.6.1.4.1.1466.0=Hi,DC=example,DC=com");
  });

  it("CN=Lu\\C4\\8Di\\C4\\87 (hex pairs forming UTF-8)", () => {
    assert.deepEqual(pairs(dn("CN=Lu\\C4\\8Di\\C4\\87")), [[["CN", "Lučić"]]]);
    assert.equal(formatDn(dn("CN=Lu\\C4\\8Di\\C4\\87")), "CN=Lučić");
  });
});

describe("parseDn: accepted forms", () => {
  it("parses the empty string (and only spaces) as the root DN", () => {
    assert.deepEqual(dn(""), { rdns: [] });
    assert.deepEqual(dn("   "), { rdns: [] });
  });

  it("tolerates spaces around separators but keeps inner spaces", () => {
    assert.deepEqual(pairs(dn(" cn = Babs  Jensen , dc = example +uid= x ")), [
      [["cn", "Babs  Jensen"]],
      [
        ["dc", "example"],
        ["uid", "x"],
      ],
    ]);
  });

  it("keeps escaped leading and trailing spaces", () => {
    assert.deepEqual(pairs(dn("cn=\\ a \\ ")), [[["cn", " a  "]]]);
    assert.deepEqual(pairs(dn("cn=\\20a\\20")), [[["cn", " a "]]]);
  });

  it("allows empty values", () => {
    assert.deepEqual(pairs(dn("cn=")), [[["cn", ""]]]);
    assert.deepEqual(pairs(dn("cn=,dc=x")), [[["cn", ""]], [["dc", "x"]]]);
    assert.deepEqual(pairs(dn("cn= +sn=a")), [
      [
        ["cn", ""],
        ["sn", "a"],
      ],
    ]);
  });

  it("takes an unescaped '=' in a value, as RFC 4514 allows, and formats it escaped", () => {
    assert.deepEqual(pairs(dn("cn=eq=x,ou=a=b+uid==,dc=example")), [
      [["cn", "eq=x"]],
      [
        ["ou", "a=b"],
        ["uid", "="],
      ],
      [["dc", "example"]],
    ]);
    assert.equal(formatDn(dn("cn=eq=x")), "cn=eq\\=x");
    assert.equal(normalizeDn(dn("CN=eq=X")), normalizeDn(dn("cn=eq\\=x")));
  });

  it("resolves every special-character escape", () => {
    assert.deepEqual(pairs(dn('cn=\\"\\+\\,\\;\\<\\>\\\\\\=\\#\\ ')), [[["cn", '"+,;<>\\=# ']]]);
  });

  it("accepts an unescaped '#' after the first character, raw control and non-ASCII characters", () => {
    assert.deepEqual(pairs(dn("cn=a#b")), [[["cn", "a#b"]]]);
    assert.deepEqual(pairs(dn("cn=a\tb")), [[["cn", "a\tb"]]]);
    assert.deepEqual(pairs(dn("cn=Lučić 😀")), [[["cn", "Lučić 😀"]]]);
  });

  it("accepts numericoid attribute types", () => {
    assert.deepEqual(pairs(dn("2.5.4.3=Babs,0.9.2342.19200300.100.1.25=com")), [
      [["2.5.4.3", "Babs"]],
      [["0.9.2342.19200300.100.1.25", "com"]],
    ]);
  });

  it("decodes the BER string types with short and long lengths", () => {
    assert.equal(dn("cn=#0c03c3a921").rdns[0]?.avas[0]?.value, "é!");
    assert.equal(dn("cn=#13024869").rdns[0]?.avas[0]?.value, "Hi");
    assert.equal(dn("cn=#16024869").rdns[0]?.avas[0]?.value, "Hi");
    assert.equal(dn("cn=#048103486921").rdns[0]?.avas[0]?.value, "Hi!");
    assert.equal(dn("cn=#0400").rdns[0]?.avas[0]?.value, "");
    assert.deepEqual(pairs(dn("cn=#04024869 , dc=x")), [[["cn", "Hi"]], [["dc", "x"]]]);
  });
});

describe("parseDn: rejections", () => {
  const rejected: [string, string, ErrorCode][] = [
    ["missing '='", "cn", "invalid-dn"],
    ["missing '=' before a value", "cn Babs", "invalid-dn"],
    ["missing attribute type", "=Babs", "invalid-dn"],
    ["attribute type starting with a digit", "1cn=a", "invalid-dn"],
    ["attribute type with an underscore", "a_b=x", "invalid-dn"],
    ["numericoid with one arc", "1=a", "invalid-dn"],
    ["numericoid with a leading zero", "01.2=a", "invalid-dn"],
    ["numericoid with an empty arc", "1..2=a", "invalid-dn"],
    ["RFC 1779 OID. prefix", "OID.2.5.4.3=a", "invalid-dn"],
    ["attribute options", "cn;lang-en=a", "invalid-dn"],
    ["dangling backslash", "cn=a\\", "invalid-dn"],
    ["backslash before a plain character", "cn=a\\q", "invalid-dn"],
    ["backslash before one hex digit", "cn=a\\4", "invalid-dn"],
    ["bad hex pair", "cn=a\\zz", "invalid-dn"],
    ["hex pairs that are not UTF-8", "cn=\\C4", "invalid-dn"],
    ["hex pairs split by a character", "cn=\\C4x\\8D", "invalid-dn"],
    ["overlong UTF-8", "cn=\\C0\\80", "invalid-dn"],
    ["repeated type in one RDN", "cn=a+cn=b", "invalid-dn"],
    ["repeated type differing in case", "CN=a+sn=x+cn=b", "invalid-dn"],
    ["trailing comma", "cn=a,", "invalid-dn"],
    ["trailing comma and spaces", "cn=a,  ", "invalid-dn"],
    ["trailing plus", "cn=a+", "invalid-dn"],
    ["plus before a comma", "cn=a+,dc=b", "invalid-dn"],
    ["leading comma", ",dc=a", "invalid-dn"],
    ["empty RDN", "cn=a,,dc=b", "invalid-dn"],
    ["unescaped quote", 'cn=a"b', "invalid-dn"],
    ["unescaped semicolon", "cn=a;b", "invalid-dn"],
    ["semicolon as RDN separator", "cn=a;dc=b", "invalid-dn"],
    ["unescaped '<'", "cn=a<b", "invalid-dn"],
    ["unescaped '>'", "cn=a>b", "invalid-dn"],
    ["unescaped NUL", "cn=a\u0000b", "invalid-dn"],
    ["'#' with no hex", "cn=#", "invalid-dn"],
    ["odd number of hex digits", "cn=#0402486", "invalid-dn"],
    ["non-hex after '#'", "cn=#04024869x", "invalid-dn"],
    ["BER INTEGER", "cn=#020101", "invalid-dn"],
    ["BER SEQUENCE", "cn=#3000", "invalid-dn"],
    ["BER length too long for the content", "cn=#0404486869", "invalid-dn"],
    ["BER length too short for the content", "cn=#0401486869", "invalid-dn"],
    ["BER element with no length", "cn=#04", "invalid-dn"],
    ["BER indefinite length", "cn=#04804869", "invalid-dn"],
    ["BER length with too many octets", "cn=#04850000000002", "invalid-dn"],
    ["BER truncated long length", "cn=#0482", "invalid-dn"],
    ["BER content that is not UTF-8", "cn=#0402c328", "invalid-dn"],
    ["BER IA5String that is not ASCII", "cn=#1602c3a9", "invalid-dn"],
    ["BER PrintableString with '!'", "cn=#130121", "invalid-dn"],
  ];
  for (const [name, text, code] of rejected) {
    it(`rejects ${name}: ${JSON.stringify(text)}`, () => {
      const error = errorOf(parseDn(text));
      assert.equal(error.code, code);
      assert.match(error.message, /at offset \d+/);
    });
  }

  it("names the offset of the problem", () => {
    assert.equal(
      errorOf(parseDn('cn=ab"c')).message,
      "unescaped '\"' in attribute value (escape it with a backslash) at offset 5",
    );
    assert.match(errorOf(parseDn("cn=a,dc=b,")).message, /trailing ',' .* at offset 9$/);
    assert.match(errorOf(parseDn("cn=a+CN=b")).message, /'CN' at offset 5 repeats the one at offset 0/);
  });
});

describe("parseRdn", () => {
  it("parses exactly one RDN", () => {
    const rdn = unwrap(parseRdn("UID=babs+CN=Babs Jensen"));
    assert.deepEqual(
      rdn.avas.map((ava) => ava.type),
      ["CN", "UID"],
    );
  });

  it("rejects more than one RDN, and the empty string", () => {
    assert.equal(errorOf(parseRdn("cn=a,dc=b")).code, "invalid-dn");
    assert.equal(errorOf(parseRdn("")).code, "invalid-dn");
    assert.equal(errorOf(parseRdn("cn=a+")).code, "invalid-dn");
  });
});

describe("limits", () => {
  it("limits the input length", () => {
    const base = `${Array.from({ length: 8 }, () => `dc=${"a".repeat(1000)}`).join(",")},dc=`;
    const atLimit = `${base}${"a".repeat(dnLengthMax - base.length)}`;
    assert.equal(atLimit.length, dnLengthMax);
    assert.equal(dn(atLimit).rdns.length, 9);
    assert.equal(errorOf(parseDn(`${atLimit}a`)).code, "limit-exceeded");
    assert.equal(errorOf(parseRdn(`cn=${"a".repeat(dnLengthMax)}`)).code, "limit-exceeded");
  });

  it("limits the depth", () => {
    assert.equal(dn(Array.from({ length: dnDepthMax }, () => "dc=a").join(",")).rdns.length, dnDepthMax);
    const tooDeep = Array.from({ length: dnDepthMax + 1 }, () => "dc=a").join(",");
    assert.equal(errorOf(parseDn(tooDeep)).code, "limit-exceeded");
  });

  it("limits the AVAs of one RDN", () => {
    const avas = (count: number) => Array.from({ length: count }, (_, index) => `a${index}=x`).join("+");
    assert.equal(dn(avas(rdnAvasMax)).rdns[0]?.avas.length, rdnAvasMax);
    assert.equal(errorOf(parseDn(avas(rdnAvasMax + 1))).code, "limit-exceeded");
  });

  it("limits the unescaped length of one value", () => {
    assert.equal(dn(`cn=${"a".repeat(dnValueLengthMax)}`).rdns[0]?.avas[0]?.value.length, dnValueLengthMax);
    assert.equal(
      dn(`cn=${"\\41".repeat(dnValueLengthMax)}`).rdns[0]?.avas[0]?.value.length,
      dnValueLengthMax,
    );
    assert.equal(errorOf(parseDn(`cn=${"a".repeat(dnValueLengthMax + 1)}`)).code, "limit-exceeded");
    assert.equal(errorOf(parseDn(`cn=${"\\41".repeat(dnValueLengthMax + 1)}`)).code, "limit-exceeded");
  });

  it("limits the attribute type length", () => {
    const type = `a${"b".repeat(attributeTypeLengthMax - 1)}`;
    assert.ok(isAttributeType(type));
    assert.ok(parseDn(`${type}=x`).ok);
    assert.equal(errorOf(parseDn(`${type}b=x`)).code, "limit-exceeded");
    assert.equal(isAttributeType(`${type}b`), false);
  });
});

describe("normalizeDn and equality", () => {
  it("ignores case of types and values and whitespace inside values", () => {
    const a = dn("CN=Babs   Jensen, DC=Example,DC=NET");
    const b = dn("cn=babs jensen,dc=example,dc=net");
    assert.equal(normalizeDn(a), "cn=babs jensen,dc=example,dc=net");
    assert.equal(normalizeDn(a), normalizeDn(b));
    assert.ok(dnEquals(a, b));
  });

  it("ignores the order of AVAs in a multi-valued RDN", () => {
    const a = dn("OU=Sales+CN=J.  Smith,DC=example");
    const b = dn("cn=j. smith+ou=sales,dc=example");
    assert.equal(normalizeDn(a), normalizeDn(b));
    assert.equal(normalizeRdn(unwrap(parseRdn("OU=Sales+CN=J. Smith"))), "cn=j. smith+ou=sales");
    assert.ok(dnEquals(a, b));
  });

  it("tells different names apart", () => {
    assert.notEqual(normalizeDn(dn("cn=a,dc=x")), normalizeDn(dn("cn=b,dc=x")));
    assert.notEqual(normalizeDn(dn("cn=a\\,dc\\=x")), normalizeDn(dn("cn=a,dc=x")));
    assert.ok(!dnEquals(dn("cn=a+sn=b"), dn("cn=a,sn=b")));
    assert.ok(!dnEquals(dn("cn=a"), dn("sn=a")));
  });

  it("escapes normalized values like formatted ones", () => {
    assert.equal(normalizeDn(dn("CN=A\\,B\\01\\#,DC=X")), "cn=a\\,b\\01#,dc=x");
    assert.equal(normalizeDn(dn("cn=\\#x")), "cn=\\#x");
  });
});

describe("formatDn", () => {
  it("escapes specials, a leading '#' or space, a trailing space and control characters", () => {
    const ava = unwrap(makeAva("cn", ' #a"+,;<>\\=\n\u007f\u0000é '));
    assert.equal(formatRdn(makeRdn([ava])), 'cn=\\ #a\\"\\+\\,\\;\\<\\>\\\\\\=\\0A\\7F\\00é\\ ');
    assert.equal(formatRdn(makeRdn([unwrap(makeAva("cn", "#"))])), "cn=\\#");
    assert.equal(formatRdn(makeRdn([unwrap(makeAva("cn", " "))])), "cn=\\ ");
    assert.equal(formatRdn(makeRdn([unwrap(makeAva("cn", ""))])), "cn=");
  });

  it("writes multi-valued RDNs in canonical order and the root as the empty string", () => {
    assert.equal(formatDn(dn("OU=Sales+CN=J.  Smith,DC=example")), "CN=J.  Smith+OU=Sales,DC=example");
    assert.equal(formatDn(dn("")), "");
  });
});

describe("helpers", () => {
  it("dnParent drops the leftmost RDN and refuses the root", () => {
    assert.equal(formatDn(dnParent(dn("cn=a,dc=b,dc=c"))), "dc=b,dc=c");
    assert.deepEqual(dnParent(dn("dc=c")), { rdns: [] });
    assert.throws(() => dnParent(dn("")), AssertionError);
  });

  it("dnChild adds an RDN on the left", () => {
    const rdn = unwrap(parseRdn("cn=a"));
    assert.equal(formatDn(dnChild(rdn, dn("dc=b,dc=c"))), "cn=a,dc=b,dc=c");
    assert.equal(formatDn(dnChild(rdn, dn(""))), "cn=a");
    assert.ok(dnEquals(dnParent(dnChild(rdn, dn("dc=b"))), dn("dc=b")));
  });

  it("dnIsSuffixOf compares trailing RDNs after normalization", () => {
    assert.ok(dnIsSuffixOf(dn("DC=Example,DC=Net"), dn("cn=a,dc=example,dc=net")));
    assert.ok(dnIsSuffixOf(dn("dc=example,dc=net"), dn("dc=example,dc=net")));
    assert.ok(dnIsSuffixOf(dn(""), dn("dc=net")));
    assert.ok(dnIsSuffixOf(dn(""), dn("")));
    assert.ok(!dnIsSuffixOf(dn("cn=a,dc=net"), dn("dc=net")));
    assert.ok(!dnIsSuffixOf(dn("dc=example,dc=net"), dn("cn=a,dc=other,dc=net")));
    assert.ok(!dnIsSuffixOf(dn("dc=ample,dc=net"), dn("dc=example,dc=net")));
  });

  it("rdnEquals ignores case and AVA order", () => {
    assert.ok(rdnEquals(unwrap(parseRdn("CN=A+SN=B")), unwrap(parseRdn("sn=b+cn=a"))));
    assert.ok(!rdnEquals(unwrap(parseRdn("cn=a")), unwrap(parseRdn("cn=a+sn=b"))));
  });

  it("makeAva validates the type and the value length", () => {
    assert.deepEqual(unwrap(makeAva("CN", " Babs ")), {
      type: "CN",
      typeNorm: "cn",
      value: " Babs ",
      valueNorm: "babs",
    });
    assert.equal(errorOf(makeAva("cn;lang-en", "x")).code, "invalid-attribute");
    assert.equal(errorOf(makeAva("", "x")).code, "invalid-attribute");
    assert.equal(errorOf(makeAva("cn", "a".repeat(dnValueLengthMax + 1))).code, "limit-exceeded");
    assert.equal(errorOf(makeAva("a".repeat(attributeTypeLengthMax + 1), "x")).code, "limit-exceeded");
  });

  it("makeRdn sorts and refuses empty, oversized or repeated-type AVA lists", () => {
    const cn = unwrap(makeAva("cn", "b"));
    const sn = unwrap(makeAva("sn", "a"));
    assert.deepEqual(makeRdn([sn, cn]).avas, [cn, sn]);
    assert.throws(() => makeRdn([]), AssertionError);
    assert.throws(() => makeRdn([cn, unwrap(makeAva("CN", "c"))]), AssertionError);
    const many = Array.from({ length: rdnAvasMax + 1 }, (_, index) => unwrap(makeAva(`a${index}`, "x")));
    assert.throws(() => makeRdn(many), AssertionError);
  });

  it("isAttributeType accepts descrs and numericoids only", () => {
    for (const good of ["cn", "CN", "x-attr-1", "a", "2.5.4.3", "0.9", "1.3.6.1.4.1.1466.0"]) {
      assert.ok(isAttributeType(good), good);
    }
    for (const bad of ["", "1", "-a", "a_b", "cn;x", "01.2", "1.", ".1", "1..2", "cn ", "é"]) {
      assert.ok(!isAttributeType(bad), bad);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Properties

const attributeType = fc.oneof(
  fc.constantFrom("cn", "CN", "ou", "dc", "uid", "2.5.4.3", "0.9.2342.19200300.100.1.25"),
  fc.stringMatching(/^[A-Za-z][A-Za-z0-9-]{0,8}$/),
);

/** Values rich in what needs escaping: specials, spaces at the edges, controls, non-ASCII. */
const attributeValue = fc.string({
  unit: fc.oneof(
    { weight: 3, arbitrary: fc.constantFrom('"', "+", ",", ";", "<", ">", "\\", "=", "#", " ", "  ") },
    { weight: 2, arbitrary: fc.constantFrom("\n", "\r", "\u0000", "\u001f", "\u007f", "\t") },
    { weight: 2, arbitrary: fc.constantFrom("é", "e\u0301", "Č", "中", "😀", "\u00a0", "İ") },
    { weight: 4, arbitrary: fc.string({ unit: "binary", minLength: 1, maxLength: 1 }) },
  ),
  maxLength: 10,
});

const ava: fc.Arbitrary<Ava> = fc
  .tuple(attributeType, attributeValue)
  .map(([type, value]) => unwrap(makeAva(type, value)));

const rdn: fc.Arbitrary<Rdn> = fc
  .uniqueArray(ava, { minLength: 1, maxLength: 3, selector: (item) => item.typeNorm })
  .map((avas) => makeRdn(avas));

const dnArbitrary: fc.Arbitrary<Dn> = fc.array(rdn, { maxLength: 5 }).map((rdns) => ({ rdns }));

describe("properties", () => {
  it("parseDn(formatDn(dn)) gives back an equal DN", () => {
    fc.assert(
      fc.property(dnArbitrary, (value) => {
        assert.deepEqual(unwrap(parseDn(formatDn(value))), value);
      }),
      { numRuns: 500 },
    );
  });

  it("parseRdn(formatRdn(rdn)) gives back an equal RDN", () => {
    fc.assert(
      fc.property(rdn, (value) => {
        assert.deepEqual(unwrap(parseRdn(formatRdn(value))), value);
      }),
    );
  });

  it("a normalized DN parses to a DN with the same normalization", () => {
    fc.assert(
      fc.property(dnArbitrary, (value) => {
        const key = normalizeDn(value);
        const reparsed = unwrap(parseDn(key));
        assert.equal(normalizeDn(reparsed), key);
        assert.ok(dnEquals(reparsed, value));
      }),
    );
  });

  it("dnEquals agrees with comparing normalizations", () => {
    const smallValue = fc.constantFrom("a", "A", " a", "b", "a b", "A  B", "");
    const smallRdn = fc
      .uniqueArray(
        fc
          .tuple(fc.constantFrom("cn", "CN", "sn"), smallValue)
          .map(([type, value]) => unwrap(makeAva(type, value))),
        { minLength: 1, maxLength: 2, selector: (item) => item.typeNorm },
      )
      .map((avas) => makeRdn(avas));
    const smallDn = fc.array(smallRdn, { maxLength: 3 }).map((rdns): Dn => ({ rdns }));
    fc.assert(
      fc.property(smallDn, smallDn, (a, b) => {
        assert.equal(dnEquals(a, b), normalizeDn(a) === normalizeDn(b));
        // The small values hold no ',' so a key suffix after a ',' is an RDN suffix.
        const keyA = normalizeDn(a);
        const keyB = normalizeDn(b);
        const expected = keyA === "" || keyA === keyB || keyB.endsWith(`,${keyA}`);
        assert.equal(dnIsSuffixOf(a, b), expected);
      }),
      { numRuns: 500 },
    );
  });

  it("changing case, AVA order and spaces around separators keeps the normalization", () => {
    const word = fc.stringMatching(/^[a-z]{1,6}$/);
    const plainRdn = fc.uniqueArray(fc.tuple(fc.constantFrom("cn", "sn", "ou", "uid"), word), {
      minLength: 1,
      maxLength: 3,
      selector: ([type]) => type,
    });
    fc.assert(
      fc.property(fc.array(plainRdn, { minLength: 1, maxLength: 4 }), (rdns) => {
        const plain = rdns.map((avas) => avas.map(([type, value]) => `${type}=${value}`).join("+")).join(",");
        const noisy = rdns
          .map((avas) =>
            [...avas]
              .reverse()
              .map(([type, value]) => `${type.toUpperCase()} = ${value.toUpperCase()}`)
              .join(" + "),
          )
          .join(" , ");
        assert.equal(normalizeDn(dn(noisy)), normalizeDn(dn(plain)));
      }),
    );
  });
});
