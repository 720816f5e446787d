/**
 * XChaCha20-Poly1305 (draft-irtf-cfrg-xchacha-03): HChaCha20 from @noble/ciphers turns the key and
 * the first 16 bytes of the 24-byte nonce into a subkey, and OpenSSL's ChaCha20-Poly1305 (RFC 8439)
 * seals under that subkey with the nonce 0⁴ ‖ nonce[16..24].
 *
 * Why not @noble/ciphers' xchacha20poly1305 throughout: every opening seals or opens four boxes
 * (the command and its answer, on the IQ and in the app) and the secret store opens more; noble's
 * Poly1305 in JavaScript cost about three times OpenSSL's on the reference machine
 * (docs/performance.md). The construction and its bytes are the same: the property tests check
 * this module against noble's xchacha20poly1305 on random keys, nonces, data and lengths.
 */
import { createCipheriv, createDecipheriv } from "node:crypto";
import { hchacha } from "@noble/ciphers/chacha.js";

export const XCHACHA_NONCE_BYTES = 24;
export const TAG_BYTES = 16;
const KEY_BYTES = 32;

// "expand 32-byte k" as the four little-endian words ChaCha starts from (RFC 8439 §2.3).
const SIGMA = new Uint32Array(new Uint8Array(Buffer.from("expand 32-byte k", "latin1")).buffer);

/** The ChaCha20-Poly1305 key and 12-byte nonce that XChaCha20-Poly1305 runs as. */
function subkey(key: Uint8Array, nonce: Uint8Array): { key: Uint8Array; iv: Uint8Array } {
  if (key.length !== KEY_BYTES || nonce.length !== XCHACHA_NONCE_BYTES) throw new RangeError("XChaCha20-Poly1305: a 32-byte key and a 24-byte nonce");
  // Copies into buffers of their own: the word views need them aligned, and a Buffer's slice() is
  // a view into a shared pool, not a copy.
  const words = new Uint32Array(8);
  hchacha(SIGMA, new Uint32Array(new Uint8Array(key).buffer), new Uint32Array(new Uint8Array(nonce.subarray(0, 16)).buffer), words);
  const iv = new Uint8Array(12);
  iv.set(nonce.subarray(16), 4);
  return { key: new Uint8Array(words.buffer), iv };
}

/** ciphertext ‖ tag of `plaintext` under `key` and the 24-byte `nonce`, binding `ad`. */
export function xchachaSeal(key: Uint8Array, nonce: Uint8Array, ad: Uint8Array, plaintext: Uint8Array): Uint8Array {
  const sub = subkey(key, nonce);
  try {
    const cipher = createCipheriv("chacha20-poly1305", sub.key, sub.iv, { authTagLength: TAG_BYTES });
    cipher.setAAD(ad, { plaintextLength: plaintext.length });
    return new Uint8Array(Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]));
  } finally {
    sub.key.fill(0);
  }
}

/** The plaintext of ciphertext ‖ tag, or undefined when it does not authenticate under key, nonce and `ad`. */
export function xchachaOpen(key: Uint8Array, nonce: Uint8Array, ad: Uint8Array, sealed: Uint8Array): Uint8Array | undefined {
  if (sealed.length < TAG_BYTES) return undefined;
  const sub = subkey(key, nonce);
  try {
    const decipher = createDecipheriv("chacha20-poly1305", sub.key, sub.iv, { authTagLength: TAG_BYTES });
    decipher.setAAD(ad, { plaintextLength: sealed.length - TAG_BYTES });
    decipher.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
    const plaintext = decipher.update(sealed.subarray(0, sealed.length - TAG_BYTES));
    decipher.final();
    return new Uint8Array(plaintext);
  } catch {
    return undefined;
  } finally {
    sub.key.fill(0);
  }
}
