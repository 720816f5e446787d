/**
 * A million random guesses against a user with two devices, at the worst moment: both devices'
 * counters are below every step of the validity window, so every (device, step, seq) slot is
 * open: 2 devices × 4 steps × 2 Codes per step = 16 accepted Codes at most.
 *
 * Running 10^6 guesses through validateCodeForUser would take 8 × 10^6 FF1 decryptions (about
 * 5 minutes at ~26 000 decryptions/s on one core). FF1 is a permutation per (key, step), so the
 * Codes the IQ accepts are exactly the encryptions of the acceptable plaintexts, which
 * generateCode produces. The test therefore
 *   1. builds that set with generateCode and checks the IQ accepts each member,
 *   2. checks on a few thousand random guesses that validateCodeForUser accepts a guess exactly
 *      when it is in the set (the set is the IQ's verdict, not a model of it),
 *   3. runs the 10^6 guesses against the set.
 */
import { describe, expect, it } from "vitest";

import { CODE_PARAMS, generateCode, validateCodeForUser } from "../../../provisioning/crypto/code.js";
import { encodeCrockford } from "../../../provisioning/crypto/crockford.js";

const MINUTE = CODE_PARAMS.stepSeconds * 1000;
const NOW = 1_700_000_000_000;
const STEP = Math.floor(NOW / MINUTE);
const PIN = "604913";
const DOMAIN = CODE_PARAMS.radix ** CODE_PARAMS.symbols;
// Below the first counter of the oldest step the IQ still tries.
const LAST_COUNTER = (STEP - CODE_PARAMS.stepsBack) * CODE_PARAMS.codesPerStep - 1;

const devices = [
  { appId: "phone", key: Uint8Array.from({ length: 32 }, (_, i) => 3 * i + 1), lastCounter: LAST_COUNTER },
  { appId: "tablet", key: Uint8Array.from({ length: 32 }, (_, i) => 255 - i), lastCounter: LAST_COUNTER },
];

/** A reproducible stream of uniformly random Codes (xorshift32, 5 bits per symbol). */
function guesses(seed: number): () => string {
  let x = seed >>> 0;
  const symbol = (): number => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x >>> 27;
  };
  return () => encodeCrockford(Array.from({ length: CODE_PARAMS.symbols }, symbol));
}

const validate = (code: string): boolean =>
  validateCodeForUser({ iqId: "iq-0001", purpose: "open", code, now: NOW, expectedPin: PIN, devices }).ok;

function acceptedCodes(): Set<string> {
  const accepted = new Set<string>();
  for (const device of devices) {
    for (let step = STEP - CODE_PARAMS.stepsBack; step <= STEP + CODE_PARAMS.stepsAhead; step++) {
      for (let seq = 0; seq < CODE_PARAMS.codesPerStep; seq++) {
        const lastCounter = step * CODE_PARAMS.codesPerStep - 1 + seq;
        const now = step * MINUTE;
        const { code } = generateCode({ ...device, iqId: "iq-0001", purpose: "open", pin: PIN, lastCounter, now });
        accepted.add(code);
      }
    }
  }
  return accepted;
}

describe("guessing Codes", () => {
  const accepted = acceptedCodes();

  it("at most 16 of the 2^25 Codes are accepted at any moment, and the IQ accepts each of them", () => {
    expect(accepted.size).toBeLessThanOrEqual(16);
    expect(accepted.size / DOMAIN).toBeLessThanOrEqual(1e-6);
    for (const code of accepted) expect(validate(code)).toBe(true);
  });

  it("the IQ accepts a random guess exactly when it is one of those Codes", () => {
    const next = guesses(0x1badc0de);
    for (let i = 0; i < 2000; i++) {
      const guess = next();
      expect(validate(guess)).toBe(accepted.has(guess));
    }
  });

  it("10^6 random guesses: expected false accepts ≤ 1, observed within the Poisson tail", () => {
    const tries = 1_000_000;
    const next = guesses(0xc0ffee);
    let hits = 0;
    for (let i = 0; i < tries; i++) if (accepted.has(next())) hits++;
    const expected = (tries * accepted.size) / DOMAIN;
    expect(expected).toBeLessThanOrEqual(1);
    // With a mean ≤ 0.48, four or more hits happen for fewer than 1 seed in 500.
    expect(hits).toBeLessThanOrEqual(3);
  });
});
