import fc from "fast-check";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { Button, type ButtonOptions } from "../../hal/button.js";
import { MockGpio } from "../../hal/mock-backend.js";

const PIN = 17;
const DEBOUNCE_MS = 50;
const OPTIONS: ButtonOptions = {
  pin: PIN,
  debounceMs: DEBOUNCE_MS,
  holdThresholdsMs: [10_000, 30_000],
  shortPressMaxMs: 2_000,
};

let gpio: MockGpio;
beforeEach(() => {
  vi.useFakeTimers();
  gpio = new MockGpio();
});
afterEach(() => vi.useRealTimers());

/** A button on the mock whose every event is recorded, in order. */
function recordedButton(options: Partial<ButtonOptions> = {}): { button: Button; events: string[] } {
  const button = new Button(gpio, { ...OPTIONS, ...options });
  const events: string[] = [];
  button.on("down", () => events.push("down"));
  button.on("hold", (ms) => events.push(`hold ${ms}`));
  button.on("release", (ms) => events.push(`release ${ms}`));
  button.on("shortPress", () => events.push("shortPress"));
  return { button, events };
}

/** Press, keep it pressed for `ms`, release, and let the release settle. */
function holdFor(ms: number): void {
  gpio.press(PIN);
  vi.advanceTimersByTime(ms);
  gpio.release(PIN);
  vi.advanceTimersByTime(DEBOUNCE_MS);
}

describe("button", () => {
  it("swallows contact chatter shorter than the debounce time", () => {
    const { events } = recordedButton();
    for (let i = 0; i < 5; i++) {
      gpio.press(PIN);
      vi.advanceTimersByTime(DEBOUNCE_MS / 2);
      gpio.release(PIN);
      vi.advanceTimersByTime(DEBOUNCE_MS / 2);
    }
    vi.advanceTimersByTime(DEBOUNCE_MS);
    expect(events).toEqual([]);
  });

  it("holding 9.9 s fires no 10 s hold", () => {
    const { events } = recordedButton();
    holdFor(9_900);
    vi.advanceTimersByTime(60_000);
    expect(events).toEqual(["down", "release 9900"]);
  });

  it("holding 10 s fires the 10 s hold while still held", () => {
    const { events } = recordedButton();
    gpio.press(PIN);
    vi.advanceTimersByTime(DEBOUNCE_MS + 10_000);
    expect(events).toEqual(["down", "hold 10000"]);
  });

  it("holding past 30 s fires the 10 s and 30 s holds once each, then reports the release", () => {
    const { events } = recordedButton();
    holdFor(31_000);
    expect(events).toEqual(["down", "hold 10000", "hold 30000", "release 31000"]);
  });

  it("a hold threshold is reported before the release exactly when the button was held that long", () => {
    // Presses shorter than the debounce time are chatter (tested above), so the property starts there.
    fc.assert(
      fc.property(fc.integer({ min: DEBOUNCE_MS, max: 40_000 }), (heldMs) => {
        gpio = new MockGpio();
        const { button, events } = recordedButton();
        holdFor(heldMs);
        const holds = OPTIONS.holdThresholdsMs.filter((t) => heldMs >= t).map((t) => `hold ${t}`);
        expect(events.filter((e) => e !== "shortPress")).toEqual(["down", ...holds, `release ${heldMs}`]);
        button.close();
      }),
      { numRuns: 200 },
    );
  });

  it("reports how long it was held on release", () => {
    const release = vi.fn();
    recordedButton().button.on("release", release);
    holdFor(12_345);
    expect(release).toHaveBeenCalledExactlyOnceWith(12_345);
  });

  it("a release before shortPressMaxMs is also a short press", () => {
    const { events } = recordedButton();
    holdFor(300);
    expect(events).toEqual(["down", "release 300", "shortPress"]);
  });

  it("a release at shortPressMaxMs is not a short press", () => {
    const { events } = recordedButton();
    holdFor(2_000);
    expect(events).toEqual(["down", "release 2000"]);
  });

  it("a press held at start does nothing until released once", () => {
    gpio.press(PIN);
    const { button, events } = recordedButton();
    expect(button.ignoringUntilReleased).toBe(true);
    vi.advanceTimersByTime(60_000);
    expect(events).toEqual([]);

    gpio.release(PIN);
    vi.advanceTimersByTime(DEBOUNCE_MS);
    expect(events).toEqual([]);
    expect(button.ignoringUntilReleased).toBe(false);

    holdFor(10_000);
    expect(events).toEqual(["down", "hold 10000", "release 10000"]);
  });

  it("a pin stuck at the pressed level never fires a hold (a floating input cannot reset the hub)", () => {
    gpio.press(PIN);
    const { events } = recordedButton();
    vi.advanceTimersByTime(24 * 3_600_000);
    expect(events).toEqual([]);
  });

  it("an active-high button is pressed when its pin goes high", () => {
    const { events } = recordedButton({ activeLow: false });
    gpio.setInput(PIN, 0);
    vi.advanceTimersByTime(DEBOUNCE_MS);
    expect(events).toEqual([]);
    gpio.press(PIN, { activeLow: false });
    vi.advanceTimersByTime(DEBOUNCE_MS + 10_000);
    expect(events).toEqual(["down", "hold 10000"]);
  });

  it("fires no pending hold after close", () => {
    const { button, events } = recordedButton();
    gpio.press(PIN);
    vi.advanceTimersByTime(DEBOUNCE_MS);
    button.close();
    vi.advanceTimersByTime(60_000);
    expect(events).toEqual(["down"]);
  });

  it("refuses a threshold that is not a positive time", () => {
    expect(() => new Button(gpio, { ...OPTIONS, holdThresholdsMs: [0] })).toThrow(RangeError);
  });
});
