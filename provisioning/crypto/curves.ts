/**
 * Ed25519 (RFC 8032) and X25519 (RFC 7748) on raw 32-byte keys, computed by Node's OpenSSL.
 *
 * Why not @noble/curves (CPace keeps it for Elligator 2 only): on this project's reference machine noble
 * signs about 550 times a second and computes about 300 X25519s a second; OpenSSL does 10,000 and
 * 8,000 (docs/performance.md). The IQ signs every answer and event and computes an X25519 for every
 * sealed command, on a Pi Zero as well: at noble's speed an opening would spend 5 ms here and tens
 * of milliseconds there in curve arithmetic alone. OpenSSL's implementations are constant-time and
 * strict (RFC 8032 verification, all-zero X25519 outputs refused). The known-answer tests run the
 * RFC vectors through this module and through @noble/curves, so each checks the other.
 */
import { createHash, createPrivateKey, createPublicKey, diffieHellman, generateKeyPairSync, sign, verify, type KeyObject } from "node:crypto";
import { IqError } from "../../common/errors.js";
import { requireBytes } from "./bytes.js";

const KEY_BYTES = 32;
// The DER wrapper of a raw secret key (RFC 8410 PKCS #8): Node imports a private OKP key from JWK
// only with its public half, so secrets come in as DER (slow: cached below).
const PKCS8_PREFIX = { ed25519: "302e020100300506032b657004220420", x25519: "302e020100300506032b656e04220420" } as const;
type Curve = keyof typeof PKCS8_PREFIX;
const JWK_CURVE = { ed25519: "Ed25519", x25519: "X25519" } as const;

/**
 * Imported secret keys, per buffer: importing one costs about 0.8 ms (DER parsing), an X25519 with
 * it 0.06 ms, and the IQ uses its static and identity keys for every command. The digest catches a
 * buffer that was overwritten (zeroised) since: it is imported again, never trusted.
 */
const imported = new WeakMap<Uint8Array, { digest: string; curve: Curve; key: KeyObject }>();

function secretKeyObject(curve: Curve, secretKey: Uint8Array): KeyObject {
  const raw = requireBytes("secretKey", secretKey, KEY_BYTES);
  const digest = createHash("sha256").update(raw).digest("base64url");
  const cached = imported.get(raw);
  if (cached?.digest === digest && cached.curve === curve) return cached.key;
  const key = createPrivateKey({ key: Buffer.concat([Buffer.from(PKCS8_PREFIX[curve], "hex"), raw]), format: "der", type: "pkcs8" });
  imported.set(raw, { digest, curve, key });
  return key;
}

/** A raw public key as a KeyObject: through JWK, 15 times faster than DER. */
function publicKeyObject(curve: Curve, publicKey: Uint8Array): KeyObject {
  const raw = requireBytes("publicKey", publicKey, KEY_BYTES);
  return createPublicKey({ key: { kty: "OKP", crv: JWK_CURVE[curve], x: Buffer.from(raw).toString("base64url") }, format: "jwk" });
}

const rawPublic = (key: KeyObject): Uint8Array => new Uint8Array(Buffer.from(key.export({ format: "jwk" }).x!, "base64url"));
const rawSecret = (key: KeyObject): Uint8Array => new Uint8Array(Buffer.from(key.export({ format: "jwk" }).d!, "base64url"));

export interface KeyPair {
  secretKey: Uint8Array;
  publicKey: Uint8Array;
}

export function keygen(curve: Curve): KeyPair {
  const { privateKey, publicKey } = curve === "ed25519" ? generateKeyPairSync("ed25519") : generateKeyPairSync("x25519");
  return { secretKey: rawSecret(privateKey), publicKey: rawPublic(publicKey) };
}

export function publicKeyOf(curve: Curve, secretKey: Uint8Array): Uint8Array {
  return rawPublic(createPublicKey(secretKeyObject(curve, secretKey)));
}

/** An Ed25519 signer with its key imported once (the IQ signs every answer and event). */
export function ed25519Signer(secretKey: Uint8Array): (message: Uint8Array) => Uint8Array {
  const key = secretKeyObject("ed25519", secretKey);
  return (message) => new Uint8Array(sign(null, message, key));
}

/** Strict RFC 8032 verification; false for any key or signature that does not check out. */
export function ed25519Verify(signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean {
  try {
    return verify(null, message, publicKeyObject("ed25519", publicKey), signature);
  } catch {
    return false;
  }
}

/** X25519(k, u). IqError `crypto_input_invalid` for a low-order u (an all-zero result). */
export function x25519(secretKey: Uint8Array, publicKey: Uint8Array): Uint8Array {
  return sharedSecret(secretKeyObject("x25519", secretKey), publicKey);
}

/** A fresh X25519 secret that never leaves OpenSSL (nothing to zeroise, nothing to import). */
export interface X25519Secret {
  /** Its public key, X25519(k, 9). */
  readonly publicKey: Uint8Array;
  /** X25519(k, u) for any u-coordinate; IqError `crypto_input_invalid` for an all-zero result. */
  multiply(u: Uint8Array): Uint8Array;
}

export function x25519Secret(): X25519Secret {
  const { privateKey, publicKey } = generateKeyPairSync("x25519");
  return { publicKey: rawPublic(publicKey), multiply: (u) => sharedSecret(privateKey, u) };
}

/** A fresh X25519 key pair used once against `peerPublic`: its public half and the shared secret. */
export function x25519Ephemeral(peerPublic: Uint8Array): { publicKey: Uint8Array; shared: Uint8Array } {
  const secret = x25519Secret();
  return { publicKey: secret.publicKey, shared: secret.multiply(peerPublic) };
}

function sharedSecret(privateKey: KeyObject, peerPublic: Uint8Array): Uint8Array {
  let shared: Buffer;
  try {
    shared = diffieHellman({ privateKey, publicKey: publicKeyObject("x25519", peerPublic) });
  } catch {
    throw new IqError("crypto_input_invalid", "X25519: the peer's key is of low order or not a key");
  }
  // OpenSSL refuses all-zero outputs itself; a second lock that survives a library change.
  if (shared.every((byte) => byte === 0)) throw new IqError("crypto_input_invalid", "X25519: the peer's key is of low order");
  return new Uint8Array(shared);
}
