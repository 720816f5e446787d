/**
 * Codes: the 5-character, single-use, short-lived proofs of "this app, this PIN, now" that the
 * app shows and the web app relays (stories 4, 5, 7, 9). Only the app and the IQ hold the
 * per-app Code key, so nothing in between can make or read one.
 *
 * ## Construction
 * A Code is FF1 (NIST SP 800-38G, AES-256, radix 32; ff1.ts) over a 25-bit plaintext, written as 5
 * Crockford base32 symbols. The FF1 tweak binds lv_cat(label, purpose, IQ id, app id, lock, time
 * step) through a 13-byte SHA-256 (see TWEAK_BYTES), so a Code is worthless for another purpose,
 * IQ, app, lock or minute.
 *
 * ## Plaintext layout (25 bits, most significant first)
 *
 *     bit  24      seq     which Code of its time step this is (0 or 1)
 *     bits 23..12  check   12 zero bits: redundancy, independent of the PIN
 *     bits 11..0   pinTag  first 12 bits of HMAC-SHA256(tagKey, lv_cat(label, purpose, IQ id,
 *                          app id, counter, PIN)), tagKey = HKDF-SHA256(Code key, label)
 *
 *     counter = time step × 2 + seq
 *
 * Why a PIN verifier and not the PIN: an 8-digit PIN is 26.6 bits and does not fit in 25 bits
 * beside anything else. The IQ knows the user's PIN (sealed at rest) and recomputes the tag, so
 * it still checks the exact PIN; the Code reveals nothing about it to anyone without the key.
 *
 * Why the counter is anchored to time: the app counts up (strictly), the IQ accepts only a
 * counter above the last one it accepted, so the same Code never works twice. An HOTP-style
 * counter window would be used up by Codes made and never typed; here the counter jumps to
 * "step × 2" whenever a new minute starts, so unused Codes never get the two out of step. The
 * price: at most 2 Codes per app per minute, and a Code made earlier is refused after a later
 * one was used (as with HOTP).
 *
 * Validity: 60-second steps; the IQ tries steps now+1, now, now−1, now−2. A Code made in step s
 * works while the IQ's clock is in steps s−1 … s+2, i.e. for 2 to 3 minutes after it was made
 * (DESIGN: "about 3 minutes"). now+1 is there because phones and IQs disagree by a few seconds:
 * without it, every Code made in the last seconds of a minute on a phone slightly ahead of the
 * IQ would be refused.
 *
 * ## False accepts (the arithmetic the constants below are checked against)
 * For one (app key, step), FF1 permutes the 2^25 possible Codes. The IQ accepts a Code under
 * it only if it decrypts to check = 0, the right pinTag for its counter and a counter above the
 * last accepted one: at most codesPerStep = 2 plaintexts, hence at most 2 Codes. A user has at
 * most devicesPerUser = 2 devices (two app keys, both tried) and the IQ tries 4 steps, so at
 * most 2 × 4 × 2 = 16 of the 2^25 Codes are accepted at any moment:
 *
 *     P(random guess accepted) ≤ 16 / 2^25 = 4.77 × 10^-7 ≤ 10^-6
 *     10^6 random guesses: expected false accepts ≤ 0.48
 *
 * The split of the 24 non-seq bits does not change that bound; it decides the two other rates:
 * - "wrong_pin" needs check = 0. A Code from the user's app with a wrong PIN always gets it and
 *   counts towards the user's lockout. Garbage gets it with probability ≤ 8 × 2^-12 ≈ 1/512 per
 *   try (8 decryptions), so spam almost never counts against a user and goes to the per-IQ rate
 *   limiter instead (DESIGN: nobody can lock a user out by spamming).
 * - Someone holding the app's Code key (a stolen, unlocked phone) passes a wrong PIN with
 *   probability 2^-12 per try on top of guessing the PIN; the lockout (10 tries) bounds that to
 *   ≤ 0.25 %. With the key and an old Code, the tag filters PIN candidates offline by 2^12: the
 *   key must live in the phone's keystore.
 *
 * "Expired" is reported as "not_ours": an old Code decrypts to noise under the steps tried, and
 * telling it apart would mean trying more steps, which would raise the false-accept bound.
 */
import { createHash, createHmac, type Hash } from "node:crypto";

import { IqError } from "../../common/errors.js";
import { lvCat, requireBytes, requireText, requireUint, u64be, utf8, zeroize } from "./bytes.js";
import { decodeCrockford, encodeCrockford } from "./crockford.js";
import { Ff1 } from "./ff1.js";
import { hkdf } from "./hkdf.js";

/** Every parameter of the Code scheme. Changing one is checked against the bounds at load. */
export const CODE_PARAMS = Object.freeze({
  symbols: 5,
  radix: 32,
  stepSeconds: 60,
  stepsBack: 2,
  stepsAhead: 1,
  codesPerStep: 2,
  checkBits: 12,
  pinTagBits: 12,
  devicesPerUser: 2,
  minDomain: 1_000_000,
  maxGuessSuccess: 1e-6,
});

const P = CODE_PARAMS;
const DOMAIN = P.radix ** P.symbols;
const SEQ_BITS = Math.log2(P.codesPerStep);
const STEPS_TRIED = P.stepsBack + 1 + P.stepsAhead;

/** The probability that one random guess is accepted for a user with the most devices allowed. */
export const GUESS_SUCCESS_BOUND = (STEPS_TRIED * P.codesPerStep * P.devicesPerUser) / DOMAIN;

// The library only enforces radix^len ≥ 100; these are the properties the design relies on.
if (DOMAIN < P.minDomain) throw new Error(`Code domain ${DOMAIN} is below ${P.minDomain}`);
if (!Number.isInteger(SEQ_BITS) || 2 ** (SEQ_BITS + P.checkBits + P.pinTagBits) !== DOMAIN) {
  throw new Error("Code plaintext fields do not fill the Code domain exactly");
}
if (GUESS_SUCCESS_BOUND > P.maxGuessSuccess) {
  throw new Error(`a random Code guess succeeds with ${GUESS_SUCCESS_BOUND}, above ${P.maxGuessSuccess}`);
}

export const CODE_PURPOSES = ["open", "office_on", "office_off", "owner_reset", "second_device"] as const;
export type CodePurpose = (typeof CODE_PURPOSES)[number];

/** What the app and the IQ both know about a Code before they look at it. */
export interface CodeContext {
  /** The app's 32-byte Code key (deriveAppKeys().codeKey). */
  key: Uint8Array;
  iqId: string;
  appId: string;
  purpose: CodePurpose;
  /**
   * The lock an open or Office Mode Code is for: bound into the tweak, so the cloud cannot point
   * a Code made for one door at another door of the same IQ. Absent for purposes without a lock.
   */
  lock?: string;
}

export type CodeRefusal = "wrong_pin" | "not_ours" | "replay";
export type CodeCheck = { ok: true; counter: number } | { ok: false; reason: CodeRefusal };

// DESIGN: a PIN has up to 8 digits; fewer than 4 is no PIN at all.
const PIN_PATTERN = /^[0-9]{4,8}$/;
const TWEAK_LABEL = utf8("iq-hub/v1/code/tweak");
const TAG_KEY_INFO = utf8("iq-hub/v1/code/pin-tag-key");
const TAG_LABEL = utf8("iq-hub/v1/code/pin-tag");

interface CheckedContext {
  key: Uint8Array;
  /** FF1 under the Code key, expanded once for all the steps a check tries. */
  ff1: Ff1;
  /** lv-ready identity of the Code: purpose, IQ id, app id, and the lock when there is one. */
  binding: Uint8Array[];
  /** SHA-256 over lv_cat(tweak label, binding…), the tweak's input up to the time step: copied per step. */
  tweakHash: Hash;
}

function checkContext(input: CodeContext): CheckedContext {
  if (!(CODE_PURPOSES as readonly unknown[]).includes(input.purpose)) {
    throw new IqError("crypto_input_invalid", `purpose: expected one of ${CODE_PURPOSES.join(", ")}`, {
      argument: "purpose",
    });
  }
  const key = requireBytes("key", input.key, 32);
  const binding = [
    utf8(input.purpose),
    requireText("iqId", input.iqId),
    requireText("appId", input.appId),
    ...(input.lock === undefined ? [] : [requireText("lock", input.lock)]),
  ];
  return { key, ff1: new Ff1(key, P.radix, P.symbols), binding, tweakHash: createHash("sha256").update(lvCat(TWEAK_LABEL, ...binding)) };
}

function checkPin(name: string, pin: unknown): string {
  if (typeof pin !== "string" || !PIN_PATTERN.test(pin)) {
    throw new IqError("crypto_input_invalid", `${name}: expected 4 to 8 digits`, { argument: name });
  }
  return pin;
}

function stepAt(now: number): number {
  return Math.floor(requireUint("now", now) / (P.stepSeconds * 1000));
}

/**
 * The FF1 tweak is 13 bytes: with b = 2 bytes for the 3-digit half, P ‖ Q (16 + 13 + 1 + 2 bytes)
 * is exactly two AES blocks, P and Q, so each of FF1's ten rounds costs one AES block (ff1.ts)
 * instead of eight with the whole 100-byte binding in the tweak. The 13 bytes are a SHA-256 of
 * lv_cat(label, purpose, IQ id, app id, lock, step): two bindings share a tweak with probability
 * 2^-104, so a Code still means nothing for another purpose, IQ, app, lock or minute.
 */
const TWEAK_BYTES = 13;

function tweakFor(ctx: CheckedContext, step: number): Uint8Array {
  return ctx.tweakHash.copy().update(lvCat(u64be(step))).digest().subarray(0, TWEAK_BYTES);
}

function pinTag(ctx: CheckedContext, counter: number, pin: string): number {
  // A separate HMAC key keeps the AES key of FF1 and the MAC key independent.
  const tagKey = hkdf("sha256", ctx.key, new Uint8Array(0), TAG_KEY_INFO, 32);
  const pinBytes = utf8(pin);
  const message = lvCat(TAG_LABEL, ...ctx.binding, u64be(counter), pinBytes);
  const mac = createHmac("sha256", tagKey).update(message).digest();
  const tag = mac.readUInt32BE(0) >>> (32 - P.pinTagBits);
  zeroize(tagKey, pinBytes, message, mac);
  return tag;
}

function toDigits(value: number): number[] {
  return Array.from({ length: P.symbols }, (_, i) => {
    const weight = P.radix ** (P.symbols - 1 - i);
    return Math.floor(value / weight) % P.radix;
  });
}

function fromDigits(digits: readonly number[]): number {
  return digits.reduce((value, digit) => value * P.radix + digit, 0);
}

const CHECK_MASK = 2 ** P.checkBits - 1;
const TAG_MASK = 2 ** P.pinTagBits - 1;

/** Generate (app side): the next Code for this app, and the counter to store as its last one. */
export function generateCode(
  input: CodeContext & { pin: string; lastCounter: number; now: number },
): { code: string; counter: number } {
  const ctx = checkContext(input);
  const pin = checkPin("pin", input.pin);
  const lastCounter = requireUint("lastCounter", input.lastCounter);
  const step = stepAt(input.now);
  const counter = Math.max(lastCounter + 1, step * P.codesPerStep);
  const seq = counter - step * P.codesPerStep;
  if (seq >= P.codesPerStep) {
    throw new IqError(
      "code_rate_limited",
      `this app has made its ${P.codesPerStep} Codes for this minute (or its clock went back); ` +
        "try again in a minute",
    );
  }
  const plaintext = (seq << (P.checkBits + P.pinTagBits)) | pinTag(ctx, counter, pin);
  return { code: encodeCrockford(ctx.ff1.withTweak(tweakFor(ctx, step)).encrypt(toDigits(plaintext))), counter };
}

const RANK: Record<CodeRefusal | "ok", number> = { not_ours: 0, wrong_pin: 1, replay: 2, ok: 3 };
const rankOf = (check: CodeCheck): number => RANK[check.ok ? "ok" : check.reason];

/** One app's verdict on already decoded digits, over every step of the validity window. */
function checkDigits(
  ctx: CheckedContext,
  digits: readonly number[],
  now: number,
  expectedPin: string,
  lastCounter: number,
): CodeCheck {
  const nowStep = stepAt(now);
  const steps: number[] = [];
  for (let step = nowStep + P.stepsAhead; step >= Math.max(0, nowStep - P.stepsBack); step--) steps.push(step);
  // Every step is tried, whatever matches, so the time taken does not tell which one matched; all
  // in one lockstep run (ff1.ts decryptUnder).
  const plaintexts = ctx.ff1.decryptUnder(steps.map((step) => tweakFor(ctx, step)), digits).map(fromDigits);
  let best: CodeCheck = { ok: false, reason: "not_ours" };
  for (const [n, step] of steps.entries()) {
    const plaintext = plaintexts[n]!;
    const check = (plaintext >>> P.pinTagBits) & CHECK_MASK;
    const counter = step * P.codesPerStep + (plaintext >>> (P.checkBits + P.pinTagBits));
    let outcome: CodeCheck;
    if (check !== 0) {
      outcome = { ok: false, reason: "not_ours" };
    } else if ((plaintext & TAG_MASK) !== pinTag(ctx, counter, expectedPin)) {
      outcome = { ok: false, reason: "wrong_pin" };
    } else {
      outcome = counter > lastCounter ? { ok: true, counter } : { ok: false, reason: "replay" };
    }
    if (rankOf(outcome) > rankOf(best)) best = outcome;
  }
  return best;
}

/**
 * Validate (IQ side) a Code against one app. On `ok`, store `counter` as the app's last
 * accepted counter *before* acting: that is what makes the Code single-use. A malformed Code
 * throws IqError `code_malformed`; a well-formed one always gets a verdict.
 */
export function validateCode(
  input: CodeContext & { code: string; now: number; expectedPin: string; lastCounter: number },
): CodeCheck {
  const ctx = checkContext(input);
  const expectedPin = checkPin("expectedPin", input.expectedPin);
  const lastCounter = requireUint("lastCounter", input.lastCounter);
  return checkDigits(ctx, decodeCrockford(input.code, P.symbols), input.now, expectedPin, lastCounter);
}

/** One activated device of a user: its app id, Code key and last accepted Code counter. */
export interface UserDevice {
  appId: string;
  key: Uint8Array;
  lastCounter: number;
}

/**
 * Validate a Code that names a user but not the device (the web app sends user, lock, Code):
 * every device of the user is tried. The false-accept bound above assumes at most
 * CODE_PARAMS.devicesPerUser devices, so more is refused with IqError `too_many_devices`
 * (activation must enforce the same cap).
 */
export function validateCodeForUser(input: {
  iqId: string;
  purpose: CodePurpose;
  lock?: string;
  code: string;
  now: number;
  expectedPin: string;
  devices: readonly UserDevice[];
}): { ok: true; appId: string; counter: number } | { ok: false; reason: CodeRefusal } {
  if (input.devices.length > P.devicesPerUser) {
    throw new IqError(
      "too_many_devices",
      `a user may have at most ${P.devicesPerUser} devices; this one has ${input.devices.length}`,
    );
  }
  const expectedPin = checkPin("expectedPin", input.expectedPin);
  const digits = decodeCrockford(input.code, P.symbols);
  let best: { ok: true; appId: string; counter: number } | { ok: false; reason: CodeRefusal } = {
    ok: false,
    reason: "not_ours",
  };
  for (const device of input.devices) {
    const { iqId, purpose, lock } = input;
    const ctx = checkContext({ key: device.key, iqId, appId: device.appId, purpose, ...(lock === undefined ? {} : { lock }) });
    const lastCounter = requireUint("lastCounter", device.lastCounter);
    const check = checkDigits(ctx, digits, input.now, expectedPin, lastCounter);
    if (rankOf(check) > rankOf(best)) best = check.ok ? { ...check, appId: device.appId } : check;
  }
  return best;
}
