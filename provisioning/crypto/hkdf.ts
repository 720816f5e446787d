/**
 * HKDF (RFC 5869) on Node's HMAC. `crypto.hkdfSync` gives the same bytes, but it wraps the input
 * in a KeyObject and runs a crypto job for every call: 31 µs for one block here, against 17 µs
 * for the two or three HMACs it comes down to. The IQ derives keys on every sealed command and
 * every Code check, on a Pi Zero too (docs/performance.md). The tests hold this to RFC 5869's
 * vectors and to `hkdfSync`.
 */
import { createHmac } from "node:crypto";
import { IqError } from "../../common/errors.js";

const HASH_BYTES = { sha256: 32, sha512: 64 } as const;
export type HkdfHash = keyof typeof HASH_BYTES;

/** HKDF-Expand(HKDF-Extract(salt, ikm), info, length); an empty salt means HashLen zero bytes. */
export function hkdf(hash: HkdfHash, ikm: Uint8Array, salt: Uint8Array, info: Uint8Array, length: number): Uint8Array {
  const size = HASH_BYTES[hash];
  if (!Number.isInteger(length) || length < 1 || length > 255 * size) {
    throw new IqError("crypto_input_invalid", `HKDF: length must be 1 to ${255 * size} bytes`);
  }
  const prk = createHmac(hash, salt.length > 0 ? salt : new Uint8Array(size)).update(ikm).digest();
  const okm = new Uint8Array(Math.ceil(length / size) * size);
  let block: Uint8Array = new Uint8Array(0);
  for (let i = 1; (i - 1) * size < length; i++) {
    block = createHmac(hash, prk).update(block).update(info).update(Uint8Array.of(i)).digest();
    okm.set(block, (i - 1) * size);
  }
  prk.fill(0);
  block.fill(0);
  const out = okm.slice(0, length);
  okm.fill(0);
  return out;
}
