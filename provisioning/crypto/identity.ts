/**
 * The IQ's long-term keys (protocol v2): an Ed25519 identity that signs what the IQ publishes, and
 * an X25519 static key that every sealed command is addressed to (command-seal.ts). Both are made
 * at claim, kept sealed in the secret store, and their public halves reach each app inside the
 * sealed pairing result, so an app checks everything the IQ says against keys it got first-hand.
 *
 * Signed documents: retained state, every event and every plain answer travel as
 *
 *     { "signed": "<JSON text>", "sig": "<base64url, no padding, 86 characters>" }
 *     sig = Ed25519(identity, lv_cat("iq-hub/v2/signed", kind, IQ id, UTF-8 of signed))
 *
 * The signature covers the exact text, never a re-serialisation, so signer and verifier need no
 * canonical JSON. The kind (answer | state | event) and the IQ id are inside the signed bytes, so a
 * recorded event cannot be replayed as an answer, nor one IQ's state as another's; lv_cat keeps
 * the fields from sliding into each other. A broker full of strangers can drop documents but
 * cannot forge or alter one.
 *
 * Verification is strict RFC 8032 (no ZIP-215 leniency: canonical encodings only, no small-order
 * keys) and the base64url must be the one canonical encoding, so one document has one valid
 * form. Whatever is wrong with a document, the answer is one `IqError("signature_invalid")`: the
 * reason would only help a forger. `signed` is capped at 256 KiB before any work is done.
 */
import { IqError } from "../../common/errors.js";
import { lvCat, requireBytes, requireText, utf8 } from "./bytes.js";
import { ed25519Signer, ed25519Verify, keygen, publicKeyOf } from "./curves.js";

const KEY_BYTES = 32;
const SIGNATURE_BYTES = 64;
/** base64url without padding of 64 bytes: ⌈64 · 8 / 6⌉ characters. */
const SIGNATURE_CHARS = 86;
/** Documents are small; the cap bounds the work a hostile message can cause. */
export const MAX_SIGNED_BYTES = 256 * 1024;
const SIGNED_LABEL = utf8("iq-hub/v2/signed");

/** What a signed document is; part of the signed bytes, so one kind never passes for another. */
export type DocumentKind = "answer" | "state" | "event";
const KINDS: readonly string[] = ["answer", "state", "event"] satisfies DocumentKind[];

/** A signed document as it travels. */
export interface SignedDocument {
  signed: string;
  sig: string;
}

function invalidInput(name: string, expected: string): IqError {
  return new IqError("crypto_input_invalid", `${name}: expected ${expected}`, { argument: name });
}

function requireKind(kind: unknown): Uint8Array {
  if (typeof kind !== "string" || !KINDS.includes(kind)) throw invalidInput("kind", KINDS.join(" | "));
  return utf8(kind);
}

/** A new Ed25519 identity: the 32-byte secret key (RFC 8032 seed) and its public key. */
export function generateIdentity(): { secretKey: Uint8Array; publicKey: Uint8Array } {
  return keygen("ed25519");
}

/** The Ed25519 public key of a 32-byte identity secret key. */
export function identityPublicKey(secretKey: Uint8Array): Uint8Array {
  return publicKeyOf("ed25519", requireBytes("secretKey", secretKey, KEY_BYTES));
}

/**
 * A new X25519 static key: the key sealed commands are addressed to. The secret never leaves the
 * IQ; the public half goes to each app in the pairing result.
 */
export function generateStaticKey(): { secretKey: Uint8Array; publicKey: Uint8Array } {
  return keygen("x25519");
}

/** The X25519 public key of a static (or ephemeral) secret key. */
export function staticPublicKey(secretKey: Uint8Array): Uint8Array {
  return publicKeyOf("x25519", requireBytes("secretKey", secretKey, KEY_BYTES));
}

function signedMessage(kind: Uint8Array, iqId: Uint8Array, signed: Uint8Array): Uint8Array {
  return lvCat(SIGNED_LABEL, kind, iqId, signed);
}

/** Sign `body` (anything JSON.stringify turns into text) as a document of this kind from this IQ. */
export function signDocument(input: {
  secretKey: Uint8Array;
  kind: DocumentKind;
  iqId: string;
  body: unknown;
}): SignedDocument {
  return createSigner(input.secretKey, input.iqId)(input.kind, input.body);
}

/** signDocument for one IQ, with its key imported once: the IQ signs every answer and event. */
export function createSigner(secretKey: Uint8Array, iqIdText: string): (kind: DocumentKind, body: unknown) => SignedDocument {
  const sign = ed25519Signer(requireBytes("secretKey", secretKey, KEY_BYTES));
  const iqId = requireText("iqId", iqIdText);
  return (kindText, body) => {
    const kind = requireKind(kindText);
    const signed: unknown = JSON.stringify(body);
    if (typeof signed !== "string") throw invalidInput("body", "a value JSON can represent");
    const signedBytes = utf8(signed);
    // Never produce a document that every verifier would refuse.
    if (signedBytes.length > MAX_SIGNED_BYTES) throw invalidInput("body", `at most ${MAX_SIGNED_BYTES} bytes as JSON`);
    return { signed, sig: Buffer.from(sign(signedMessage(kind, iqId, signedBytes))).toString("base64url") };
  };
}

function invalidSignature(): IqError {
  return new IqError("signature_invalid", "the document is damaged, or not signed by this IQ as this kind");
}

/**
 * Check a received document against the IQ's identity public key and return its body
 * (JSON.parse of `signed`). The caller's own arguments (public key, kind, IQ id) are checked at
 * the door (`crypto_input_invalid`); anything wrong with `doc` — not exactly `{ signed, sig }`
 * with two strings, too long, a non-canonical or wrong signature, text that is not JSON — is
 * IqError `signature_invalid`. Only the returned body is authenticated.
 */
export function verifyDocument(input: {
  publicKey: Uint8Array;
  kind: DocumentKind;
  iqId: string;
  doc: unknown;
}): unknown {
  const publicKey = requireBytes("publicKey", input.publicKey, KEY_BYTES);
  const kind = requireKind(input.kind);
  const iqId = requireText("iqId", input.iqId);
  const doc = input.doc;
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) throw invalidSignature();
  const keys = Object.keys(doc);
  if (keys.length !== 2 || !keys.includes("signed") || !keys.includes("sig")) throw invalidSignature();
  const { signed, sig } = doc as Record<string, unknown>;
  // A UTF-16 code unit is at least one UTF-8 byte, so the length check bounds the bytes before
  // any encoding work; the byte check after it is exact.
  if (typeof signed !== "string" || signed.length > MAX_SIGNED_BYTES) throw invalidSignature();
  if (typeof sig !== "string" || sig.length !== SIGNATURE_CHARS || !/^[A-Za-z0-9_-]+$/.test(sig)) {
    throw invalidSignature();
  }
  const signature = new Uint8Array(Buffer.from(sig, "base64url"));
  // The last character carries 2 spare bits: only the canonical spelling (spare bits zero) passes.
  if (signature.length !== SIGNATURE_BYTES || Buffer.from(signature).toString("base64url") !== sig) {
    throw invalidSignature();
  }
  const signedBytes = utf8(signed);
  if (signedBytes.length > MAX_SIGNED_BYTES) throw invalidSignature();
  if (!ed25519Verify(signature, signedMessage(kind, iqId, signedBytes), publicKey)) throw invalidSignature();
  try {
    return JSON.parse(signed) as unknown;
  } catch {
    throw invalidSignature();
  }
}
