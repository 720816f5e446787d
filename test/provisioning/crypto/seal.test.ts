import { xchacha20poly1305 } from "@noble/ciphers/chacha.js";
import { bytesToHex, hexToBytes } from "@noble/hashes/utils.js";
import fc from "fast-check";
import { describe, expect, it } from "vitest";

import { utf8 } from "../../../provisioning/crypto/bytes.js";
import { open, seal, type SealContext } from "../../../provisioning/crypto/seal.js";

describe("XChaCha20-Poly1305 known answer (draft-irtf-cfrg-xchacha-03 A.3.1, the AEAD seal uses)", () => {
  it("encrypts and decrypts as published", () => {
    const key = hexToBytes("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f");
    const nonce = hexToBytes("404142434445464748494a4b4c4d4e4f5051525354555657");
    const aad = hexToBytes("50515253c0c1c2c3c4c5c6c7");
    const plaintext = utf8(
      "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.",
    );
    const sealed =
      "bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb" +
      "731c7f1b0b4aa6440bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b452" +
      "2f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff9" +
      "21f9664c97637da9768812f615c68b13b52e" +
      "c0875924c1c7987947deafd8780acf49";
    expect(bytesToHex(xchacha20poly1305(key, nonce, aad).encrypt(plaintext))).toBe(sealed);
    expect(bytesToHex(xchacha20poly1305(key, nonce, aad).decrypt(hexToBytes(sealed)))).toBe(bytesToHex(plaintext));
  });
});

const context = (overrides: Partial<SealContext> = {}): SealContext => ({
  key: new Uint8Array(32).fill(0x42),
  iqId: "iq-0001",
  appId: "app-0001",
  purpose: "open",
  ...overrides,
});
const command = utf8(JSON.stringify({ command: "open", lock: "front", pin: "604913" }));
const failed = (code: string): unknown => expect.objectContaining({ code });

describe("sealed commands", () => {
  it("open to the payload and counter they were sealed with", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.integer({ min: 1, max: 2 ** 40 }), (payload, counter) => {
        const sealed = seal({ ...context(), counter, payload });
        const opened = open({ ...context(), sealed, lastCounter: counter - 1 });
        expect(opened.counter).toBe(counter);
        expect(bytesToHex(opened.payload)).toBe(bytesToHex(payload));
      }),
    );
  });

  it("a changed byte anywhere is refused", () => {
    const sealed = seal({ ...context(), counter: 7, payload: command });
    fc.assert(
      fc.property(fc.nat(sealed.length - 1), fc.integer({ min: 1, max: 255 }), (index, flip) => {
        const tampered = sealed.slice();
        tampered[index] = (tampered[index] ?? 0) ^ flip;
        expect(() => open({ ...context(), sealed: tampered, lastCounter: 0 })).toThrow(failed("seal_invalid"));
      }),
      { numRuns: 300 },
    );
  });

  it("is refused for another IQ, app, purpose or key", () => {
    const sealed = seal({ ...context(), counter: 7, payload: command });
    for (const other of [
      { iqId: "iq-0002" },
      { appId: "app-0002" },
      { purpose: "office_on" },
      { key: new Uint8Array(32).fill(0x43) },
    ]) {
      expect(() => open({ ...context(other), sealed, lastCounter: 0 })).toThrow(failed("seal_invalid"));
    }
  });

  it("binds its fields unambiguously: moving characters between IQ id and app id is refused", () => {
    const sealed = seal({ ...context({ iqId: "iq-00", appId: "01app" }), counter: 7, payload: command });
    expect(() => open({ ...context({ iqId: "iq-0001", appId: "app" }), sealed, lastCounter: 0 })).toThrow(
      failed("seal_invalid"),
    );
  });

  it("is refused when its counter is not above the last accepted one", () => {
    const sealed = seal({ ...context(), counter: 7, payload: command });
    expect(open({ ...context(), sealed, lastCounter: 6 }).counter).toBe(7);
    expect(() => open({ ...context(), sealed, lastCounter: 7 })).toThrow(failed("seal_replay"));
    expect(() => open({ ...context(), sealed, lastCounter: 100 })).toThrow(failed("seal_replay"));
  });

  it("uses a fresh nonce for every seal", () => {
    const a = seal({ ...context(), counter: 7, payload: command });
    const b = seal({ ...context(), counter: 7, payload: command });
    expect(bytesToHex(a)).not.toBe(bytesToHex(b));
  });

  it("refuses truncated, empty and foreign envelopes", () => {
    const sealed = seal({ ...context(), counter: 7, payload: command });
    for (const bad of [new Uint8Array(0), sealed.subarray(0, 40), Uint8Array.of(2, ...sealed.subarray(1)), "text"]) {
      expect(() => open({ ...context(), sealed: bad as Uint8Array, lastCounter: 0 })).toThrow(failed("seal_invalid"));
    }
  });

  it("refuses bad arguments at the door", () => {
    const invalid = failed("crypto_input_invalid");
    expect(() => seal({ ...context({ key: new Uint8Array(16) }), counter: 1, payload: command })).toThrow(invalid);
    expect(() => seal({ ...context(), counter: -1, payload: command })).toThrow(invalid);
    expect(() => seal({ ...context({ purpose: "" }), counter: 1, payload: command })).toThrow(invalid);
  });
});
