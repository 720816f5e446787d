import fc from "fast-check";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { DebouncedInput } from "../../hal/debounce.js";
import type { Level } from "../../hal/gpio-port.js";

const DEBOUNCE_MS = 50;

beforeEach(() => vi.useFakeTimers());
afterEach(() => vi.useRealTimers());

function watched(initial: Level = 1): { input: DebouncedInput; changes: Level[]; release: () => void } {
  const release = vi.fn();
  const input = new DebouncedInput(initial, DEBOUNCE_MS, release);
  const changes: Level[] = [];
  input.onChange((level) => changes.push(level));
  return { input, changes, release };
}

describe("debounced input", () => {
  it("reports a new level once it has been stable for the debounce time", () => {
    const { input, changes } = watched();
    input.edge(0);
    vi.advanceTimersByTime(DEBOUNCE_MS - 1);
    expect(changes).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(changes).toEqual([0]);
  });

  it("swallows chatter shorter than the debounce time", () => {
    const { input, changes } = watched();
    for (let i = 0; i < 10; i++) {
      input.edge(0);
      vi.advanceTimersByTime(DEBOUNCE_MS / 5);
      input.edge(1);
      vi.advanceTimersByTime(DEBOUNCE_MS / 5);
    }
    vi.advanceTimersByTime(10 * DEBOUNCE_MS);
    expect(changes).toEqual([]);
  });

  it("waits for the bouncing to stop before reporting a press", () => {
    const { input, changes } = watched();
    input.edge(0);
    vi.advanceTimersByTime(10);
    input.edge(1);
    vi.advanceTimersByTime(10);
    input.edge(0);
    vi.advanceTimersByTime(DEBOUNCE_MS - 1);
    expect(changes).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(changes).toEqual([0]);
  });

  it("reads the raw level at once, before it is reported", () => {
    const { input } = watched();
    input.edge(0);
    expect(input.read()).toBe(0);
  });

  it("reports nothing after close, and gives the pin back once", () => {
    const { input, changes, release } = watched();
    input.edge(0);
    input.close();
    input.close();
    input.edge(1);
    input.edge(0);
    vi.advanceTimersByTime(10 * DEBOUNCE_MS);
    expect(changes).toEqual([]);
    expect(release).toHaveBeenCalledTimes(1);
  });

  it("stops calling a listener once it unsubscribes", () => {
    const input = new DebouncedInput(1, DEBOUNCE_MS, () => {});
    const listener = vi.fn();
    const stop = input.onChange(listener);
    stop();
    input.edge(0);
    vi.advanceTimersByTime(DEBOUNCE_MS);
    expect(listener).not.toHaveBeenCalled();
  });

  it("ends at the last raw level, reporting only levels that were held for the debounce time", () => {
    // Any edge sequence: a change is reported iff the level was then held ≥ DEBOUNCE_MS, and
    // the reported levels alternate, ending at the final raw level.
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 2 * DEBOUNCE_MS }), { maxLength: 30 }), (gaps) => {
        const { input, changes } = watched(1);
        let level: Level = 1;
        let expected: Level[] = [];
        let stable: Level = 1;
        for (const gap of gaps) {
          level = level === 1 ? 0 : 1;
          input.edge(level);
          vi.advanceTimersByTime(gap);
          if (gap >= DEBOUNCE_MS && level !== stable) {
            stable = level;
            expected = [...expected, level];
          }
        }
        vi.advanceTimersByTime(DEBOUNCE_MS);
        if (level !== stable) expected = [...expected, level];
        expect(changes).toEqual(expected);
        input.close();
      }),
    );
  });
});
