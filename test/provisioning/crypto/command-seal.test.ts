import { xchacha20poly1305 } from "@noble/ciphers/chacha.js";
import { x25519 } from "@noble/curves/ed25519.js";
import { hkdf } from "@noble/hashes/hkdf.js";
import { hmac } from "@noble/hashes/hmac.js";
import { sha256, sha512 } from "@noble/hashes/sha2.js";
import { bytesToHex, hexToBytes, randomBytes } from "@noble/hashes/utils.js";
import fc from "fast-check";
import { describe, expect, it } from "vitest";

import { concatBytes, lvCat, utf8 } from "../../../provisioning/crypto/bytes.js";
import {
  checkCommandMac,
  COMMAND_MAC_BYTES,
  MAX_COMMAND_PAYLOAD,
  openAnswer,
  openCommand,
  openWithKey,
  pairTransportKeys,
  sealAnswer,
  sealCommand,
  sealWithKey,
} from "../../../provisioning/crypto/command-seal.js";
import { generateStaticKey, staticPublicKey } from "../../../provisioning/crypto/identity.js";

const failed = (code: string): unknown => expect.objectContaining({ code });
const refused = failed("seal_invalid");
const hex = bytesToHex;

const iqStatic = generateStaticKey();
const otherStatic = generateStaticKey();
const appKey = new Uint8Array(32).fill(0x42);
const ids = { iqId: "iq-0001", appId: "app-0001", requestId: "req-0001" };
const command = utf8(JSON.stringify({ op: "open", lock: "front", pin: "604913", challenge: "q1w2e3" }));

const seal = (payload: Uint8Array = command) =>
  sealCommand({ ...ids, appKey, iqStaticKey: iqStatic.publicKey, payload });
type Sealed = ReturnType<typeof seal>;
/** The IQ's key pair for a static secret (a guess, or a reused buffer): its public half is computed from it. */
const staticPair = (secretKey: Uint8Array) => ({ iqStatic: { secretKey, publicKey: staticPublicKey(secretKey) } });
const open = (sealed: Sealed, overrides: Partial<Parameters<typeof openCommand>[0]> = {}) =>
  openCommand({ ...ids, appKey, iqStatic, epk: sealed.epk, box: sealed.box, ...overrides });
const check = (sealed: Sealed, overrides: Partial<Parameters<typeof checkCommandMac>[0]> = {}) =>
  checkCommandMac({ ...ids, appKey, epk: sealed.epk, box: sealed.box, mac: sealed.mac, ...overrides });
const flip = (bytes: Uint8Array, index: number, mask = 1): Uint8Array => {
  const out = bytes.slice();
  out[index] = (out[index] ?? 0) ^ mask;
  return out;
};

/** u-coordinates of small order on curve25519 and its twist (the libsodium blocklist, canonical forms). */
const LOW_ORDER = [
  "0000000000000000000000000000000000000000000000000000000000000000",
  "0100000000000000000000000000000000000000000000000000000000000000",
  "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
  "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
  "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
  "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
  "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
].map(hexToBytes);

describe("sealed commands", () => {
  it("open to the payload they were sealed with, and both sides hold the same answer key", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (payload) => {
        const sealed = seal(payload);
        expect(sealed.epk).toHaveLength(32);
        expect(sealed.mac).toHaveLength(COMMAND_MAC_BYTES);
        expect(sealed.box).toHaveLength(24 + payload.length + 16);
        expect(check(sealed)).toBe(true);
        const opened = open(sealed);
        expect(hex(opened.payload)).toBe(hex(payload));
        expect(hex(opened.answerKey)).toBe(hex(sealed.answerKey));
        expect(hex(sealed.answerKey)).not.toBe(hex(new Uint8Array(32)));
      }),
      { numRuns: 30 },
    );
  });

  it("follow the published layout: a command built by hand from the spec checks and opens", () => {
    const e = hexToBytes("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
    const epk = x25519.getPublicKey(e);
    const dh = x25519.getSharedSecret(e, iqStatic.publicKey);
    const [iqId, appId, requestId] = [utf8(ids.iqId), utf8(ids.appId), utf8(ids.requestId)];
    const info = lvCat(utf8("iq-hub/v2/command-keys"), iqId, appId, epk, iqStatic.publicKey);
    const okm = hkdf(sha512, dh, appKey, info, 64);
    const nonce = randomBytes(24);
    const ad = lvCat(utf8("iq-hub/v2/command"), iqId, appId, requestId);
    const box = concatBytes(nonce, xchacha20poly1305(okm.subarray(0, 32), nonce, ad).encrypt(command));
    const macInput = lvCat(utf8("iq-hub/v2/command-mac"), iqId, appId, requestId, epk, box);
    const mac = hmac(sha256, appKey, macInput).subarray(0, 16);
    const sealed = { epk, box, mac, answerKey: okm.slice(32) };
    expect(check(sealed)).toBe(true);
    const opened = open(sealed);
    expect(hex(opened.payload)).toBe(hex(command));
    expect(hex(opened.answerKey)).toBe(hex(okm.subarray(32)));
    // And the answer: nonce ‖ XChaCha20-Poly1305(kRes, AD = lv_cat("iq-hub/v2/answer", …)).
    const answer = sealAnswer({ ...ids, answerKey: opened.answerKey, payload: utf8("ok") });
    const answerAd = lvCat(utf8("iq-hub/v2/answer"), iqId, appId, requestId);
    const plain = xchacha20poly1305(okm.subarray(32), answer.subarray(0, 24), answerAd).decrypt(answer.subarray(24));
    expect(Buffer.from(plain).toString()).toBe("ok");
  });

  it("use a fresh ephemeral key, nonce and answer key for every command", () => {
    const a = seal();
    const b = seal();
    expect(hex(a.epk)).not.toBe(hex(b.epk));
    expect(hex(a.box.subarray(0, 24))).not.toBe(hex(b.box.subarray(0, 24)));
    expect(hex(a.answerKey)).not.toBe(hex(b.answerKey));
  });

  it("a changed byte anywhere in epk or box fails the MAC and does not open", () => {
    const sealed = seal();
    fc.assert(
      fc.property(fc.nat(sealed.box.length - 1), fc.integer({ min: 1, max: 255 }), (index, mask) => {
        const box = flip(sealed.box, index, mask);
        expect(check(sealed, { box })).toBe(false);
        expect(() => open(sealed, { box })).toThrow(refused);
      }),
      { numRuns: 100 },
    );
    for (let index = 0; index < 32; index++) {
      const epk = flip(sealed.epk, index);
      expect(check(sealed, { epk })).toBe(false);
      expect(() => open(sealed, { epk })).toThrow(refused);
    }
  });

  it("a changed MAC is refused by the MAC check", () => {
    const sealed = seal();
    for (let index = 0; index < COMMAND_MAC_BYTES; index++) {
      expect(check(sealed, { mac: flip(sealed.mac, index, 0x80) })).toBe(false);
    }
    expect(check(sealed, { mac: new Uint8Array(COMMAND_MAC_BYTES) })).toBe(false);
  });

  it("is refused for another request, app or IQ, or under another app key", () => {
    const sealed = seal();
    for (const other of [
      { requestId: "req-0002" },
      { appId: "app-0002" },
      { iqId: "iq-0002" },
      { appKey: new Uint8Array(32).fill(0x43) },
    ]) {
      expect(check(sealed, other)).toBe(false);
      expect(() => open(sealed, other)).toThrow(refused);
    }
  });

  it("binds its fields unambiguously: moving characters between IQ id, app id and request id is refused", () => {
    const sealed = sealCommand({
      iqId: "iq-00",
      appId: "01app",
      requestId: "r",
      appKey,
      iqStaticKey: iqStatic.publicKey,
      payload: command,
    });
    const shifted = { iqId: "iq-0001", appId: "app", requestId: "r" };
    expect(check(sealed, shifted)).toBe(false);
    expect(() => open(sealed, shifted)).toThrow(refused);
    const intoRequest = { iqId: "iq-00", appId: "01ap", requestId: "pr" };
    expect(check(sealed, intoRequest)).toBe(false);
    expect(() => open(sealed, intoRequest)).toThrow(refused);
  });

  it("opens only with the static secret of the IQ it was sealed to", () => {
    const sealed = seal();
    expect(check(sealed)).toBe(true); // the MAC does not involve the static key…
    expect(() => open(sealed, staticPair(otherStatic.secretKey))).toThrow(refused); // …the box does
  });

  it("forward secrecy: a recorded command plus the app's key file, without the ephemeral secret, opens nothing", () => {
    const recorded = seal();
    // The thief has appKey, iqId, appId, requestId, epk, mac and box, and the IQ's static public key.
    expect(check(recorded)).toBe(true);
    for (const guess of [appKey, new Uint8Array(32), iqStatic.publicKey, recorded.epk, otherStatic.secretKey]) {
      expect(() => open(recorded, staticPair(guess))).toThrow(refused);
    }
    // Deriving the keys from what is known, with the app key (or a public value) in place of dh.
    const [iqId, appId, requestId] = [utf8(ids.iqId), utf8(ids.appId), utf8(ids.requestId)];
    const info = lvCat(utf8("iq-hub/v2/command-keys"), iqId, appId, recorded.epk, iqStatic.publicKey);
    const ad = lvCat(utf8("iq-hub/v2/command"), iqId, appId, requestId);
    const guesses = [appKey, new Uint8Array(32), recorded.epk, iqStatic.publicKey, x25519.getSharedSecret(appKey, recorded.epk)];
    for (const ikm of guesses) {
      const key = hkdf(sha512, ikm, appKey, info, 64).subarray(0, 32);
      expect(() => openWithKey({ key, ad, box: recorded.box })).toThrow(refused);
    }
    expect(() => openWithKey({ key: appKey, ad, box: recorded.box })).toThrow(refused);
  });

  it("refuses low-order and all-zero ephemeral keys without a shared secret", () => {
    const sealed = seal();
    for (const epk of LOW_ORDER) {
      expect(() => open(sealed, { epk })).toThrow(refused);
    }
  });

  it("is not sealed to a low-order static key", () => {
    for (const iqStaticKey of LOW_ORDER) {
      expect(() => sealCommand({ ...ids, appKey, iqStaticKey, payload: command })).toThrow(failed("crypto_input_invalid"));
    }
  });

  it("refuses wrong lengths and foreign values in the message fields", () => {
    const sealed = seal();
    const { epk, box, mac } = sealed;
    const badFields: Partial<Parameters<typeof openCommand>[0]>[] = [
      { epk: epk.subarray(0, 31) },
      { epk: concatBytes(epk, Uint8Array.of(0)) },
      { epk: "epk" as unknown as Uint8Array },
      { box: box.subarray(0, 39) },
      { box: new Uint8Array(0) },
      { box: new Uint8Array(24 + MAX_COMMAND_PAYLOAD + 17) },
      { box: [...box] as unknown as Uint8Array },
      { requestId: "" },
      { requestId: "a\nb" },
      { requestId: 7 as unknown as string },
    ];
    for (const bad of badFields) {
      expect(check(sealed, bad as Partial<Parameters<typeof checkCommandMac>[0]>)).toBe(false);
      expect(() => open(sealed, bad)).toThrow(refused);
    }
    for (const badMac of [mac.subarray(0, 15), concatBytes(mac, Uint8Array.of(0)), hmac(sha256, appKey, box), undefined]) {
      expect(check(sealed, { mac: badMac as Uint8Array })).toBe(false);
    }
  });

  it("carries payloads up to 64 KiB and no more", () => {
    const largest = randomBytes(MAX_COMMAND_PAYLOAD);
    const sealed = seal(largest);
    expect(check(sealed)).toBe(true);
    expect(hex(open(sealed).payload)).toBe(hex(largest));
    expect(() => seal(new Uint8Array(MAX_COMMAND_PAYLOAD + 1))).toThrow(failed("crypto_input_invalid"));
  });

  it("keeps working when the IQ's static secret buffer is reused for another key", () => {
    const buffer = iqStatic.secretKey.slice();
    expect(hex(open(seal(), staticPair(buffer)).payload)).toBe(hex(command));
    buffer.set(otherStatic.secretKey);
    const toOther = sealCommand({ ...ids, appKey, iqStaticKey: otherStatic.publicKey, payload: command });
    expect(hex(open(toOther, staticPair(buffer)).payload)).toBe(hex(command));
    expect(() => open(seal(), staticPair(buffer))).toThrow(refused);
  });

  it("refuses bad arguments of the caller's own at the door", () => {
    const invalid = failed("crypto_input_invalid");
    const sealed = seal();
    const good = { ...ids, appKey, iqStaticKey: iqStatic.publicKey, payload: command };
    expect(() => sealCommand({ ...good, appKey: new Uint8Array(16) })).toThrow(invalid);
    expect(() => sealCommand({ ...good, iqStaticKey: new Uint8Array(31) })).toThrow(invalid);
    expect(() => sealCommand({ ...good, iqId: "" })).toThrow(invalid);
    expect(() => open(sealed, { iqStatic: { secretKey: new Uint8Array(31), publicKey: iqStatic.publicKey } })).toThrow(invalid);
    expect(() => open(sealed, { appKey: new Uint8Array(31) })).toThrow(invalid);
    expect(() => check(sealed, { appKey: new Uint8Array(31) })).toThrow(invalid);
  });
});

describe("sealed answers", () => {
  const exchange = () => {
    const sealed = seal();
    const { answerKey } = open(sealed);
    return { appAnswerKey: sealed.answerKey, iqAnswerKey: answerKey };
  };
  const reply = utf8(JSON.stringify({ id: "req-0001", ok: true, result: { door: "open" }, challenge: "c2" }));

  it("open on the app with the key its command gave", () => {
    const { appAnswerKey, iqAnswerKey } = exchange();
    const box = sealAnswer({ ...ids, answerKey: iqAnswerKey, payload: reply });
    expect(hex(openAnswer({ ...ids, answerKey: appAnswerKey, box }))).toBe(hex(reply));
  });

  it("are refused for another request, app, IQ or command, or with a changed byte", () => {
    const { appAnswerKey, iqAnswerKey } = exchange();
    const box = sealAnswer({ ...ids, answerKey: iqAnswerKey, payload: reply });
    const others = [{ requestId: "req-0002" }, { appId: "app-0002" }, { iqId: "iq-0002" }, { answerKey: exchange().appAnswerKey }];
    for (const other of others) {
      expect(() => openAnswer({ ...ids, answerKey: appAnswerKey, box, ...other })).toThrow(refused);
    }
    for (let index = 0; index < box.length; index++) {
      expect(() => openAnswer({ ...ids, answerKey: appAnswerKey, box: flip(box, index) })).toThrow(refused);
    }
    expect(() => openAnswer({ ...ids, answerKey: appAnswerKey, box: box.subarray(0, 39) })).toThrow(refused);
  });

  it("are not commands: the answer AD differs from the command AD under the same key", () => {
    const { appAnswerKey } = exchange();
    const asCommand = sealWithKey({
      key: appAnswerKey,
      ad: lvCat(utf8("iq-hub/v2/command"), utf8(ids.iqId), utf8(ids.appId), utf8(ids.requestId)),
      payload: reply,
    });
    expect(() => openAnswer({ ...ids, answerKey: appAnswerKey, box: asCommand })).toThrow(refused);
  });
});

describe("sealWithKey / openWithKey", () => {
  const key = new Uint8Array(32).fill(7);
  const ad = utf8("ad");

  it("round-trips any payload and binds the associated data", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.uint8Array({ maxLength: 64 }), (payload, data) => {
        const box = sealWithKey({ key, ad: data, payload });
        expect(box).toHaveLength(24 + payload.length + 16);
        expect(hex(openWithKey({ key, ad: data, box }))).toBe(hex(payload));
        expect(() => openWithKey({ key, ad: concatBytes(data, Uint8Array.of(0)), box })).toThrow(refused);
      }),
      { numRuns: 50 },
    );
  });

  it("is XChaCha20-Poly1305 with the nonce in front", () => {
    const box = sealWithKey({ key, ad, payload: command });
    expect(hex(xchacha20poly1305(key, box.subarray(0, 24), ad).decrypt(box.subarray(24)))).toBe(hex(command));
  });

  it("refuses another key, short boxes and bad arguments", () => {
    const box = sealWithKey({ key, ad, payload: command });
    expect(() => openWithKey({ key: new Uint8Array(32), ad, box })).toThrow(refused);
    expect(() => openWithKey({ key, ad, box: box.subarray(0, 39) })).toThrow(refused);
    expect(() => openWithKey({ key, ad, box: "box" as unknown as Uint8Array })).toThrow(refused);
    expect(() => sealWithKey({ key: new Uint8Array(31), ad, payload: command })).toThrow(failed("crypto_input_invalid"));
    expect(() => sealWithKey({ key, ad, payload: new Uint8Array(MAX_COMMAND_PAYLOAD + 1) })).toThrow(
      failed("crypto_input_invalid"),
    );
  });
});

describe("pairing transport keys", () => {
  const isk = hexToBytes(
    "b69effbf61b51d56401c0f65601abe428de8206feaaf0e32198896dcae7b35cd" +
      "2b38950a39dfd5d4a79164614c2984f7daa460b588c1e80c3fa2068af7900447",
  );
  const route = { iqId: "iq-0001", appId: "app-0001" };

  it("are HKDF-SHA512(ISK, 'iq-hub/v2/pair-transport', lv_cat(iqId, appId)) split toIq ‖ toApp", () => {
    const okm = hkdf(sha512, isk, utf8("iq-hub/v2/pair-transport"), lvCat(utf8(route.iqId), utf8(route.appId)), 64);
    const keys = pairTransportKeys(isk, route);
    expect(hex(keys.toIq)).toBe(hex(okm.subarray(0, 32)));
    expect(hex(keys.toApp)).toBe(hex(okm.subarray(32)));
    expect(hex(keys.toIq)).not.toBe(hex(keys.toApp));
  });

  it("differ for another ISK, IQ or app, and a box for one direction does not open in the other", () => {
    const keys = pairTransportKeys(isk, route);
    for (const other of [
      pairTransportKeys(flip(isk, 0), route),
      pairTransportKeys(isk, { ...route, iqId: "iq-0002" }),
      pairTransportKeys(isk, { ...route, appId: "app-0002" }),
    ]) {
      expect(hex(other.toIq)).not.toBe(hex(keys.toIq));
      expect(hex(other.toApp)).not.toBe(hex(keys.toApp));
    }
    const ad = utf8("pair.finish");
    const box = sealWithKey({ key: keys.toIq, ad, payload: command });
    expect(hex(openWithKey({ key: pairTransportKeys(isk, route).toIq, ad, box }))).toBe(hex(command));
    expect(() => openWithKey({ key: keys.toApp, ad, box })).toThrow(refused);
  });

  it("refuse a short ISK or bad ids", () => {
    const invalid = failed("crypto_input_invalid");
    expect(() => pairTransportKeys(new Uint8Array(16), route)).toThrow(invalid);
    expect(() => pairTransportKeys(isk, { ...route, appId: "" })).toThrow(invalid);
  });
});
