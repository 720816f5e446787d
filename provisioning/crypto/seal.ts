/**
 * Sealed commands (story 6): the app sends a command and the PIN under its per-app message key
 * with XChaCha20-Poly1305, over MQTT through the cloud or over BLE. The PIN and the command
 * travel only inside; the associated data binds the IQ, the app, the purpose and a counter that
 * must strictly increase, so a sealed command cannot be replayed, redirected to another IQ or app,
 * or turned into another kind of command.
 *
 * Envelope (bytes):
 *
 *     version (1) = 1 || counter (8, big-endian) || nonce (24, random) || ciphertext || tag (16)
 *     AD = lv_cat("iq-hub/v1/seal", IQ id, app id, purpose, counter as 8 bytes)
 *
 * A random 24-byte nonce never repeats in practice (collision chance ≈ 2^-97 after 2^48
 * messages), so the app needs no nonce state; the counter is carried in clear because the IQ
 * needs it to rebuild the AD.
 * This counter is the app's sealed-command counter, separate from its Code counter.
 */
import { xchacha20poly1305 } from "@noble/ciphers/chacha.js";
import { randomBytes } from "@noble/ciphers/utils.js";

import { IqError } from "../../common/errors.js";
import { concatBytes, lvCat, requireBytes, requireText, requireUint, u64be, utf8 } from "./bytes.js";

const VERSION = 1;
const NONCE_BYTES = 24;
const TAG_BYTES = 16;
const HEADER_BYTES = 1 + 8 + NONCE_BYTES;
/** Commands are small; the cap bounds the work a hostile message can cause. */
export const MAX_SEALED_PAYLOAD = 64 * 1024;
const AD_LABEL = utf8("iq-hub/v1/seal");

/** Who may open a sealed command, and what for. */
export interface SealContext {
  /** The app's 32-byte message key (deriveAppKeys().messageKey). */
  key: Uint8Array;
  iqId: string;
  appId: string;
  /** What the command is for (e.g. "open", "office_on"); a sealed command opens only for it. */
  purpose: string;
}

function associatedData(context: SealContext, counter: number): Uint8Array {
  return lvCat(
    AD_LABEL,
    requireText("iqId", context.iqId),
    requireText("appId", context.appId),
    requireText("purpose", context.purpose),
    u64be(counter),
  );
}

/** Seal (app side) `payload` as the app's command number `counter` (> every earlier one). */
export function seal(input: SealContext & { counter: number; payload: Uint8Array }): Uint8Array {
  const key = requireBytes("key", input.key, 32);
  const counter = requireUint("counter", input.counter);
  const payload = requireBytes("payload", input.payload, { min: 0, max: MAX_SEALED_PAYLOAD });
  const nonce = randomBytes(NONCE_BYTES);
  const ciphertext = xchacha20poly1305(key, nonce, associatedData(input, counter)).encrypt(payload);
  return concatBytes(Uint8Array.of(VERSION), u64be(counter), nonce, ciphertext);
}

function invalid(): IqError {
  return new IqError("seal_invalid", "the sealed command is damaged, or not sealed for this IQ, app and purpose");
}

/**
 * Open (IQ side) a sealed command from this app. IqError `seal_invalid` for anything that does not
 * authenticate (one code whatever went wrong: the reason would only help a forger); IqError
 * `seal_replay` for an authentic command whose counter is not above `lastCounter`. On success,
 * store `counter` as the app's last one before acting on `payload`.
 */
export function open(
  input: SealContext & { sealed: Uint8Array; lastCounter: number },
): { counter: number; payload: Uint8Array } {
  const key = requireBytes("key", input.key, 32);
  const lastCounter = requireUint("lastCounter", input.lastCounter);
  const sealed = input.sealed;
  if (
    !(sealed instanceof Uint8Array) ||
    sealed.length < HEADER_BYTES + TAG_BYTES ||
    sealed.length > HEADER_BYTES + MAX_SEALED_PAYLOAD + TAG_BYTES ||
    sealed[0] !== VERSION
  ) {
    throw invalid();
  }
  const counter = Number(new DataView(sealed.buffer, sealed.byteOffset + 1, 8).getBigUint64(0));
  if (!Number.isSafeInteger(counter)) throw invalid();
  const ad = associatedData(input, counter);
  let payload: Uint8Array;
  try {
    const nonce = sealed.subarray(1 + 8, HEADER_BYTES);
    payload = xchacha20poly1305(key, nonce, ad).decrypt(sealed.subarray(HEADER_BYTES));
  } catch {
    throw invalid();
  }
  if (counter <= lastCounter) {
    throw new IqError(
      "seal_replay",
      "this sealed command was already used, or is older than the last one accepted",
      { counter, lastCounter },
    );
  }
  return { counter, payload };
}
