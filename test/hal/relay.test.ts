import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { MockGpio } from "../../hal/mock-backend.js";
import { Relay } from "../../hal/relay.js";

const PIN = 27;
const PULSE_MS = 3_000;

let gpio: MockGpio;
beforeEach(() => {
  vi.useFakeTimers();
  gpio = new MockGpio();
});
afterEach(() => vi.useRealTimers());

/** An active-high relay board: low = locked. */
function relay(activeLow = false): Relay {
  return new Relay(gpio, { pin: PIN, activeLow, pulseMs: PULSE_MS });
}

describe("relay", () => {
  it("an active-high relay is claimed low (locked) and unlocks high", () => {
    const r = relay(false);
    expect(gpio.timeline).toEqual([expect.objectContaining({ bcm: PIN, level: 0 })]);
    r.hold();
    expect(gpio.level(PIN)).toBe(1);
  });

  it("an active-low relay is claimed high (locked) and unlocks low", () => {
    const r = relay(true);
    expect(gpio.timeline).toEqual([expect.objectContaining({ bcm: PIN, level: 1 })]);
    expect(r.isUnlocked).toBe(false);
    r.hold();
    expect(gpio.level(PIN)).toBe(0);
    expect(r.isUnlocked).toBe(true);
  });

  it("is locked again after a pulse, and the pulse resolves then", async () => {
    const r = relay();
    const done = r.pulse();
    expect(r.isUnlocked).toBe(true);
    vi.advanceTimersByTime(PULSE_MS - 1);
    expect(gpio.level(PIN)).toBe(1);
    vi.advanceTimersByTime(1);
    expect(gpio.level(PIN)).toBe(0);
    await expect(done).resolves.toBeUndefined();
  });

  it("a second pulse during a pulse extends it", () => {
    const r = relay();
    void r.pulse();
    vi.advanceTimersByTime(2_000);
    void r.pulse();
    vi.advanceTimersByTime(2_000);
    expect(r.isUnlocked).toBe(true);
    vi.advanceTimersByTime(1_000);
    expect(r.isUnlocked).toBe(false);
  });

  it("a shorter pulse during a longer one does not cut it short", () => {
    const r = relay();
    void r.pulse(10_000);
    void r.pulse(100);
    vi.advanceTimersByTime(9_999);
    expect(r.isUnlocked).toBe(true);
    vi.advanceTimersByTime(1);
    expect(r.isUnlocked).toBe(false);
  });

  it("held open (Office Mode) stays open until lock(), whatever pulses come", () => {
    const r = relay();
    r.hold();
    void r.pulse();
    vi.advanceTimersByTime(10 * PULSE_MS);
    expect(r.isUnlocked).toBe(true);
    r.lock();
    expect(r.isUnlocked).toBe(false);
  });

  it("hold() during a pulse keeps the door open past the pulse", () => {
    const r = relay();
    void r.pulse();
    r.hold();
    vi.advanceTimersByTime(10 * PULSE_MS);
    expect(r.isUnlocked).toBe(true);
  });

  it("lock() during a pulse locks now and for good", async () => {
    const r = relay();
    const done = r.pulse();
    r.lock();
    expect(gpio.level(PIN)).toBe(0);
    await expect(done).resolves.toBeUndefined();
    const writes = gpio.timeline.length;
    vi.advanceTimersByTime(10 * PULSE_MS);
    expect(gpio.timeline).toHaveLength(writes);
  });

  it("is locked after close, even in the middle of a pulse or Office Mode", () => {
    const active = relay(true);
    void active.pulse();
    active.close();
    expect(gpio.level(PIN)).toBe(1);
    vi.advanceTimersByTime(10 * PULSE_MS);
    expect(gpio.level(PIN)).toBe(1);

    const other = new Relay(gpio, { pin: 22, activeLow: false, pulseMs: PULSE_MS });
    other.hold();
    other.close();
    expect(gpio.level(22)).toBe(0);
  });

  it("refuses to pulse once closed, leaving nothing scheduled", () => {
    const r = relay();
    r.close();
    expect(() => r.pulse()).toThrow(/closed/);
    expect(vi.getTimerCount()).toBe(0);
  });

  it("close twice is harmless", () => {
    const r = relay();
    r.close();
    expect(() => r.close()).not.toThrow();
  });

  it("tells a listener when it unlocks and locks, not when a pulse is extended", () => {
    const r = relay();
    const changes: boolean[] = [];
    r.onChange((unlocked) => changes.push(unlocked));
    void r.pulse();
    void r.pulse();
    vi.advanceTimersByTime(PULSE_MS);
    expect(changes).toEqual([true, false]);
  });

  it("refuses a pulse that is not a positive time", () => {
    expect(() => relay().pulse(0)).toThrow(RangeError);
  });
});
