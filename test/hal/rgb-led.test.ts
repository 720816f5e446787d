import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { MockGpio } from "../../hal/mock-backend.js";
import { type Color, type LedPattern, type LedState, RgbLed } from "../../hal/rgb-led.js";

const PINS = { red: 5, green: 6, blue: 13 };

let gpio: MockGpio;
beforeEach(() => {
  vi.useFakeTimers();
  gpio = new MockGpio();
});
afterEach(() => vi.useRealTimers());

function led(commonAnode = false): RgbLed {
  return new RgbLed(gpio, { pins: PINS, commonAnode });
}

/** The pin levels, red-green-blue, e.g. "101" for magenta on a common-cathode LED. */
function pins(): string {
  return [PINS.red, PINS.green, PINS.blue].map((bcm) => gpio.level(bcm)).join("");
}

/** The colour lit at each step of `stepMs`, `steps` times. */
function colorsOver(l: RgbLed, stepMs: number, steps: number): Color[] {
  return Array.from({ length: steps }, () => {
    const color = l.current().color;
    vi.advanceTimersByTime(stepMs);
    return color;
  });
}

describe("RGB LED", () => {
  it("starts off: all pins low on a common-cathode LED", () => {
    led(false);
    expect(pins()).toBe("000");
  });

  it("starts off: all pins high on a common-anode LED", () => {
    led(true);
    expect(pins()).toBe("111");
  });

  it.each<[Color, string, string]>([
    ["red", "100", "011"],
    ["green", "010", "101"],
    ["blue", "001", "110"],
    ["white", "111", "000"],
    ["yellow", "110", "001"],
    ["magenta", "101", "010"],
    ["cyan", "011", "100"],
    ["off", "000", "111"],
  ])("shows %s as %s on a common-cathode LED and %s on a common-anode one (lit = low)", (color, cathode, anode) => {
    led(false).show({ kind: "solid", color });
    expect(pins()).toBe(cathode);
    gpio = new MockGpio();
    led(true).show({ kind: "solid", color });
    expect(pins()).toBe(anode);
  });

  it("blinks: lit for half the period, dark for the other half, until told otherwise", () => {
    const l = led();
    l.show({ kind: "blink", color: "blue", periodMs: 1_000 });
    expect(colorsOver(l, 250, 8)).toEqual(["blue", "blue", "off", "off", "blue", "blue", "off", "off"]);
  });

  it("cycles through its colours, one step each, round and round", () => {
    const l = led();
    l.show({ kind: "cycle", colors: ["red", "green", "blue"], stepMs: 500 });
    expect(colorsOver(l, 500, 7)).toEqual(["red", "green", "blue", "red", "green", "blue", "red"]);
  });

  it("flashes the given number of times, then shows the follow-up pattern", () => {
    const l = led();
    const then: LedPattern = { kind: "solid", color: "green" };
    l.show({ kind: "flash", color: "red", times: 3, periodMs: 200, then });
    expect(colorsOver(l, 100, 7)).toEqual(["red", "off", "red", "off", "red", "off", "green"]);
    expect(l.current().pattern).toBe(then);
    vi.advanceTimersByTime(10_000);
    expect(l.current().color).toBe("green");
  });

  it("a new pattern replaces a running one at once", () => {
    const l = led();
    l.show({ kind: "blink", color: "blue", periodMs: 1_000 });
    l.show({ kind: "solid", color: "cyan" });
    vi.advanceTimersByTime(5_000);
    expect(l.current().color).toBe("cyan");
    expect(pins()).toBe("011");
  });

  it("writes only the channels that change", () => {
    const l = led();
    l.show({ kind: "solid", color: "yellow" });
    const before = gpio.timeline.length;
    l.show({ kind: "solid", color: "red" });
    expect(gpio.timeline.slice(before)).toEqual([expect.objectContaining({ bcm: PINS.green, level: 0 })]);
  });

  it("tells a listener about each visible change", () => {
    const l = led();
    const seen: Color[] = [];
    l.onChange((state: LedState) => seen.push(state.color));
    l.show({ kind: "blink", color: "red", periodMs: 200 });
    vi.advanceTimersByTime(400);
    expect(seen).toEqual(["red", "off", "red", "off", "red"]);
  });

  it("close stops the pattern and turns the LED off", () => {
    const l = led(true);
    l.show({ kind: "cycle", colors: ["red", "green", "blue"], stepMs: 100 });
    l.close();
    expect(pins()).toBe("111");
    const writes = gpio.timeline.length;
    vi.advanceTimersByTime(10_000);
    expect(gpio.timeline).toHaveLength(writes);
  });

  it("refuses a malformed pattern and keeps showing the old one", () => {
    const l = led();
    l.show({ kind: "solid", color: "green" });
    expect(() => l.show({ kind: "cycle", colors: [], stepMs: 100 })).toThrow(RangeError);
    expect(() => l.show({ kind: "blink", color: "red", periodMs: 0 })).toThrow(RangeError);
    expect(() =>
      l.show({ kind: "flash", color: "red", times: 2, periodMs: 100, then: { kind: "solid", color: "pink" as Color } }),
    ).toThrow(/unknown LED colour "pink"/);
    expect(l.current().color).toBe("green");
  });
});

