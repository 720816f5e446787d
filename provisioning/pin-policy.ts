/**
 * Which PINs a person may choose, and the random PINs the IQ hands out to new users. Shared by
 * the IQ (which has the last word) and the companion app (which says no before sending).
 *
 * A PIN is 4 to 8 ASCII digits, as in the Matter Door Lock cluster's MinPINCodeLength /
 * MaxPINCodeLength. "Trivial" PINs are refused (ETSI EN 303 645 section 5.1: no guessable
 * credentials). The lockout gives an attacker only a handful of guesses, and those guesses are
 * spent on the most popular PINs first, so the policy removes exactly those, by three rules:
 *
 * 1. Repeats: the PIN is one block of digits said again and again — 0000, 1212, 6969, 12121,
 *    123123, 12341234 (a block of at most half the PIN's length).
 * 2. Straight runs: each digit is one more, or one less, than the one before, around the keypad
 *    row 1234567890 — 1234, 4321, 2345, 987654, 7890, 0987.
 * 3. A short list of popular PINs that fit neither rule (COMMON_PINS, sources beside it).
 *
 * Dates and years (1984, 0107) are not refused: they are popular but number in the thousands;
 * refusing them would make the rule hard to explain, and the lockout covers the rest.
 */
import { randomInt } from "node:crypto";
import { IqError } from "../common/errors.js";

export const PIN_LENGTH = { min: 4, max: 8 } as const;

/**
 * Popular PINs caught by neither rule above. From the 20 most common 4-digit PINs in
 * DataGenetics' analysis of 3.4 million leaked PINs (N. Berry, "PIN analysis", 2012), minus the
 * repeats and runs: 1004, 2000, 2001, 1122. Plus 2580, the keypad's middle column, just below
 * that top 20, and its reverse 0852. And the 6-digit forms of the same habits (pairs, mirror,
 * keypad rows, columns and diagonals) near the top of the 6-digit PIN lists in Wang et al.,
 * "Understanding Human-Chosen PINs: Characteristics, Distribution and Security" (ACM AsiaCCS 2017).
 */
const COMMON_PINS: ReadonlySet<string> = new Set([
  "1004",
  "2000",
  "2001",
  "1122",
  "2580",
  "0852",
  "112233",
  "123321",
  "147258",
  "159753",
  "789456",
]);

export type TrivialRule = "repeat" | "run" | "common";

const PIN_FORMAT = new RegExp(`^[0-9]{${PIN_LENGTH.min},${PIN_LENGTH.max}}$`);

/** Refuses a PIN a person may not choose; returns nothing when the PIN is fine. */
export function checkPin(pin: string): void {
  if (typeof pin !== "string" || !PIN_FORMAT.test(pin)) {
    throw new IqError("pin_invalid", `a PIN is ${PIN_LENGTH.min} to ${PIN_LENGTH.max} digits (0-9)`);
  }
  const rule = trivialRule(pin);
  // The message never repeats the PIN: errors travel back over MQTT and end up in logs.
  if (rule !== undefined) throw new IqError("pin_trivial", TRIVIAL_MESSAGES[rule], { rule });
}

const TRIVIAL_MESSAGES: Record<TrivialRule, string> = {
  repeat: "this PIN repeats the same digits (like 0000 or 1212) and is easy to guess: choose another",
  run: "this PIN is a straight run of digits (like 1234 or 4321) and is easy to guess: choose another",
  common: "this PIN is one of the most popular PINs and is easy to guess: choose another",
};

/** A uniformly random PIN of `length` digits that the policy accepts. */
export function randomPin(length = 6): string {
  if (!Number.isInteger(length) || length < PIN_LENGTH.min || length > PIN_LENGTH.max) {
    throw new RangeError(`PIN length must be an integer from ${PIN_LENGTH.min} to ${PIN_LENGTH.max}, got ${length}`);
  }
  // Rejection sampling keeps the accepted PINs uniform; at 4 digits about 1 % are refused.
  for (;;) {
    const pin = String(randomInt(10 ** length)).padStart(length, "0");
    if (trivialRule(pin) === undefined) return pin;
  }
}

/** `pin` is already known to be 4 to 8 digits. */
function trivialRule(pin: string): TrivialRule | undefined {
  if (isRepeat(pin)) return "repeat";
  if (isRun(pin, 1) || isRun(pin, -1)) return "run";
  if (COMMON_PINS.has(pin)) return "common";
  return undefined;
}

/** A string equal to itself shifted by `block` characters is that block repeated. */
function isRepeat(pin: string): boolean {
  for (let block = 1; block <= pin.length / 2; block++) {
    if (pin.slice(block) === pin.slice(0, -block)) return true;
  }
  return false;
}

/** Each digit is `step` more than the one before, modulo 10 (so 7890 and 0987 count). */
function isRun(pin: string, step: 1 | -1): boolean {
  for (let i = 1; i < pin.length; i++) {
    if ((pin.charCodeAt(i - 1) - 48 + step + 10) % 10 !== pin.charCodeAt(i) - 48) return false;
  }
  return true;
}
