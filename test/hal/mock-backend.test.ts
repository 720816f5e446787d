import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { GpioError } from "../../hal/errors.js";
import { MockGpio } from "../../hal/mock-backend.js";

beforeEach(() => vi.useFakeTimers({ now: 1_000 }));
afterEach(() => vi.useRealTimers());

describe("mock GPIO", () => {
  it("records every output write, the claim included, with its time", () => {
    const gpio = new MockGpio();
    const out = gpio.output(27, 0);
    vi.advanceTimersByTime(5);
    out.write(1);
    expect(gpio.timeline).toEqual([
      { bcm: 27, level: 0, at: 1_000 },
      { bcm: 27, level: 1, at: 1_005 },
    ]);
    expect(gpio.level(27)).toBe(1);
  });

  it("tells a listener about each write, until it unsubscribes", () => {
    const gpio = new MockGpio();
    const writes: number[] = [];
    const stop = gpio.onWrite((write) => writes.push(write.level));
    const out = gpio.output(27, 0);
    out.write(1);
    stop();
    out.write(0);
    expect(writes).toEqual([0, 1]);
  });

  it("idles an unset input high, as the installer's pull-up does", () => {
    const gpio = new MockGpio();
    expect(gpio.input(17, { debounceMs: 20 }).read()).toBe(1);
  });

  it("starts an input at the level set before it was claimed", () => {
    const gpio = new MockGpio();
    gpio.press(17);
    expect(gpio.input(17, { debounceMs: 20 }).read()).toBe(0);
  });

  it("passes input changes through the debounce", () => {
    const gpio = new MockGpio();
    const changes: number[] = [];
    gpio.input(17, { debounceMs: 20 }).onChange((level) => changes.push(level));
    gpio.press(17);
    vi.advanceTimersByTime(19);
    expect(changes).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(changes).toEqual([0]);
  });

  it("presses an active-high button by driving the pin high", () => {
    const gpio = new MockGpio();
    gpio.press(17, { activeLow: false });
    expect(gpio.level(17)).toBe(1);
    gpio.release(17, { activeLow: false });
    expect(gpio.level(17)).toBe(0);
  });

  it("refuses to claim a pin twice", () => {
    const gpio = new MockGpio();
    gpio.output(27, 0);
    expect(() => gpio.input(27, { debounceMs: 20 })).toThrow(/BCM 27 is already used/);
  });

  it("lets a pin be claimed again after it was closed", () => {
    const gpio = new MockGpio();
    gpio.output(27, 0).close();
    expect(() => gpio.output(27, 1)).not.toThrow();
  });

  it("refuses to set the level of an output", () => {
    const gpio = new MockGpio();
    gpio.output(27, 0);
    expect(() => gpio.setInput(27, 1)).toThrow(GpioError);
  });

  it("refuses writes to an output after the port is closed", () => {
    const gpio = new MockGpio();
    const out = gpio.output(27, 0);
    gpio.close();
    expect(() => out.write(1)).toThrow(/closed/);
  });

  it("refuses to read a pin nobody claimed or set", () => {
    expect(() => new MockGpio().level(5)).toThrow(GpioError);
  });
});
