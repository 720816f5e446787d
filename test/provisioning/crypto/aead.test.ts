import { xchacha20poly1305 } from "@noble/ciphers/chacha.js";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { xchachaOpen, xchachaSeal } from "../../../provisioning/crypto/aead.js";

const bytes = (length: number) => fc.uint8Array({ minLength: length, maxLength: length });

describe("XChaCha20-Poly1305 on OpenSSL (aead.ts), checked against @noble/ciphers", () => {
  it("seals to the same bytes as noble, and each opens what the other sealed", () => {
    fc.assert(
      fc.property(bytes(32), bytes(24), fc.uint8Array({ maxLength: 80 }), fc.uint8Array({ maxLength: 300 }), (key, nonce, ad, plaintext) => {
        const ours = xchachaSeal(key, nonce, ad, plaintext);
        expect(ours).toEqual(xchacha20poly1305(key, nonce, ad).encrypt(plaintext));
        expect(xchachaOpen(key, nonce, ad, ours)).toEqual(plaintext);
      }),
      { numRuns: 300, seed: 20261201 },
    );
  });

  it("takes Buffers (views into Node's shared pool) as well as Uint8Arrays", () => {
    const key = Buffer.from("k".repeat(32));
    const nonce = Buffer.from(`padding${"n".repeat(24)}`).subarray(7);
    const sealed = Buffer.from(xchachaSeal(key, nonce, Buffer.from("ad"), Buffer.from("open")));
    expect(sealed).toEqual(Buffer.from(xchacha20poly1305(new Uint8Array(key), new Uint8Array(nonce), new TextEncoder().encode("ad")).encrypt(new TextEncoder().encode("open"))));
    expect(Buffer.from(xchachaOpen(key, nonce, Buffer.from("ad"), sealed)!).toString()).toBe("open");
  });

  it("opens nothing that was changed: a flipped bit anywhere, other data, a short box", () => {
    const key = new Uint8Array(32).fill(7);
    const nonce = new Uint8Array(24).fill(9);
    const ad = Uint8Array.of(1, 2, 3);
    const sealed = xchachaSeal(key, nonce, ad, new TextEncoder().encode("open the door"));
    for (let bit = 0; bit < sealed.length * 8; bit += 7) {
      const flipped = sealed.slice();
      flipped[bit >> 3]! ^= 1 << (bit & 7);
      expect(xchachaOpen(key, nonce, ad, flipped)).toBeUndefined();
    }
    expect(xchachaOpen(key, nonce, Uint8Array.of(1, 2), sealed)).toBeUndefined();
    expect(xchachaOpen(key, nonce.map((b, i) => (i === 23 ? b ^ 1 : b)), ad, sealed)).toBeUndefined();
    expect(xchachaOpen(key, nonce, ad, sealed.subarray(0, 15))).toBeUndefined();
  });
});
