/**
 * The device key wrapped with the board's OTP key (issue 8 item 5): what `device.key` holds on a
 * Pi whose customer OTP private key is programmed. A copy of the whole card then opens nothing on
 * another board: the wrapping key never leaves the board's OTP memory but at boot, into memory.
 *
 * Layout: "IQWK" ‖ version 1 ‖ 24-byte nonce ‖ XChaCha20-Poly1305(device key) with its 16-byte
 * tag, under HKDF-SHA256(OTP key, "iq-hub/device-key-wrap"), the first five bytes as associated
 * data. The header tells a wrapped file from a plain one (32 bytes) before any key is tried.
 */
import { xchacha20poly1305 } from "@noble/ciphers/chacha.js";
import { randomBytes, utf8ToBytes } from "@noble/ciphers/utils.js";
import { hkdf } from "@noble/hashes/hkdf.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { concatBytes } from "../provisioning/crypto/bytes.js";

const HEADER = new Uint8Array([...utf8ToBytes("IQWK"), 1]);
const NONCE_BYTES = 24;
const TAG_BYTES = 16;

/** The size of a wrapped 32-byte key. */
export const WRAPPED_BYTES = HEADER.length + NONCE_BYTES + 32 + TAG_BYTES;

export function isWrapped(file: Uint8Array): boolean {
  return file.length === WRAPPED_BYTES && HEADER.every((byte, i) => file[i] === byte);
}

export function wrapDeviceKey(deviceKey: Uint8Array, otpKey: Uint8Array): Uint8Array {
  const nonce = randomBytes(NONCE_BYTES);
  return concatBytes(HEADER, nonce, xchacha20poly1305(wrappingKey(otpKey), nonce, HEADER).encrypt(deviceKey));
}

/** The device key, or undefined when `otpKey` is not the one it was wrapped with (another board). */
export function unwrapDeviceKey(file: Uint8Array, otpKey: Uint8Array): Uint8Array | undefined {
  const nonce = file.subarray(HEADER.length, HEADER.length + NONCE_BYTES);
  try {
    return xchacha20poly1305(wrappingKey(otpKey), nonce, HEADER).decrypt(file.subarray(HEADER.length + NONCE_BYTES));
  } catch {
    return undefined;
  }
}

function wrappingKey(otpKey: Uint8Array): Uint8Array {
  return hkdf(sha256, otpKey, undefined, utf8ToBytes("iq-hub/device-key-wrap"), 32);
}
