/**
 * CPace, suite CPACE-X25519-SHA512 (draft-irtf-cfrg-cpace-21, §7, §8.2, Appendix A), in the
 * initiator-responder setting, with key confirmation and the derivation of the per-app keys.
 * It is how an app and the IQ turn a low-entropy secret (the setup secret, a random initial PIN,
 * a second-device Code) into strong keys: a relay that sees every message learns nothing it can
 * test offline, and each run is one guess.
 *
 * Roles: the app is the initiator (it speaks first), the IQ the responder. Each side:
 *
 *     const start = cpaceStart("initiator", { password, ci, sid, ad });  // send start.message
 *     const result = cpaceFinish(start, peerMessage);                    // send result.confirm
 *     cpaceVerifyConfirm(result, peerConfirm);                           // throws if it fails
 *     const keys = deriveAppKeys(result.isk, { iqId, appId });           // only after that
 *
 * - `ci` (channel identifier) should name both parties, initiator first (§10.1.1), e.g.
 *   lvCat(utf8(appId), utf8(iqId)); it is never sent. `sid` must be fresh for every run and
 *   known to both before it starts (e.g. a random nonce the IQ announced); ≥ 16 bytes, as the
 *   draft recommends (§10.9, §10.12). `ad` travels in clear and is authenticated.
 * - A message is lv_cat(Y, AD), which makes transcript_ir(Ya, ADa, Yb, ADb) simply the
 *   initiator's message followed by the responder's (§A.3.4).
 *
 * Key confirmation: the draft leaves the MAC to the application (§10.4) and has no vectors for
 * it. Each side sends HMAC-SHA512 over the whole transcript under a key derived from ISK for its
 * own role (TLS-Finished style). Role-separated keys mean that a message or a tag reflected back
 * to its sender never confirms; a wrong password makes both tags differ.
 */
import { _map_to_curve_elligator2_curve25519 } from "@noble/curves/ed25519.js";
import { invert, mod } from "@noble/curves/abstract/modular.js";
import { bytesToNumberLE, numberToBytesLE } from "@noble/curves/utils.js";
import { createHash, createHmac } from "node:crypto";

import { IqError } from "../../common/errors.js";
import {
  concatBytes,
  equalBytes,
  lengthPrefix,
  lvCat,
  requireBytes,
  requireText,
  splitLv,
  utf8,
  zeroize,
} from "./bytes.js";
import { x25519, x25519Secret, type X25519Secret } from "./curves.js";
import { hkdf } from "./hkdf.js";

/** SHA-512 from OpenSSL (the hashes, HKDF and HMAC here all are: noble's cost a run ~1 ms more). */
const sha512 = (data: Uint8Array): Uint8Array => new Uint8Array(createHash("sha512").update(data).digest());

/*
 * Why X25519 and not ristretto255 (the suite before): an activation computes two generators and
 * four scalar multiplications, one of each per side per message. In JavaScript (@noble/curves)
 * a ristretto255 multiplication cost about 1.5 ms on the reference machine and a whole run 13 ms,
 * most of an activation's budget of 15 ms; X25519's multiplications run in OpenSSL (curves.ts,
 * 0.06 ms each). Only Elligator 2, once per side, is left to noble. Both are suites of the draft;
 * the known-answer tests pin this one to its vectors (Appendix B.1).
 */

/** G_X25519.DSI (§8.2). */
const DSI = utf8("CPace255");
const DSI_ISK = utf8("CPace255_ISK");
/** H.s_in_bytes of SHA-512: its input block size (§6.2). */
const S_IN_BYTES = 128;
const SHARE_BYTES = 32;
/** G.I: the all-zero u-coordinate, the draft's signal for an invalid input (§6.1). */
const IDENTITY = new Uint8Array(SHARE_BYTES);
/** The field of Curve25519. */
const P = 2n ** 255n - 19n;

const MAX_INPUT_BYTES = 1024;
const MAX_AD_BYTES = 256;
const SID_BYTES = { min: 16, max: 64 };

/** generator_string(G.DSI, PRS, CI, sid, H.s_in_bytes) (§8.1, §A.2). Contains the password. */
export function generatorString(prs: Uint8Array, ci: Uint8Array, sid: Uint8Array): Uint8Array {
  // Zero padding fills the first hash block so that its length does not depend on the password.
  const prependedLength = (part: Uint8Array): number => lengthPrefix(part.length).length + part.length;
  const zpad = Math.max(0, S_IN_BYTES - 1 - prependedLength(prs) - prependedLength(DSI));
  return lvCat(DSI, prs, new Uint8Array(zpad), ci, sid);
}

/**
 * G.calculate_generator(H, PRS, CI, sid) for X25519 (§8.2): the first 32 bytes of the hash,
 * decoded as a 255-bit u-coordinate (RFC 7748), mapped with Elligator 2 (RFC 9380); the encoded
 * u-coordinate of the generator.
 */
export function calculateGenerator(prs: Uint8Array, ci: Uint8Array, sid: Uint8Array): Uint8Array {
  const genStr = generatorString(prs, ci, sid);
  const hash = sha512(genStr);
  const encoded = hash.slice(0, SHARE_BYTES);
  encoded[SHARE_BYTES - 1]! &= 0x7f;
  const { xMn, xMd } = _map_to_curve_elligator2_curve25519(mod(bytesToNumberLE(encoded), P));
  const generator = numberToBytesLE(mod(xMn * invert(xMd, P), P), SHARE_BYTES);
  zeroize(genStr, hash, encoded);
  return generator;
}

/** G.scalar_mult(y, g) = X25519(y, g), with y as 32 bytes (the known-answer tests give it). */
export function scalarMult(scalar: Uint8Array, g: Uint8Array): Uint8Array {
  return x25519(scalar, g);
}

/** G.scalar_mult_vfy(y, X): X25519(y, X), or G.I (32 zero bytes) when that is the neutral element (§8.2). */
export function scalarMultVfy(scalar: Uint8Array | X25519Secret, encoded: Uint8Array): Uint8Array {
  try {
    return scalar instanceof Uint8Array ? x25519(scalar, encoded) : scalar.multiply(encoded);
  } catch {
    // curves.ts refuses the all-zero result (a low-order u), which is exactly G.I here.
    return IDENTITY.slice();
  }
}

/** transcript_ir(Ya, ADa, Yb, ADb) = lv_cat(Ya, ADa) || lv_cat(Yb, ADb) (§A.3.4). */
export function transcriptIr(ya: Uint8Array, ada: Uint8Array, yb: Uint8Array, adb: Uint8Array): Uint8Array {
  return lvCat(ya, ada, yb, adb);
}

/** ISK = H.hash(lv_cat(G.DSI || "_ISK", sid, K) || transcript) (§7.2). */
export function computeIsk(sid: Uint8Array, k: Uint8Array, transcript: Uint8Array): Uint8Array {
  const input = concatBytes(lvCat(DSI_ISK, sid, k), transcript);
  const isk = sha512(input);
  zeroize(input);
  return isk;
}

export type CpaceRole = "initiator" | "responder";

export interface CpaceInputs {
  /** PRS: the shared low-entropy secret, as bytes (encode text with utf8 after normalising it). */
  password: Uint8Array;
  /** Channel identifier: both party ids, initiator first. Not sent. */
  ci: Uint8Array;
  /** Fresh session id known to both before the run, 16 to 64 bytes. */
  sid: Uint8Array;
  /** Associated data sent in clear with the share and authenticated by the run. */
  ad?: Uint8Array;
}

/** A started run: send `message` to the peer, then hand the peer's message to cpaceFinish. */
export interface CpaceStart {
  readonly role: CpaceRole;
  readonly message: Uint8Array;
}

/** A finished run: send `confirm`, check the peer's with cpaceVerifyConfirm before using `isk`. */
export interface CpaceResult {
  /** The intermediate session key (64 bytes); feed it to deriveAppKeys, never use it directly. */
  readonly isk: Uint8Array;
  readonly confirm: Uint8Array;
  /** The peer's associated data, authenticated once the confirmation checks out. */
  readonly peerAd: Uint8Array;
}

// Secrets stay in module-private maps, out of reach of logging or serialising the handles, and
// are removed on first use so that a scalar is never used twice (§10.9). The scalar itself never
// leaves OpenSSL (curves.ts x25519Secret).
const pendingRuns = new WeakMap<CpaceStart, { scalar: X25519Secret; sid: Uint8Array }>();
const expectedConfirms = new WeakMap<CpaceResult, Uint8Array>();

/** Start a run: compute the generator from the password and send Y = y·g with the AD. */
export function cpaceStart(role: CpaceRole, inputs: CpaceInputs): CpaceStart {
  if (role !== "initiator" && role !== "responder") {
    throw new IqError("crypto_input_invalid", "role: expected initiator or responder", { argument: "role" });
  }
  const password = requireBytes("password", inputs.password, { min: 1, max: MAX_INPUT_BYTES });
  const ci = requireBytes("ci", inputs.ci, { min: 0, max: MAX_INPUT_BYTES });
  const sid = requireBytes("sid", inputs.sid, SID_BYTES);
  const ad = requireBytes("ad", inputs.ad ?? new Uint8Array(0), { min: 0, max: MAX_AD_BYTES });
  const scalar = x25519Secret();
  const start: CpaceStart = Object.freeze({
    role,
    // y·g is G.I only for a low-order g, which Elligator 2 gives with negligible probability; multiply() would then throw.
    message: lvCat(scalar.multiply(calculateGenerator(password, ci, sid)), ad),
  });
  pendingRuns.set(start, { scalar, sid: sid.slice() });
  return start;
}

function confirmTag(isk: Uint8Array, role: CpaceRole, transcript: Uint8Array): Uint8Array {
  const key = hkdf("sha512", isk, new Uint8Array(0), utf8(`iq-hub/v2/cpace/confirm/${role}`), 64);
  const tag = new Uint8Array(createHmac("sha512", key).update(transcript).digest());
  zeroize(key);
  return tag;
}

/**
 * Finish a run with the peer's message: K = y·Y_peer, aborting (IqError `cpace_invalid_point`)
 * when Y_peer does not decode or K is the neutral element, as §7.2 and §8.3.1 demand; then ISK
 * and both confirmation tags. A start can be finished once (`cpace_state_used`).
 */
export function cpaceFinish(start: CpaceStart, peerMessage: Uint8Array): CpaceResult {
  const pending = pendingRuns.get(start);
  if (pending === undefined) {
    throw new IqError("cpace_state_used", "this CPace run was already finished, or not started with cpaceStart");
  }
  pendingRuns.delete(start);
  const parts = peerMessage instanceof Uint8Array ? splitLv(peerMessage, 2) : undefined;
  const [peerShare, peerAd] = parts ?? [];
  if (peerShare?.length !== SHARE_BYTES || peerAd === undefined || peerAd.length > MAX_AD_BYTES) {
    throw new IqError(
      "cpace_message_malformed",
      "the peer's CPace message is not a 32-byte share with associated data",
    );
  }
  const k = scalarMultVfy(pending.scalar, peerShare);
  if (equalBytes(k, IDENTITY)) {
    throw new IqError(
      "cpace_invalid_point",
      "the peer's CPace share is not a valid group element; the run is aborted",
    );
  }
  const transcript =
    start.role === "initiator" ? concatBytes(start.message, peerMessage) : concatBytes(peerMessage, start.message);
  const isk = computeIsk(pending.sid, k, transcript);
  zeroize(k);
  const peerRole: CpaceRole = start.role === "initiator" ? "responder" : "initiator";
  const result: CpaceResult = Object.freeze({
    isk,
    confirm: confirmTag(isk, start.role, transcript),
    peerAd: peerAd.slice(),
  });
  expectedConfirms.set(result, confirmTag(isk, peerRole, transcript));
  return result;
}

/**
 * Check the peer's confirmation tag in constant time; IqError `cpace_confirm_failed` means a
 * wrong password (or a tampered run): nothing derived from this run may be used.
 */
export function cpaceVerifyConfirm(result: CpaceResult, peerConfirm: Uint8Array): void {
  const expected = expectedConfirms.get(result);
  if (expected === undefined) {
    throw new IqError("crypto_input_invalid", "result: expected what cpaceFinish returned", {
      argument: "result",
    });
  }
  if (!(peerConfirm instanceof Uint8Array) || !equalBytes(expected, peerConfirm)) {
    throw new IqError("cpace_confirm_failed", "CPace key confirmation failed: the secret does not match");
  }
}

/**
 * The tag the peer must send, for a responder that keeps no state between the two messages (the
 * IQ puts it in its sealed pairing ticket and compares with equalBytes when the peer's arrives).
 */
export function cpaceExpectedConfirm(result: CpaceResult): Uint8Array {
  const expected = expectedConfirms.get(result);
  if (expected === undefined) {
    throw new IqError("crypto_input_invalid", "result: expected what cpaceFinish returned", { argument: "result" });
  }
  return expected.slice();
}

/** The two per-app keys an activation produces. */
export interface AppKeys {
  /** AES-256 key of the app's Codes (FF1). */
  codeKey: Uint8Array;
  /** XChaCha20-Poly1305 key of the app's sealed commands. */
  messageKey: Uint8Array;
}

const APP_KEYS_SALT = utf8("iq-hub/v2/app-keys");

/**
 * HKDF-SHA512 from ISK (§10.3: never use ISK directly), bound to the IQ and the app so that the
 * same run can never yield keys for another pair.
 */
export function deriveAppKeys(isk: Uint8Array, context: { iqId: string; appId: string }): AppKeys {
  requireBytes("isk", isk, 64);
  const info = lvCat(
    utf8("code+message keys"),
    requireText("iqId", context.iqId),
    requireText("appId", context.appId),
  );
  const okm = hkdf("sha512", isk, APP_KEYS_SALT, info, 64);
  const keys = { codeKey: okm.slice(0, 32), messageKey: okm.slice(32) };
  zeroize(okm);
  return keys;
}
