/**
 * The parts of activation (claim, first activation, second device) that the IQ and the app must
 * compute identically: the CPace channel identifier, the password for each kind, and encodings.
 * The run itself is provisioning/crypto/cpace.ts; the app is the initiator, the IQ the responder.
 */
import { IqError } from "../common/errors.js";
import { lvCat, utf8 } from "./crypto/bytes.js";
import { generateCode, CODE_PARAMS } from "./crypto/code.js";
import { decodeCrockford, encodeCrockford } from "./crypto/crockford.js";

export type PairKind = "claim" | "activate" | "duplicate";

/** Setup secrets are 12 Crockford symbols (60 bits), shown as XXXX-XXXX-XXXX. */
export const SETUP_SECRET_SYMBOLS = 12;

/** The CPace channel identifier: binds the run to this kind, IQ, app and user. */
export function pairingCi(kind: PairKind, iqId: string, appId: string, userId = ""): Uint8Array {
  return lvCat(utf8("iq-hub/v2/pair"), utf8(kind), utf8(iqId), utf8(appId), utf8(userId));
}

/**
 * The associated data of a pairing box: `pair.finish` (app → IQ, under the transport key toIq)
 * or `pair.result` (IQ → app, under toApp). Both ends build it here, so they cannot drift.
 */
export function pairBoxAd(iqId: string, appId: string, purpose: "pair.finish" | "pair.result"): Uint8Array {
  return lvCat(utf8("iq-hub/v2/pair-box"), utf8(iqId), utf8(appId), utf8(purpose));
}

/** Canonical form of a setup secret as typed (any case, dashes, O/I/L look-alikes). */
export function normalizeSetupSecret(typed: string): string {
  try {
    return encodeCrockford(decodeCrockford(typed, SETUP_SECRET_SYMBOLS));
  } catch {
    throw new IqError("setup_secret_malformed", "a setup secret looks like XXXX-XXXX-XXXX (12 letters and digits, on the IQ)");
  }
}

export function formatSetupSecret(secret: string): string {
  return secret.match(/.{1,4}/g)!.join("-");
}

/**
 * The password of each kind of run. A second device needs the Code *and* the PIN: the Code alone
 * (read over a shoulder, say) must never be enough to activate a device.
 */
export function pairingPassword(input: { kind: "claim"; setupSecret: string } | { kind: "activate"; pin: string } | { kind: "duplicate"; code: string; pin: string }): Uint8Array {
  switch (input.kind) {
    case "claim":
      return utf8(`setup:${normalizeSetupSecret(input.setupSecret)}`);
    case "activate":
      return utf8(`pin:${input.pin}`);
    case "duplicate":
      return utf8(`code:${encodeCrockford(decodeCrockford(input.code, CODE_PARAMS.symbols))}:pin:${input.pin}`);
  }
}

/**
 * The second-device Code the first device made for `counter`. The IQ recomputes it (it knows the
 * first device's Code key and the PIN) instead of receiving it, so the Code never crosses the cloud.
 */
export function secondDeviceCode(input: { key: Uint8Array; iqId: string; appId: string; pin: string; counter: number }): string {
  const step = Math.floor(input.counter / CODE_PARAMS.codesPerStep);
  const made = generateCode({
    key: input.key,
    iqId: input.iqId,
    appId: input.appId,
    purpose: "second_device",
    pin: input.pin,
    lastCounter: input.counter - 1,
    now: step * CODE_PARAMS.stepSeconds * 1000,
  });
  if (made.counter !== input.counter) throw new IqError("invite_invalid", "that Code counter cannot be reproduced");
  return made.code;
}

export const toB64u = (bytes: Uint8Array): string => Buffer.from(bytes).toString("base64url");

export function fromB64u(text: string, name = "value"): Uint8Array {
  if (!/^[A-Za-z0-9_-]*$/.test(text)) throw new IqError("request_malformed", `${name} is not base64url`);
  return new Uint8Array(Buffer.from(text, "base64url"));
}
