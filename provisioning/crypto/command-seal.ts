/**
 * Sealed commands, protocol v2: every command is sealed under a fresh ephemeral X25519 key
 * against the IQ's static key (identity.ts), and the IQ's answer under a key from the same
 * exchange. Why: in v1 a command was sealed under the app's message key alone, so whoever later
 * stole an app's key file could open every recorded command of that app (PINs included). Now the
 * key of each command also needs either the ephemeral secret, which the app discards as soon as
 * the command is sealed, or the IQ's static secret, which never leaves the IQ: a stolen key file
 * plus a recording opens nothing (forward secrecy for everything already sent).
 *
 * Request (app → IQ), alongside `appId` and `requestId`:
 *
 *     e, epk = fresh X25519 key pair                        (e zeroized after sealing)
 *     dh     = X25519(e, iqStaticPub) = X25519(iqStatic, epk); refused if low order / all zero
 *     okm    = HKDF-SHA512(ikm = dh, salt = appKey,
 *                          info = lv_cat("iq-hub/v2/command-keys", iqId, appId, epk, iqStaticPub), 64)
 *     kReq   = okm[0..32], kRes = okm[32..64]
 *     box    = nonce (24, random) ‖ XChaCha20-Poly1305(kReq, nonce, payload,
 *                                     AD = lv_cat("iq-hub/v2/command", iqId, appId, requestId)) ‖ tag (16)
 *     mac    = HMAC-SHA256(appKey, lv_cat("iq-hub/v2/command-mac", iqId, appId, requestId, epk, box))[0..16]
 *
 * Answer (IQ → app): box = nonce ‖ XChaCha20-Poly1305(kRes, nonce, payload,
 * AD = lv_cat("iq-hub/v2/answer", iqId, appId, requestId)) ‖ tag — only the app that made the
 * request, and the IQ that opened it, hold kRes.
 *
 * The appKey (the app's message key from pairing) is the HKDF salt, so a command also proves it
 * comes from a paired app: someone with only the IQ's static public key cannot seal one. The MAC
 * is a cheap junk filter in front of the X25519: a flood under a known app id costs the IQ one
 * HMAC per message (checkCommandMac), never a scalar multiplication, unless it carries the app's
 * key. It adds no secrecy and is not what authenticates the command; the AEAD is.
 *
 * A random 24-byte nonce never repeats in practice (≈ 2^-97 after 2^48 messages), and every key
 * here is used for one message or a handful anyway. Freshness (challenges) and what the payload
 * means are the caller's business; this module only seals and opens.
 */
import { createHmac, randomBytes } from "node:crypto";
import { XCHACHA_NONCE_BYTES, TAG_BYTES, xchachaOpen, xchachaSeal } from "./aead.js";
import { x25519, x25519Ephemeral, type KeyPair } from "./curves.js";

import { IqError } from "../../common/errors.js";
import { concatBytes, equalBytes, lvCat, requireBytes, requireText, utf8, zeroize } from "./bytes.js";
import { hkdf } from "./hkdf.js";

const KEY_BYTES = 32;
const NONCE_BYTES = XCHACHA_NONCE_BYTES;
/** Length of the truncated HMAC-SHA256 junk filter. */
export const COMMAND_MAC_BYTES = 16;
/** Commands and answers are small; the cap bounds the work a hostile message can cause. */
export const MAX_COMMAND_PAYLOAD = 64 * 1024;
/** Associated data is built here from labels and identifiers; the cap only catches bugs. */
const MAX_AD_BYTES = 4096;
const MIN_BOX_BYTES = NONCE_BYTES + TAG_BYTES;
const MAX_BOX_BYTES = NONCE_BYTES + MAX_COMMAND_PAYLOAD + TAG_BYTES;

const KEYS_LABEL = utf8("iq-hub/v2/command-keys");
const COMMAND_LABEL = utf8("iq-hub/v2/command");
const MAC_LABEL = utf8("iq-hub/v2/command-mac");
const ANSWER_LABEL = utf8("iq-hub/v2/answer");
const PAIR_TRANSPORT_SALT = utf8("iq-hub/v2/pair-transport");

function invalid(): IqError {
  return new IqError("seal_invalid", "the sealed message is damaged, or not sealed for this IQ, app and request");
}

function invalidInput(name: string, expected: string): IqError {
  return new IqError("crypto_input_invalid", `${name}: expected ${expected}`, { argument: name });
}

// ---------------------------------------------------------------------------------------------
// The one AEAD: XChaCha20-Poly1305 with a random nonce, box = nonce (24) ‖ ciphertext ‖ tag (16).

/** Seal `payload` (≤ 64 KiB) under a 32-byte key, binding `ad`. Returns nonce ‖ ciphertext ‖ tag. */
export function sealWithKey(input: { key: Uint8Array; ad: Uint8Array; payload: Uint8Array }): Uint8Array {
  const key = requireBytes("key", input.key, KEY_BYTES);
  const ad = requireBytes("ad", input.ad, { min: 0, max: MAX_AD_BYTES });
  const payload = requireBytes("payload", input.payload, { min: 0, max: MAX_COMMAND_PAYLOAD });
  const nonce = new Uint8Array(randomBytes(NONCE_BYTES));
  return concatBytes(nonce, xchachaSeal(key, nonce, ad, payload));
}

/** Open a box from sealWithKey. IqError `seal_invalid` for anything that does not authenticate. */
export function openWithKey(input: { key: Uint8Array; ad: Uint8Array; box: Uint8Array }): Uint8Array {
  const key = requireBytes("key", input.key, KEY_BYTES);
  const ad = requireBytes("ad", input.ad, { min: 0, max: MAX_AD_BYTES });
  const box = input.box;
  if (!isBox(box)) throw invalid();
  const payload = xchachaOpen(key, box.subarray(0, NONCE_BYTES), ad, box.subarray(NONCE_BYTES));
  if (payload === undefined) throw invalid();
  return payload;
}

function isBox(box: unknown): box is Uint8Array {
  return box instanceof Uint8Array && box.length >= MIN_BOX_BYTES && box.length <= MAX_BOX_BYTES;
}

// ---------------------------------------------------------------------------------------------
// Sealed commands and their answers.

/** The IQ and app a command is between, and the request it is. */
interface Route {
  iqId: string;
  appId: string;
  requestId: string;
}

/** The checked identifiers of a route, as UTF-8. */
interface RouteBytes {
  iqId: Uint8Array;
  appId: Uint8Array;
  requestId: Uint8Array;
}

function routeBytes(route: Route): RouteBytes {
  return {
    iqId: requireText("iqId", route.iqId),
    appId: requireText("appId", route.appId),
    requestId: requireText("requestId", route.requestId),
  };
}

/** kReq ‖ kRes: 64 bytes the caller zeroizes. */
function commandKeys(
  dh: Uint8Array,
  appKey: Uint8Array,
  r: RouteBytes,
  epk: Uint8Array,
  staticPub: Uint8Array,
): Uint8Array {
  return hkdf("sha512", dh, appKey, lvCat(KEYS_LABEL, r.iqId, r.appId, epk, staticPub), 2 * KEY_BYTES);
}

function commandMac(appKey: Uint8Array, r: RouteBytes, epk: Uint8Array, box: Uint8Array): Uint8Array {
  return new Uint8Array(createHmac("sha256", appKey).update(lvCat(MAC_LABEL, r.iqId, r.appId, r.requestId, epk, box)).digest().subarray(0, COMMAND_MAC_BYTES));
}

const commandAd = (r: RouteBytes): Uint8Array => lvCat(COMMAND_LABEL, r.iqId, r.appId, r.requestId);
const answerAd = (r: RouteBytes): Uint8Array => lvCat(ANSWER_LABEL, r.iqId, r.appId, r.requestId);

const ZERO = new Uint8Array(KEY_BYTES);

/**
 * X25519, or undefined for a low-order point or an all-zero result (RFC 7748 §6.1): curves.ts
 * refuses both.
 */
function sharedSecret(secret: Uint8Array, peer: Uint8Array): Uint8Array | undefined {
  let dh: Uint8Array;
  try {
    dh = x25519(secret, peer);
  } catch {
    return undefined;
  }
  return equalBytes(dh, ZERO) ? undefined : dh;
}

/**
 * Seal (app side) a command to the IQ whose static public key is `iqStaticKey`, under the app's
 * 32-byte message key. Send `{ appId, epk, mac, box }` with the request id; keep `answerKey` to
 * open the answer (openAnswer), and drop it after. The ephemeral secret is already gone.
 */
export function sealCommand(input: Route & {
  appKey: Uint8Array;
  iqStaticKey: Uint8Array;
  payload: Uint8Array;
}): { epk: Uint8Array; mac: Uint8Array; box: Uint8Array; answerKey: Uint8Array } {
  const route = routeBytes(input);
  const appKey = requireBytes("appKey", input.appKey, KEY_BYTES);
  const iqStaticKey = requireBytes("iqStaticKey", input.iqStaticKey, KEY_BYTES);
  const payload = requireBytes("payload", input.payload, { min: 0, max: MAX_COMMAND_PAYLOAD });
  let epk: Uint8Array;
  let dh: Uint8Array;
  try {
    // The ephemeral secret stays inside OpenSSL and is dropped with its key object.
    ({ publicKey: epk, shared: dh } = x25519Ephemeral(iqStaticKey));
  } catch {
    throw invalidInput("iqStaticKey", "an X25519 public key not of low order");
  }
  const okm = commandKeys(dh, appKey, route, epk, iqStaticKey);
  const kReq = okm.slice(0, KEY_BYTES);
  const answerKey = okm.slice(KEY_BYTES);
  zeroize(dh, okm);
  try {
    const box = sealWithKey({ key: kReq, ad: commandAd(route), payload });
    return { epk, mac: commandMac(appKey, route, epk, box), box, answerKey };
  } finally {
    zeroize(kReq);
  }
}

/**
 * The IQ's first, cheap check of a sealed command under the app's key: true only if `mac` is
 * the right 16 bytes for this IQ, app, request, epk and box (compared in constant time). False
 * for anything malformed. One HMAC, no X25519: run it before openCommand, and drop what fails.
 */
export function checkCommandMac(input: Route & {
  appKey: Uint8Array;
  epk: Uint8Array;
  box: Uint8Array;
  mac: Uint8Array;
}): boolean {
  const appKey = requireBytes("appKey", input.appKey, KEY_BYTES);
  const iqId = requireText("iqId", input.iqId);
  const appId = requireText("appId", input.appId);
  const { epk, box, mac, requestId } = input;
  if (!(epk instanceof Uint8Array) || epk.length !== KEY_BYTES) return false;
  if (!(mac instanceof Uint8Array) || mac.length !== COMMAND_MAC_BYTES) return false;
  if (!isBox(box)) return false;
  let requestIdBytes: Uint8Array;
  try {
    requestIdBytes = requireText("requestId", requestId);
  } catch {
    return false;
  }
  return equalBytes(commandMac(appKey, { iqId, appId, requestId: requestIdBytes }, epk, box), mac);
}

/**
 * Open (IQ side) a sealed command with the IQ's static secret and the app's message key. Returns
 * the payload and the key to seal the answer with (sealAnswer). IqError `seal_invalid` for
 * anything that does not authenticate — wrong lengths, a low-order epk, a failed AEAD — one code
 * whatever went wrong. The IQ's own arguments (ids, keys) are checked at the door.
 */
export function openCommand(input: Route & {
  appKey: Uint8Array;
  /** The IQ's static key pair: its public half goes into the key derivation as the app used it. */
  iqStatic: KeyPair;
  epk: Uint8Array;
  box: Uint8Array;
}): { payload: Uint8Array; answerKey: Uint8Array } {
  const iqId = requireText("iqId", input.iqId);
  const appId = requireText("appId", input.appId);
  const appKey = requireBytes("appKey", input.appKey, KEY_BYTES);
  const iqStaticSecret = requireBytes("iqStatic.secretKey", input.iqStatic.secretKey, KEY_BYTES);
  const iqStaticPublic = requireBytes("iqStatic.publicKey", input.iqStatic.publicKey, KEY_BYTES);
  const { epk, box } = input;
  let requestId: Uint8Array;
  try {
    requestId = requireText("requestId", input.requestId);
  } catch {
    throw invalid();
  }
  if (!(epk instanceof Uint8Array) || epk.length !== KEY_BYTES || !isBox(box)) throw invalid();
  const route = { iqId, appId, requestId };
  const dh = sharedSecret(iqStaticSecret, epk);
  if (dh === undefined) throw invalid();
  const okm = commandKeys(dh, appKey, route, epk, iqStaticPublic);
  const kReq = okm.slice(0, KEY_BYTES);
  const answerKey = okm.slice(KEY_BYTES);
  zeroize(dh, okm);
  try {
    return { payload: openWithKey({ key: kReq, ad: commandAd(route), box }), answerKey };
  } catch (error) {
    zeroize(answerKey);
    throw error;
  } finally {
    zeroize(kReq);
  }
}

/** Seal (IQ side) the answer to a request under the answerKey openCommand gave. */
export function sealAnswer(input: Route & { answerKey: Uint8Array; payload: Uint8Array }): Uint8Array {
  return sealWithKey({ key: input.answerKey, ad: answerAd(routeBytes(input)), payload: input.payload });
}

/** Open (app side) the answer to a request under the answerKey sealCommand gave. IqError `seal_invalid`. */
export function openAnswer(input: Route & { answerKey: Uint8Array; box: Uint8Array }): Uint8Array {
  return openWithKey({ key: input.answerKey, ad: answerAd(routeBytes(input)), box: input.box });
}

// ---------------------------------------------------------------------------------------------
// Pairing transport.

/**
 * The two transport keys of a v2 pairing, from the CPace ISK (32 to 64 bytes): `toIq` seals what
 * the app sends in pair.finish, `toApp` the IQ's pairing result. One direction per key, so a box
 * reflected back to its sender never opens. Never stored: derive, use with sealWithKey /
 * openWithKey, zeroize.
 *
 *     okm = HKDF-SHA512(ikm = ISK, salt = "iq-hub/v2/pair-transport", info = lv_cat(iqId, appId), 64)
 *     toIq = okm[0..32], toApp = okm[32..64]
 */
export function pairTransportKeys(
  isk: Uint8Array,
  ids: { iqId: string; appId: string },
): { toIq: Uint8Array; toApp: Uint8Array } {
  const ikm = requireBytes("isk", isk, { min: 32, max: 64 });
  const info = lvCat(requireText("iqId", ids.iqId), requireText("appId", ids.appId));
  const okm = hkdf("sha512", ikm, PAIR_TRANSPORT_SALT, info, 2 * KEY_BYTES);
  const keys = { toIq: okm.slice(0, KEY_BYTES), toApp: okm.slice(KEY_BYTES) };
  zeroize(okm);
  return keys;
}
