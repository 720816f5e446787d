import { afterEach, describe, expect, it } from "vitest";
import { GpioError } from "../../hal/errors.js";
import { detectChipBase, listGpioChips, resolveChipBase, sysfsNumber } from "../../hal/pin-mapping.js";
import { type FakeChip, type FakeMachine, PI4_CHIPS, PI5_CHIPS, fakeMachine } from "./fake-sysfs.js";

let machine: FakeMachine | undefined;
afterEach(() => machine?.remove());

function sysfsWith(chips: FakeChip[]): string {
  machine = fakeMachine(chips);
  return machine.sysfsRoot;
}

describe("pin mapping", () => {
  it("maps BCM 17 to 588 on a Pi 5 (pinctrl-rp1, base 571)", () => {
    const sysfsRoot = sysfsWith(PI5_CHIPS);
    expect(detectChipBase(sysfsRoot)).toBe(571);
    expect(sysfsNumber(17, { sysfsRoot })).toBe(588);
  });

  it("maps BCM 17 to 529 on a Pi 4 with kernel 6.6+ (pinctrl-bcm2711, base 512)", () => {
    expect(sysfsNumber(17, { sysfsRoot: sysfsWith(PI4_CHIPS) })).toBe(529);
  });

  it("maps BCM 17 to 529 on a Pi Zero–3 with kernel 6.6+ (pinctrl-bcm2835, base 512)", () => {
    const sysfsRoot = sysfsWith([
      { label: "pinctrl-bcm2835", base: 512 },
      { label: "raspberrypi-exp-gpio", base: 566 },
    ]);
    expect(sysfsNumber(17, { sysfsRoot })).toBe(529);
  });

  it("maps BCM 17 to 17 on a kernel before 6.6 (base 0)", () => {
    const sysfsRoot = sysfsWith([
      { label: "pinctrl-bcm2835", base: 0 },
      { label: "raspberrypi-exp-gpio", base: 504 },
    ]);
    expect(sysfsNumber(17, { sysfsRoot })).toBe(17);
  });

  it("says which chip and base it used", () => {
    expect(resolveChipBase({ sysfsRoot: sysfsWith(PI5_CHIPS) }).source).toBe(
      "pinctrl-rp1 (Raspberry Pi 5), sysfs base 571",
    );
  });

  it("refuses an unknown chip with an error that lists every chip found", () => {
    const sysfsRoot = sysfsWith([
      { label: "INT34C6:00", base: 512 },
      { label: "gpio-sim", base: 800 },
    ]);
    const error = catchError(() => sysfsNumber(17, { sysfsRoot }));
    expect(error).toBeInstanceOf(GpioError);
    expect(error.message).toContain('gpiochip512 "INT34C6:00" base 512');
    expect(error.message).toContain('gpiochip800 "gpio-sim" base 800');
    expect(error.message).toContain("gpio.sysfsBase");
  });

  it("refuses a machine with no GPIO chip, saying none was found", () => {
    expect(() => detectChipBase(sysfsWith([]))).toThrow(/found: none/);
  });

  it("refuses a sysfs root that does not exist, without crashing on it", () => {
    expect(() => detectChipBase("/nonexistent/sys/class/gpio")).toThrow(GpioError);
    expect(listGpioChips("/nonexistent/sys/class/gpio")).toEqual([]);
  });

  it("uses an explicit base without looking at sysfs", () => {
    expect(sysfsNumber(17, { sysfsRoot: "/nonexistent", base: 512 })).toBe(529);
  });

  it("refuses a negative or fractional base override", () => {
    expect(() => sysfsNumber(17, { base: -1 })).toThrow(/gpio.sysfsBase/);
    expect(() => sysfsNumber(17, { base: 1.5 })).toThrow(/gpio.sysfsBase/);
  });

  it.each([-1, 54, 2.5, Number.NaN])("refuses BCM %s", (bcm) => {
    expect(() => sysfsNumber(bcm, { base: 0 })).toThrow(/BCM pin must be an integer from 0 to 53/);
  });

  it("accepts BCM 0 and 53, the ends of the range", () => {
    expect(sysfsNumber(0, { base: 512 })).toBe(512);
    expect(sysfsNumber(53, { base: 512 })).toBe(565);
  });
});

function catchError(action: () => unknown): Error {
  try {
    action();
  } catch (error) {
    return error as Error;
  }
  throw new Error("expected an error");
}
