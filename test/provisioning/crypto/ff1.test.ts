import { FF1 } from "@noble/ciphers/ff1.js";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { IqError } from "../../../common/errors.js";
import { Ff1 } from "../../../provisioning/crypto/ff1.js";

/** Shapes this FF1 supports: the Codes' (radix 32, 5 digits) and others around it. */
const SHAPES = [
  { radix: 32, length: 5 },
  { radix: 2, length: 7 },
  { radix: 16, length: 6 },
  { radix: 64, length: 9 },
  { radix: 256, length: 6 },
];

const bytes32 = () => fc.uint8Array({ minLength: 32, maxLength: 32 });
const digitsOf = (radix: number, length: number) => fc.array(fc.integer({ min: 0, max: radix - 1 }), { minLength: length, maxLength: length });

const input = (radix: number, length: number) =>
  fc.record({
    key: fc.oneof(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.uint8Array({ minLength: 16, maxLength: 16 })),
    // Tweaks of every length around the block boundaries, including none (P ‖ Q in one block).
    tweak: fc.uint8Array({ minLength: 0, maxLength: 140 }),
    digits: fc.array(fc.integer({ min: 0, max: radix - 1 }), { minLength: length, maxLength: length }),
  });

describe("FF1 on OpenSSL's AES (ff1.ts), checked against @noble/ciphers' FF1", () => {
  it.each(SHAPES)("radix $radix, $length digits: same ciphertext as noble, and decrypt inverts it", ({ radix, length }) => {
    fc.assert(
      fc.property(input(radix, length), ({ key, tweak, digits }) => {
        const ours = new Ff1(key, radix, length).withTweak(tweak);
        const theirs = FF1(radix, key, tweak);
        const ciphertext = ours.encrypt(digits);
        expect(ciphertext).toEqual(theirs.encrypt([...digits]));
        expect(ours.decrypt(ciphertext)).toEqual(digits);
        expect(ours.decrypt(digits)).toEqual(theirs.decrypt([...digits]));
      }),
      { numRuns: 150, seed: 20261201 },
    );
  });

  it("decrypts under several tweaks at once (in lockstep) exactly as under each alone", () => {
    fc.assert(
      fc.property(bytes32(), fc.array(fc.uint8Array({ maxLength: 40 }), { minLength: 1, maxLength: 6 }), digitsOf(32, 5), (key, tweaks, digits) => {
        const ff1 = new Ff1(key, 32, 5);
        expect(ff1.decryptUnder(tweaks, digits)).toEqual(tweaks.map((tweak) => FF1(32, key, tweak).decrypt([...digits])));
      }),
      { numRuns: 100, seed: 20261202 },
    );
  });

  it("refuses shapes it cannot compute exactly, and digits outside the radix", () => {
    const key = new Uint8Array(32);
    expect(() => new Ff1(key, 10, 6)).toThrow(IqError);
    expect(() => new Ff1(key, 32, 14)).toThrow(/too long/);
    expect(() => new Ff1(key, 2, 6)).toThrow(/fewer than 100/);
    expect(() => new Ff1(new Uint8Array(20), 32, 5)).toThrow(/16, 24 or 32 bytes/);
    const ff1 = new Ff1(key, 32, 5).withTweak(new Uint8Array(3));
    expect(() => ff1.decrypt([1, 2, 3, 4, 32])).toThrow(/digits below 32/);
    expect(() => ff1.decrypt([1, 2, 3, 4])).toThrow(/5 digits/);
  });
});
