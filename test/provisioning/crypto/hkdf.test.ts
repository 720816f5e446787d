import { hkdfSync, randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { hkdf } from "../../../provisioning/crypto/hkdf.js";

const hex = (text: string) => new Uint8Array(Buffer.from(text, "hex"));
const IKM = hex("0b".repeat(22));

describe("hkdf", () => {
  it("gives RFC 5869's test case 1 (SHA-256, salt and info)", () => {
    const okm = hkdf("sha256", IKM, hex("000102030405060708090a0b0c"), hex("f0f1f2f3f4f5f6f7f8f9"), 42);
    expect(Buffer.from(okm).toString("hex")).toBe("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865");
  });

  it("gives RFC 5869's test case 3 (SHA-256, no salt, no info)", () => {
    const okm = hkdf("sha256", IKM, new Uint8Array(0), new Uint8Array(0), 42);
    expect(Buffer.from(okm).toString("hex")).toBe("8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8");
  });

  it("gives the same bytes as node's hkdfSync for both hashes, any salt and length", () => {
    for (const hash of ["sha256", "sha512"] as const) {
      for (const length of [1, 32, 33, 64, 65, 128, 200]) {
        for (const salt of [new Uint8Array(0), randomBytes(16), randomBytes(80)]) {
          const ikm = randomBytes(32);
          const info = randomBytes(length % 50);
          expect(Buffer.from(hkdf(hash, ikm, salt, info, length))).toEqual(Buffer.from(hkdfSync(hash, ikm, salt, info, length)));
        }
      }
    }
  });

  it("refuses a length HKDF cannot give", () => {
    expect(() => hkdf("sha256", IKM, new Uint8Array(0), new Uint8Array(0), 0)).toThrow(expect.objectContaining({ code: "crypto_input_invalid" }));
    expect(() => hkdf("sha256", IKM, new Uint8Array(0), new Uint8Array(0), 255 * 32 + 1)).toThrow(expect.objectContaining({ code: "crypto_input_invalid" }));
  });
});
