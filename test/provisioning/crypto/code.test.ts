import { FF1 } from "@noble/ciphers/ff1.js";
import { hkdf } from "@noble/hashes/hkdf.js";
import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { concatBytes, hexToBytes } from "@noble/hashes/utils.js";
import fc from "fast-check";
import { describe, expect, it } from "vitest";

import {
  CODE_PARAMS,
  CODE_PURPOSES,
  GUESS_SUCCESS_BOUND,
  generateCode,
  validateCode,
  validateCodeForUser,
  type CodeContext,
} from "../../../provisioning/crypto/code.js";

const MINUTE = 60_000;
const NOW = 1_700_000_000_000;
const STEP = Math.floor(NOW / MINUTE);

describe("FF1 known answers (NIST SP 800-38G samples 7-9, AES-256, the FF1 the Codes use)", () => {
  const key = hexToBytes("2B7E151628AED2A6ABF7158809CF4F3CEF4359D8D580AA4F7F036D6F04FC6A94");
  const digits = (text: string, radix: number): number[] => [...text].map((c) => parseInt(c, radix));
  const samples = [
    { name: "sample 7, radix 10, no tweak", radix: 10, tweak: "", pt: "0123456789", ct: "6657667009" },
    { name: "sample 8, radix 10", radix: 10, tweak: "39383736353433323130", pt: "0123456789", ct: "1001623463" },
    {
      name: "sample 9, radix 36",
      radix: 36,
      tweak: "3737373770717273373737",
      pt: "0123456789abcdefghi",
      ct: "xs8a0azh2avyalyzuwd",
    },
  ];

  it.each(samples)("$name encrypts and decrypts as published", ({ radix, tweak, pt, ct }) => {
    const ff1 = FF1(radix, key, hexToBytes(tweak));
    expect(ff1.encrypt(digits(pt, radix))).toEqual(digits(ct, radix));
    expect(ff1.decrypt(digits(ct, radix))).toEqual(digits(pt, radix));
  });
});

const context = (overrides: Partial<CodeContext> = {}): CodeContext => ({
  key: Uint8Array.from({ length: 32 }, (_, i) => i),
  iqId: "iq-0001",
  appId: "app-0001",
  purpose: "open",
  ...overrides,
});

describe("Code known answers (this scheme, radix 32; regression vectors, not from a standard)", () => {
  it.each([
    { purpose: "open" as const, lastCounter: 0, code: "6R5T5", counter: 2 * STEP },
    { purpose: "open" as const, lastCounter: 2 * STEP, code: "VPCNB", counter: 2 * STEP + 1 },
    { purpose: "office_on" as const, lastCounter: 0, code: "595E5", counter: 2 * STEP },
  ])("$purpose after counter $lastCounter is $code", ({ purpose, lastCounter, code, counter }) => {
    const made = generateCode({ ...context({ purpose }), pin: "482916", lastCounter, now: NOW });
    expect(made).toEqual({ code, counter });
    expect(validateCode({ ...context({ purpose }), code, now: NOW, expectedPin: "482916", lastCounter })).toEqual({
      ok: true,
      counter,
    });
  });
});

describe("the Code construction as documented in code.ts, rebuilt from @noble's FF1, HKDF and HMAC", () => {
  it("gives the first known answer", () => {
    const lv = (...parts: Uint8Array[]): Uint8Array => concatBytes(...parts.flatMap((part) => [Uint8Array.of(part.length), part]));
    const text = (value: string): Uint8Array => new TextEncoder().encode(value);
    const be64 = (value: number): Uint8Array => {
      const out = new Uint8Array(8);
      new DataView(out.buffer).setBigUint64(0, BigInt(value));
      return out;
    };
    const { key, iqId, appId } = context();
    const binding = [text("open"), text(iqId), text(appId)];
    const counter = 2 * STEP;
    const tagKey = hkdf(sha256, key, undefined, text("iq-hub/v1/code/pin-tag-key"), 32);
    const mac = hmac(sha256, tagKey, lv(text("iq-hub/v1/code/pin-tag"), ...binding, be64(counter), text("482916")));
    const plaintext = (0 << 24) | (0 << 12) | (((mac[0]! << 8) | mac[1]!) >>> 4);
    const tweak = sha256(lv(text("iq-hub/v1/code/tweak"), ...binding, be64(STEP))).slice(0, 13);
    const digits = Array.from({ length: 5 }, (_, i) => Math.floor(plaintext / 32 ** (4 - i)) % 32);
    const code = FF1(32, key, tweak)
      .encrypt(digits)
      .map((digit) => "0123456789ABCDEFGHJKMNPQRSTVWXYZ"[digit])
      .join("");
    expect(code).toBe("6R5T5");
  });
});

describe("Code parameters", () => {
  it("keep a random guess below 10^-6 for a user with two devices", () => {
    const stepsTried = CODE_PARAMS.stepsBack + 1 + CODE_PARAMS.stepsAhead;
    expect(CODE_PARAMS.radix ** CODE_PARAMS.symbols).toBeGreaterThanOrEqual(1_000_000);
    expect(GUESS_SUCCESS_BOUND).toBe((stepsTried * CODE_PARAMS.codesPerStep * CODE_PARAMS.devicesPerUser) / 2 ** 25);
    expect(GUESS_SUCCESS_BOUND).toBeLessThanOrEqual(1e-6);
  });
});

const arbitraryCase = fc.record({
  key: fc.uint8Array({ minLength: 32, maxLength: 32 }),
  pin: fc.stringMatching(/^[0-9]{4,8}$/),
  purpose: fc.constantFrom(...CODE_PURPOSES),
  now: fc.integer({ min: 1_600_000_000_000, max: 2_500_000_000_000 }),
});
// fast-check runs are seeded so that the few properties that are only overwhelmingly likely
// (a wrong PIN passes with probability 2^-12, see code.ts) cannot flake.
const runs = { numRuns: 60, seed: 20_250_101 };

describe("Codes", () => {
  it("every PIN round-trips through a Code, for every purpose", () => {
    fc.assert(
      fc.property(arbitraryCase, ({ key, pin, purpose, now }) => {
        const ctx = context({ key, purpose });
        const { code, counter } = generateCode({ ...ctx, pin, lastCounter: 0, now });
        expect(validateCode({ ...ctx, code, now, expectedPin: pin, lastCounter: 0 })).toEqual({ ok: true, counter });
      }),
      runs,
    );
  });

  it("a Code works once, and never again", () => {
    fc.assert(
      fc.property(arbitraryCase, ({ key, pin, purpose, now }) => {
        const ctx = context({ key, purpose });
        const { code } = generateCode({ ...ctx, pin, lastCounter: 0, now });
        const first = validateCode({ ...ctx, code, now, expectedPin: pin, lastCounter: 0 });
        if (!first.ok) throw new Error("a fresh Code was refused");
        const again = validateCode({ ...ctx, code, now: now + 1000, expectedPin: pin, lastCounter: first.counter });
        expect(again).toEqual({ ok: false, reason: "replay" });
      }),
      runs,
    );
  });

  it("an older Code is refused once a newer one was used", () => {
    const ctx = context();
    const older = generateCode({ ...ctx, pin: "482916", lastCounter: 0, now: NOW });
    const newer = generateCode({ ...ctx, pin: "482916", lastCounter: older.counter, now: NOW + MINUTE });
    const used = validateCode({ ...ctx, code: newer.code, now: NOW + MINUTE, expectedPin: "482916", lastCounter: 0 });
    expect(used).toEqual({ ok: true, counter: newer.counter });
    expect(
      validateCode({ ...ctx, code: older.code, now: NOW + MINUTE, expectedPin: "482916", lastCounter: newer.counter }),
    ).toEqual({ ok: false, reason: "replay" });
  });

  it("a Code for another IQ, app or purpose is refused", () => {
    fc.assert(
      fc.property(
        arbitraryCase,
        fc.constantFrom<Partial<CodeContext>>(
          { iqId: "iq-0002" },
          { appId: "app-0002" },
          { purpose: "office_off" },
          { key: new Uint8Array(32).fill(7) },
        ),
        ({ key, pin, now }, change) => {
          const ctx = context({ key });
          const { code } = generateCode({ ...ctx, pin, lastCounter: 0, now });
          const elsewhere = { ...ctx, ...change };
          expect(validateCode({ ...elsewhere, code, now, expectedPin: pin, lastCounter: 0 }).ok).toBe(false);
        },
      ),
      runs,
    );
  });

  it("a Code is valid from one step before it was made to two steps after, and refused outside", () => {
    fc.assert(
      fc.property(arbitraryCase, ({ key, pin, purpose, now }) => {
        const ctx = context({ key, purpose });
        const { code } = generateCode({ ...ctx, pin, lastCounter: 0, now });
        const madeStep = Math.floor(now / MINUTE);
        const verdictAtStep = (step: number): boolean =>
          validateCode({ ...ctx, code, now: step * MINUTE + 30_000, expectedPin: pin, lastCounter: 0 }).ok;
        expect([-2, -1, 0, 1, 2, 3].map((offset) => verdictAtStep(madeStep + offset))).toEqual([
          false,
          true,
          true,
          true,
          true,
          false,
        ]);
      }),
      runs,
    );
  });

  it("a Code made with another PIN is refused as a wrong PIN", () => {
    fc.assert(
      fc.property(arbitraryCase, fc.stringMatching(/^[0-9]{4,8}$/), ({ key, pin, purpose, now }, otherPin) => {
        fc.pre(otherPin !== pin);
        const ctx = context({ key, purpose });
        const { code } = generateCode({ ...ctx, pin: otherPin, lastCounter: 0, now });
        expect(validateCode({ ...ctx, code, now, expectedPin: pin, lastCounter: 0 })).toEqual({
          ok: false,
          reason: "wrong_pin",
        });
      }),
      runs,
    );
  });

  it("an app makes at most two Codes per minute", () => {
    const ctx = context();
    const first = generateCode({ ...ctx, pin: "482916", lastCounter: 0, now: NOW });
    const second = generateCode({ ...ctx, pin: "482916", lastCounter: first.counter, now: NOW });
    expect(second.code).not.toBe(first.code);
    expect(() => generateCode({ ...ctx, pin: "482916", lastCounter: second.counter, now: NOW })).toThrow(
      expect.objectContaining({ code: "code_rate_limited" }),
    );
    expect(generateCode({ ...ctx, pin: "482916", lastCounter: second.counter, now: NOW + MINUTE }).counter).toBe(
      second.counter + 1,
    );
  });

  it("reads a Code typed in lower case with a hyphen, and refuses a malformed one by name", () => {
    const ctx = context();
    expect(validateCode({ ...ctx, code: "6r-5t5", now: NOW, expectedPin: "482916", lastCounter: 0 }).ok).toBe(true);
    expect(() => validateCode({ ...ctx, code: "9AZ2U", now: NOW, expectedPin: "482916", lastCounter: 0 })).toThrow(
      expect.objectContaining({ code: "code_malformed" }),
    );
  });

  it("refuses bad arguments at the door", () => {
    const made = { pin: "482916", lastCounter: 0, now: NOW };
    const invalid: unknown = expect.objectContaining({ code: "crypto_input_invalid" });
    expect(() => generateCode({ ...context({ key: new Uint8Array(16) }), ...made })).toThrow(invalid);
    expect(() => generateCode({ ...context(), ...made, pin: "12a4" })).toThrow(invalid);
    expect(() => generateCode({ ...context(), ...made, pin: "123456789" })).toThrow(invalid);
    expect(() => generateCode({ ...context({ purpose: "launch" as never }), ...made })).toThrow(invalid);
    expect(() => generateCode({ ...context({ iqId: "" }), ...made })).toThrow(invalid);
    expect(() => generateCode({ ...context(), ...made, now: Number.NaN })).toThrow(invalid);
  });
});

describe("Codes for a user with two devices", () => {
  const devices = [
    { appId: "phone", key: new Uint8Array(32).fill(1), lastCounter: 0 },
    { appId: "tablet", key: new Uint8Array(32).fill(2), lastCounter: 0 },
  ];

  it("accept a Code from either device and say which", () => {
    for (const device of devices) {
      const { code, counter } = generateCode({ ...context(device), pin: "604913", lastCounter: 0, now: NOW });
      expect(
        validateCodeForUser({ iqId: "iq-0001", purpose: "open", code, now: NOW, expectedPin: "604913", devices }),
      ).toEqual({ ok: true, appId: device.appId, counter });
    }
  });

  it("refuse a third device: the guessing bound assumes two", () => {
    const three = [...devices, { appId: "watch", key: new Uint8Array(32).fill(3), lastCounter: 0 }];
    expect(() =>
      validateCodeForUser({ iqId: "iq-0001", purpose: "open", code: "00000", now: NOW, expectedPin: "604913", devices: three }),
    ).toThrow(expect.objectContaining({ code: "too_many_devices" }));
  });
});
