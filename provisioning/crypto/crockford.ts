/**
 * Crockford base32 for the 5-character Codes people read aloud and type: 0-9 A-Z without
 * I L O U, so that no two symbols look alike and no accidental words appear. Reading forgives
 * what people do: any case, O for 0, I or L for 1, hyphens and spaces anywhere.
 * https://www.crockford.com/base32.html (the optional check symbol is not used: FF1 redundancy
 * inside the Code does that job, see code.ts).
 */
import { IqError } from "../../common/errors.js";

export const CROCKFORD_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

const VALUES: ReadonlyMap<string, number> = new Map([
  ...[...CROCKFORD_ALPHABET].map((symbol, value): [string, number] => [symbol, value]),
  ["O", 0],
  ["I", 1],
  ["L", 1],
]);

// Separators people type or paste; anything else that is not a symbol is refused by name.
const SEPARATOR = /[-\s]/;

/** Digits 0..31, most significant first, as upper-case Crockford symbols. */
export function encodeCrockford(digits: readonly number[]): string {
  return digits
    .map((digit) => {
      const symbol = Number.isInteger(digit) ? CROCKFORD_ALPHABET[digit] : undefined;
      if (symbol === undefined) {
        throw new IqError("crypto_input_invalid", "digits: expected integers 0..31", { digit });
      }
      return symbol;
    })
    .join("");
}

function malformed(message: string, details?: Record<string, unknown>): IqError {
  return new IqError("code_malformed", message, details);
}

/**
 * The `length` digits that `text` spells, or IqError `code_malformed`. The message names the
 * offending character and its position, never the whole text: Codes stay out of logs.
 */
export function decodeCrockford(text: unknown, length: number): number[] {
  if (typeof text !== "string") throw malformed("a Code must be text");
  // Bounded before the loop: the text comes from the network.
  if (text.length > 4 * length) throw malformed(`a Code has ${length} characters; this is far longer`);
  const digits: number[] = [];
  [...text].forEach((character, position) => {
    if (SEPARATOR.test(character)) return;
    const value = VALUES.get(character.toUpperCase());
    if (value === undefined) {
      throw malformed(
        `a Code cannot contain ${JSON.stringify(character)} (position ${position + 1}); ` +
          `Codes use the digits 0-9 and the letters A-Z except U`,
        { character, position: position + 1 },
      );
    }
    digits.push(value);
  });
  if (digits.length !== length) {
    throw malformed(`a Code has ${length} characters; this has ${digits.length}`, {
      length: digits.length,
    });
  }
  return digits;
}
