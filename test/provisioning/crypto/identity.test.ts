import { ed25519, x25519 } from "@noble/curves/ed25519.js";
import { bytesToHex, hexToBytes } from "@noble/hashes/utils.js";
import fc from "fast-check";
import { describe, expect, it } from "vitest";

import { lvCat, utf8 } from "../../../provisioning/crypto/bytes.js";
import {
  generateIdentity,
  generateStaticKey,
  identityPublicKey,
  MAX_SIGNED_BYTES,
  signDocument,
  verifyDocument,
  type DocumentKind,
} from "../../../provisioning/crypto/identity.js";

const failed = (code: string): unknown => expect.objectContaining({ code });
const refused = failed("signature_invalid");

const identity = generateIdentity();
const iqId = "iq-0001";
const body = { id: "r-1", to: "iq/v2/iq-0001/app/app-1/answer", ok: true, result: { door: "open", note: "ünïcødé ✓" } };
const sign = (overrides: Partial<{ kind: DocumentKind; iqId: string; body: unknown }> = {}) =>
  signDocument({ secretKey: identity.secretKey, kind: "answer", iqId, body, ...overrides });
const verify = (doc: unknown, overrides: Partial<{ kind: DocumentKind; iqId: string; publicKey: Uint8Array }> = {}) =>
  verifyDocument({ publicKey: identity.publicKey, kind: "answer", iqId, doc, ...overrides });

describe("keys", () => {
  it("makes an Ed25519 identity whose public key derives from its secret", () => {
    const a = generateIdentity();
    const b = generateIdentity();
    expect(a.secretKey).toHaveLength(32);
    expect(a.publicKey).toHaveLength(32);
    expect(bytesToHex(identityPublicKey(a.secretKey))).toBe(bytesToHex(a.publicKey));
    expect(bytesToHex(a.secretKey)).not.toBe(bytesToHex(b.secretKey));
  });

  it("makes an X25519 static key whose halves agree", () => {
    const a = generateStaticKey();
    const b = generateStaticKey();
    expect(a.secretKey).toHaveLength(32);
    expect(bytesToHex(x25519.getPublicKey(a.secretKey))).toBe(bytesToHex(a.publicKey));
    expect(bytesToHex(x25519.getSharedSecret(a.secretKey, b.publicKey))).toBe(
      bytesToHex(x25519.getSharedSecret(b.secretKey, a.publicKey)),
    );
  });

  it("refuses a secret key of the wrong length", () => {
    expect(() => identityPublicKey(new Uint8Array(31))).toThrow(failed("crypto_input_invalid"));
  });
});

describe("signed documents", () => {
  it("carry the body as JSON text and an 86-character base64url signature", () => {
    const doc = sign();
    expect(doc.signed).toBe(JSON.stringify(body));
    expect(doc.sig).toMatch(/^[A-Za-z0-9_-]{86}$/);
  });

  it("sign exactly lv_cat(label, kind, IQ id, text) (a fixed key gives the same bytes as plain Ed25519)", () => {
    const secretKey = hexToBytes("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60");
    const doc = signDocument({ secretKey, kind: "state", iqId: "iq-7", body: { a: 1 } });
    const message = lvCat(utf8("iq-hub/v2/signed"), utf8("state"), utf8("iq-7"), utf8('{"a":1}'));
    expect(doc.sig).toBe(Buffer.from(ed25519.sign(message, secretKey)).toString("base64url"));
    // Ed25519 is deterministic: the same document twice is the same signature.
    expect(signDocument({ secretKey, kind: "state", iqId: "iq-7", body: { a: 1 } })).toEqual(doc);
  });

  it("verify to the body they were signed with, for every kind", () => {
    for (const kind of ["answer", "state", "event"] as const) {
      expect(verify(sign({ kind }), { kind })).toEqual(body);
    }
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        const doc = sign({ body: value });
        // What comes back is JSON.parse of the signed text (so -0 reads back as 0).
        expect(verify(doc)).toEqual(JSON.parse(doc.signed));
      }),
      { numRuns: 50 },
    );
  });

  it("verify after a trip through JSON (as they travel)", () => {
    const doc: unknown = JSON.parse(JSON.stringify(sign()));
    expect(verify(doc)).toEqual(body);
  });

  it("are refused as another kind, for another IQ or under another key", () => {
    const doc = sign({ kind: "event" });
    expect(() => verify(doc, { kind: "answer" })).toThrow(refused);
    expect(() => verify(doc, { kind: "state" })).toThrow(refused);
    expect(() => verify(sign(), { iqId: "iq-0002" })).toThrow(refused);
    expect(() => verify(sign(), { publicKey: generateIdentity().publicKey })).toThrow(refused);
  });

  it("bind their fields unambiguously: moving characters between kind, IQ id and text is refused", () => {
    const doc = sign({ iqId: "iq-00" });
    expect(() => verify(doc, { iqId: "iq-000" })).toThrow(refused);
    expect(() => verify(doc, { iqId: "iq-0" })).toThrow(refused);
  });

  it("are refused when the text is changed, even to equal JSON", () => {
    const doc = sign();
    for (const signed of [
      doc.signed.replace("open", "shut"),
      doc.signed + " ",
      ` ${doc.signed}`,
      JSON.stringify(JSON.parse(doc.signed), null, 1),
      "",
    ]) {
      expect(() => verify({ ...doc, signed })).toThrow(refused);
    }
  });

  it("are refused when any signature bit is changed", () => {
    const doc = sign();
    const bytes = Buffer.from(doc.sig, "base64url");
    fc.assert(
      fc.property(fc.nat(63), fc.nat(7), (index, bit) => {
        const tampered = Uint8Array.from(bytes);
        tampered[index] = (tampered[index] ?? 0) ^ (1 << bit);
        expect(() => verify({ ...doc, sig: Buffer.from(tampered).toString("base64url") })).toThrow(refused);
      }),
      { numRuns: 100 },
    );
  });

  it("accept only the canonical base64url spelling of the signature", () => {
    const doc = sign();
    const last = doc.sig.at(-1) ?? "";
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    // The last of 86 characters carries 2 bits; the next character up spells the same bytes.
    const sibling = alphabet[alphabet.indexOf(last) + 1] ?? "";
    const same = `${doc.sig.slice(0, -1)}${sibling}`;
    expect(Buffer.from(same, "base64url").equals(Buffer.from(doc.sig, "base64url"))).toBe(true);
    expect(() => verify({ ...doc, sig: same })).toThrow(refused);
    const standard = Buffer.from(doc.sig, "base64url").toString("base64");
    for (const sig of [`${doc.sig}==`, `${doc.sig}A`, doc.sig.slice(0, -1), doc.sig.replace(/.$/, "="), standard]) {
      expect(() => verify({ ...doc, sig })).toThrow(refused);
    }
  });

  it("refuse anything that is not exactly { signed: string, sig: string }", () => {
    const doc = sign();
    const inherited = Object.create(doc) as object;
    for (const bad of [
      undefined,
      null,
      "text",
      42,
      [doc.signed, doc.sig],
      {},
      { signed: doc.signed },
      { sig: doc.sig },
      { ...doc, extra: 1 },
      { signed: JSON.parse(doc.signed) as unknown, sig: doc.sig },
      { signed: doc.signed, sig: Buffer.from(doc.sig, "base64url") },
      inherited,
    ]) {
      expect(() => verify(bad)).toThrow(refused);
    }
  });

  it("refuse text over 256 KiB, and are never made over it", () => {
    const big = "x".repeat(MAX_SIGNED_BYTES);
    expect(() => sign({ body: big })).toThrow(failed("crypto_input_invalid"));
    expect(() => verify({ signed: `${big}x`, sig: sign().sig })).toThrow(refused);
    // Multi-byte characters count in bytes, not characters.
    const wide = JSON.stringify("é".repeat(MAX_SIGNED_BYTES / 2));
    expect(() => verify({ signed: wide, sig: sign().sig })).toThrow(refused);
    const fits = "y".repeat(MAX_SIGNED_BYTES - 2);
    expect(verify(sign({ body: fits }))).toBe(fits);
  });

  it("refuse a valid signature over text that is not JSON", () => {
    const signed = "{not json";
    const message = lvCat(utf8("iq-hub/v2/signed"), utf8("answer"), utf8(iqId), utf8(signed));
    const sig = Buffer.from(ed25519.sign(message, identity.secretKey)).toString("base64url");
    expect(() => verify({ signed, sig })).toThrow(refused);
  });

  it("refuse bad arguments at the door", () => {
    const invalid = failed("crypto_input_invalid");
    expect(() => sign({ kind: "command" as DocumentKind })).toThrow(invalid);
    expect(() => sign({ iqId: "" })).toThrow(invalid);
    expect(() => sign({ body: undefined })).toThrow(invalid);
    expect(() => sign({ body: () => 1 })).toThrow(invalid);
    expect(() => signDocument({ secretKey: new Uint8Array(64), kind: "answer", iqId, body })).toThrow(invalid);
    expect(() => verify(sign(), { publicKey: new Uint8Array(31) })).toThrow(invalid);
    expect(() => verify(sign(), { kind: "other" as DocumentKind })).toThrow(invalid);
  });
});
