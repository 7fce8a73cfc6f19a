import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import {
  compareCodeUnits,
  compareOrdering,
  decodeUtf8,
  hexByteAt,
  hexPair,
  normalizeSubstringPiece,
  normalizeValue,
} from "./values.ts";

/** Strings mixing ASCII, whitespace of several kinds, combining marks and astral characters. */
const messyString = fc.string({
  unit: fc.oneof(
    fc.constantFrom(" ", "\t", "\n", "\u00a0", "\u2003", "e\u0301", "\u0301", "İ", "ß", "Σ", "😀", "A", "z"),
    fc.string({ unit: "binary", minLength: 1, maxLength: 1 }),
  ),
  maxLength: 12,
});

describe("normalizeValue", () => {
  it("trims, collapses whitespace runs and lowercases", () => {
    assert.equal(normalizeValue("  Babs \t  JENSEN\n"), "babs jensen");
    assert.equal(normalizeValue(""), "");
    assert.equal(normalizeValue(" \t "), "");
  });

  it("applies Unicode NFC so composed and decomposed forms compare equal", () => {
    assert.equal(normalizeValue("Ame\u0301lie"), normalizeValue("Am\u00e9lie"));
    assert.equal(normalizeValue("Ame\u0301lie"), "am\u00e9lie");
  });

  it("is idempotent", () => {
    fc.assert(
      fc.property(messyString, (value) => {
        const once = normalizeValue(value);
        assert.equal(normalizeValue(once), once);
      }),
    );
  });

  it("ignores case and outer or repeated whitespace", () => {
    fc.assert(
      fc.property(fc.array(fc.stringMatching(/^[a-z]{1,5}$/), { minLength: 1, maxLength: 4 }), (words) => {
        const plain = words.join(" ");
        const noisy = `  ${words.map((word) => word.toUpperCase()).join(" \t ")}\n`;
        assert.equal(normalizeValue(noisy), normalizeValue(plain));
      }),
    );
  });
});

describe("normalizeSubstringPiece", () => {
  it("trims only the outer edge of initial and final pieces", () => {
    assert.equal(normalizeSubstringPiece("  Babs  ", "initial"), "babs ");
    assert.equal(normalizeSubstringPiece("  Babs  ", "final"), " babs");
    assert.equal(normalizeSubstringPiece("  Babs  ", "any"), " babs ");
  });
});

describe("compareOrdering", () => {
  it("compares decimal integers numerically", () => {
    assert.ok(compareOrdering("10", "9") > 0);
    assert.ok(compareOrdering("-5", "3") < 0);
    assert.equal(compareOrdering("007", "7"), 0);
    assert.equal(compareOrdering(" 42 ", "42"), 0);
  });

  it("keeps the order of integers beyond 2^53", () => {
    assert.ok(compareOrdering("123456789012345678901234567890", "123456789012345678901234567891") < 0);
    assert.ok(compareOrdering("9007199254740993", "9007199254740992") > 0);
  });

  it("compares anything else as normalized strings", () => {
    assert.ok(compareOrdering("abc", "ABD") < 0);
    assert.equal(compareOrdering("Babs  Jensen", "babs jensen"), 0);
    assert.ok(compareOrdering("10", "9a") < 0);
  });

  it("agrees with BigInt order on integers", () => {
    fc.assert(
      fc.property(fc.bigInt(), fc.bigInt(), (a, b) => {
        const expected = a < b ? -1 : a > b ? 1 : 0;
        assert.equal(Math.sign(compareOrdering(a.toString(), b.toString())), expected);
      }),
    );
  });

  it("is antisymmetric", () => {
    const operand = fc.oneof(messyString, fc.bigInt().map(String));
    fc.assert(
      fc.property(operand, operand, (a, b) => {
        assert.equal(Math.sign(compareOrdering(a, b)) + Math.sign(compareOrdering(b, a)), 0);
      }),
    );
  });
});

describe("compareCodeUnits", () => {
  it("orders by UTF-16 code unit, not by locale", () => {
    assert.ok(compareCodeUnits("Z", "a") < 0);
    assert.ok(compareCodeUnits("\uffff", "😀") > 0);
    assert.equal(compareCodeUnits("x", "x"), 0);
  });
});

describe("hex helpers", () => {
  it("reads a hex pair in either case", () => {
    assert.equal(hexByteAt("\\c4\\8D", 1), 0xc4);
    assert.equal(hexByteAt("\\c4\\8D", 4), 0x8d);
    assert.equal(hexByteAt("zz", 0), undefined);
    assert.equal(hexByteAt("a", 0), undefined);
  });

  it("writes two uppercase digits", () => {
    assert.equal(hexPair(0x0a), "0A");
    assert.equal(hexPair(0x7f), "7F");
  });
});

describe("decodeUtf8", () => {
  it("decodes what TextEncoder encodes", () => {
    // ignoreBOM: a TextDecoder otherwise drops a leading U+FEFF, which a DN or filter value keeps.
    const reference = new TextDecoder("utf-8", { ignoreBOM: true });
    fc.assert(
      fc.property(fc.string({ unit: "binary" }), (text) => {
        const bytes = [...new TextEncoder().encode(text)];
        assert.equal(decodeUtf8(bytes), reference.decode(new Uint8Array(bytes)));
      }),
    );
    // The counterexample fast-check found once (seed 1923461546): a value that starts with a BOM.
    assert.equal(decodeUtf8([0xef, 0xbb, 0xbf]), "\ufeff");
  });

  it("accepts exactly what a fatal TextDecoder accepts", () => {
    const fatal = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
    const reference = (bytes: number[]): string | undefined => {
      try {
        return fatal.decode(new Uint8Array(bytes));
      } catch (error: unknown) {
        assert.ok(error instanceof TypeError);
        return undefined;
      }
    };
    const byte = fc.oneof(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0x80, max: 0xbf }));
    fc.assert(
      fc.property(fc.array(byte, { maxLength: 8 }), (bytes) => {
        assert.equal(decodeUtf8(bytes), reference(bytes));
      }),
      { numRuns: 2000 },
    );
  });

  it("rejects overlong forms, surrogates, out-of-range and truncated sequences", () => {
    assert.equal(decodeUtf8([0xc0, 0x80]), undefined);
    assert.equal(decodeUtf8([0xe0, 0x80, 0x80]), undefined);
    assert.equal(decodeUtf8([0xed, 0xa0, 0x80]), undefined);
    assert.equal(decodeUtf8([0xf4, 0x90, 0x80, 0x80]), undefined);
    assert.equal(decodeUtf8([0xc4]), undefined);
    assert.equal(decodeUtf8([0x8d]), undefined);
    assert.equal(decodeUtf8([0xc4, 0x8d, 0x69]), "či");
  });
});
