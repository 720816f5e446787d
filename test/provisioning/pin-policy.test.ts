import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { IqError } from "../../common/errors.js";
import { checkPin, PIN_LENGTH, randomPin } from "../../provisioning/pin-policy.js";

function refusal(pin: string): { code: string; rule?: unknown; message: string } | undefined {
  try {
    checkPin(pin);
    return undefined;
  } catch (err) {
    if (!(err instanceof IqError)) throw err;
    return { code: err.code, rule: err.details?.rule, message: err.message };
  }
}

describe("checkPin", () => {
  it.each([
    ["0000", "repeat"],
    ["1111", "repeat"],
    ["99999999", "repeat"],
    ["1212", "repeat"],
    ["6969", "repeat"],
    ["12121", "repeat"],
    ["123123", "repeat"],
    ["12341234", "repeat"],
    ["1234", "run"],
    ["4321", "run"],
    ["2345", "run"],
    ["123456", "run"],
    ["987654", "run"],
    ["01234567", "run"],
    ["7890", "run"],
    ["0987", "run"],
    ["1004", "common"],
    ["2000", "common"],
    ["2580", "common"],
    ["0852", "common"],
    ["112233", "common"],
  ])("refuses the trivial PIN %s (%s)", (pin, rule) => {
    expect(refusal(pin)).toMatchObject({ code: "pin_trivial", rule });
  });

  it.each(["3819", "5271", "7351", "90217", "246810", "104729", "8260431", "31415926"])("accepts %s", (pin) => {
    expect(refusal(pin)).toBeUndefined();
  });

  it.each(["", "123", "123456789", "12a4", " 1234", "1234 ", "12.4", "-123", "１２３４", "1234\n"])(
    "refuses %j as not a PIN",
    (pin) => {
      expect(refusal(pin)?.code).toBe("pin_invalid");
    },
  );

  it("refuses a value that is not a string (JSON from a client)", () => {
    expect(refusal(1234 as unknown as string)?.code).toBe("pin_invalid");
  });

  it("never repeats the PIN in its message (messages reach logs and clients)", () => {
    expect(refusal("2580")?.message).not.toContain("2580");
    expect(refusal("987654")?.message).not.toContain("987654");
  });

  it("refuses every block of digits said again and again", () => {
    fc.assert(
      fc.property(fc.stringMatching(/^[0-9]{1,4}$/), fc.integer({ min: 2, max: 8 }), (block, times) => {
        const pin = block.repeat(times).slice(0, Math.min(PIN_LENGTH.max, block.length * times));
        fc.pre(pin.length >= PIN_LENGTH.min && pin.length >= 2 * block.length);
        expect(refusal(pin)).toMatchObject({ code: "pin_trivial", rule: "repeat" });
      }),
    );
  });

  it("refuses every straight run, up or down, around the keypad row", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 9 }),
        fc.integer({ min: PIN_LENGTH.min, max: PIN_LENGTH.max }),
        fc.constantFrom(1, -1),
        (start, length, step) => {
          const pin = Array.from({ length }, (_, i) => (start + step * i + 100) % 10).join("");
          expect(refusal(pin)?.code).toBe("pin_trivial");
        },
      ),
    );
  });

  it("answers every string of 4 to 8 digits with nothing or pin_trivial", () => {
    fc.assert(
      fc.property(fc.stringMatching(/^[0-9]{4,8}$/), (pin) => {
        expect([undefined, "pin_trivial"]).toContain(refusal(pin)?.code);
      }),
    );
  });
});

describe("randomPin", () => {
  it("is 6 digits by default", () => {
    expect(randomPin()).toMatch(/^[0-9]{6}$/);
  });

  it("never returns a trivial PIN, at any length", () => {
    const bad: string[] = [];
    for (let length = PIN_LENGTH.min; length <= PIN_LENGTH.max; length++) {
      for (let i = 0; i < 20_000; i++) {
        const pin = randomPin(length);
        if (pin.length !== length || refusal(pin) !== undefined) bad.push(pin);
      }
    }
    expect(bad).toEqual([]);
  });

  it("passes the policy for any length fast-check picks", () => {
    fc.assert(
      fc.property(fc.integer({ min: PIN_LENGTH.min, max: PIN_LENGTH.max }), (length) => {
        expect(refusal(randomPin(length))).toBeUndefined();
      }),
    );
  });

  it("uses every digit in every position (no bias from the padding or the rejection)", () => {
    const seen = Array.from({ length: 4 }, () => new Map<string, number>());
    const samples = 20_000;
    for (let i = 0; i < samples; i++) {
      [...randomPin(4)].forEach((digit, position) => {
        const counts = seen[position]!;
        counts.set(digit, (counts.get(digit) ?? 0) + 1);
      });
    }
    for (const counts of seen) {
      expect(counts.size).toBe(10);
      // Uniform would be 2,000 per digit; 1,700 is more than 6 standard deviations below.
      for (const count of counts.values()) expect(count).toBeGreaterThan(1_700);
    }
  });

  it.each([3, 9, 4.5, Number.NaN])("refuses length %s", (length) => {
    expect(() => randomPin(length)).toThrow(RangeError);
  });
});
