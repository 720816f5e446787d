import { bytesToHex, hexToBytes } from "@noble/hashes/utils.js";
import fc from "fast-check";
import { describe, expect, it } from "vitest";

import {
  equalBytes,
  lengthPrefix,
  lvCat,
  requireText,
  splitLv,
  u64be,
  utf8,
  zeroize,
} from "../../../provisioning/crypto/bytes.js";

const range = (n: number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => i);
const prependLen = (data: Uint8Array): string => bytesToHex(lvCat(data));

describe("lv_cat and prepend_len (draft-irtf-cfrg-cpace §A.1)", () => {
  it("match the draft's prepend_len vectors (A.1.2)", () => {
    expect(prependLen(new Uint8Array(0))).toBe("00");
    expect(prependLen(utf8("1234"))).toBe("0431323334");
    expect(prependLen(range(127))).toBe("7f" + bytesToHex(range(127)));
    expect(prependLen(range(128))).toBe("8001" + bytesToHex(range(128)));
  });

  it("match the draft's lv_cat vector (A.1.4)", () => {
    expect(bytesToHex(lvCat(utf8("1234"), utf8("5"), new Uint8Array(0), utf8("678")))).toBe(
      "043132333401350003363738",
    );
  });

  it("encodes lengths in LEB128 beyond one byte", () => {
    expect(bytesToHex(lengthPrefix(300))).toBe("ac02");
    expect(bytesToHex(lengthPrefix(16384))).toBe("808001");
  });

  it("splitLv undoes lvCat for any parts", () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 300 }), { minLength: 1, maxLength: 5 }), (parts) => {
        const split = splitLv(lvCat(...parts), parts.length);
        expect(split?.map(bytesToHex)).toEqual(parts.map(bytesToHex));
      }),
    );
  });

  it("splitLv refuses truncated, trailing and non-minimal encodings", () => {
    const encoded = lvCat(utf8("ab"), utf8("c"));
    expect(splitLv(encoded.subarray(0, encoded.length - 1), 2)).toBeUndefined();
    expect(splitLv(Uint8Array.of(...encoded, 0), 2)).toBeUndefined();
    expect(splitLv(hexToBytes("8000"), 1)).toBeUndefined();
    expect(splitLv(hexToBytes("ffffffff7f"), 1)).toBeUndefined();
  });
});

describe("equalBytes", () => {
  it("is true exactly for equal contents", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 40 }), fc.uint8Array({ maxLength: 40 }), (a, b) => {
        expect(equalBytes(a, b)).toBe(bytesToHex(a) === bytesToHex(b));
        expect(equalBytes(a, a.slice())).toBe(true);
      }),
    );
  });
});

describe("zeroize", () => {
  it("overwrites every buffer it is given", () => {
    const a = Uint8Array.of(1, 2, 3);
    const b = Uint8Array.of(4);
    zeroize(a, b);
    expect([...a, ...b]).toEqual([0, 0, 0, 0]);
  });
});

describe("u64be and requireText", () => {
  it("u64be writes 8 big-endian bytes and refuses what does not fit", () => {
    expect(bytesToHex(u64be(Number.MAX_SAFE_INTEGER))).toBe("001fffffffffffff");
    expect(() => u64be(-1)).toThrow(expect.objectContaining({ code: "crypto_input_invalid" }));
    expect(() => u64be(1.5)).toThrow(expect.objectContaining({ code: "crypto_input_invalid" }));
  });

  it("requireText refuses empty, control-character and oversized identifiers", () => {
    expect(bytesToHex(requireText("iqId", "iq-1"))).toBe(bytesToHex(utf8("iq-1")));
    for (const bad of ["", "a\nb", "x".repeat(129), 7]) {
      expect(() => requireText("iqId", bad)).toThrow(expect.objectContaining({ code: "crypto_input_invalid" }));
    }
  });
});
