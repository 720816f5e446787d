import fc from "fast-check";
import { describe, expect, it } from "vitest";

import { CROCKFORD_ALPHABET, decodeCrockford, encodeCrockford } from "../../../provisioning/crypto/crockford.js";

const malformed = (details: Record<string, unknown> = {}): unknown =>
  expect.objectContaining({ code: "code_malformed", details: expect.objectContaining(details) as unknown });

describe("Crockford base32", () => {
  it("has 32 distinct symbols and none of I, L, O, U", () => {
    expect(new Set(CROCKFORD_ALPHABET).size).toBe(32);
    expect(CROCKFORD_ALPHABET).not.toMatch(/[ILOU]/);
  });

  it("round-trips every 5-digit Code", () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 31 }), { minLength: 5, maxLength: 5 }), (digits) => {
        const text = encodeCrockford(digits);
        expect(text).toMatch(/^[0-9A-HJKMNP-TV-Z]{5}$/);
        expect(decodeCrockford(text, 5)).toEqual(digits);
      }),
    );
  });

  it("reads any case, O as 0, I and L as 1, and ignores hyphens and spaces", () => {
    const digits = decodeCrockford("7ZK3M", 5);
    expect(decodeCrockford("7zk3m", 5)).toEqual(digits);
    expect(decodeCrockford(" 7z-k3 m ", 5)).toEqual(digits);
    expect(decodeCrockford("OoIiL", 5)).toEqual([0, 0, 1, 1, 1]);
  });

  it("refuses a character outside the alphabet, naming it and its position", () => {
    expect(() => decodeCrockford("AB?DE", 5)).toThrow(malformed({ character: "?", position: 3 }));
    expect(() => decodeCrockford("ABCDU", 5)).toThrow(malformed({ character: "U", position: 5 }));
    expect(() => decodeCrockford("ABCDÉ", 5)).toThrow(malformed({ character: "É" }));
  });

  it("refuses the wrong length, overlong input and non-text", () => {
    expect(() => decodeCrockford("ABCD", 5)).toThrow(malformed({ length: 4 }));
    expect(() => decodeCrockford("ABCDEF", 5)).toThrow(malformed({ length: 6 }));
    expect(() => decodeCrockford("-".repeat(1000), 5)).toThrow(malformed());
    expect(() => decodeCrockford(12345, 5)).toThrow(malformed());
  });

  it("refuses digits outside 0..31 when encoding", () => {
    expect(() => encodeCrockford([32])).toThrow(expect.objectContaining({ code: "crypto_input_invalid" }));
    expect(() => encodeCrockford([1.5])).toThrow(expect.objectContaining({ code: "crypto_input_invalid" }));
  });
});
