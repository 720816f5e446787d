/**
 * What the LED says: the one table from the hub's displayed state to an LED pattern.
 * README.md repeats it for installers; test/firmware/led-table.test.ts keeps the two in step.
 */
import type { LedPattern } from "../hal/rgb-led.js";

const SLOW_MS = 1_000;
const FAST_MS = 250;

export const LED_TABLE = {
  booting: { kind: "solid", color: "white" },
  unclaimed: { kind: "blink", color: "blue", periodMs: SLOW_MS },
  claimWindow: { kind: "blink", color: "blue", periodMs: FAST_MS },
  ready: { kind: "solid", color: "green" },
  offline: { kind: "blink", color: "yellow", periodMs: SLOW_MS },
  brokerContested: { kind: "blink", color: "yellow", periodMs: FAST_MS },
  clockUnsynced: { kind: "blink", color: "magenta", periodMs: SLOW_MS },
  opening: { kind: "blink", color: "green", periodMs: FAST_MS },
  officeMode: { kind: "solid", color: "cyan" },
  refused: { kind: "flash", color: "red", times: 3, periodMs: 300, then: { kind: "off" } },
  lockedOut: { kind: "blink", color: "red", periodMs: SLOW_MS },
  resetArmed: { kind: "cycle", colors: ["red", "green", "blue"], stepMs: 500 },
  resetting: { kind: "blink", color: "white", periodMs: FAST_MS },
  error: { kind: "solid", color: "red" },
} as const satisfies Record<string, LedPattern>;

export type DisplayState = keyof typeof LED_TABLE;

/** A person-readable description of a pattern, for logs and the terminal simulator. */
export function describePattern(pattern: LedPattern): string {
  switch (pattern.kind) {
    case "off":
      return "off";
    case "solid":
      return `${pattern.color}, solid`;
    case "blink":
      return `${pattern.color}, ${pattern.periodMs >= SLOW_MS ? "slow" : "fast"} blink`;
    case "flash":
      return `${pattern.color}, ${pattern.times} flashes`;
    case "cycle":
      return `${pattern.colors.join(" → ")} cycle`;
  }
}
