/**
 * The status LED: three digital channels (no PWM), so eight colours. Patterns are played as a
 * list of frames on setTimeout, which keeps them exact under fake timers. Which pattern means
 * what is the lifecycle's business (firmware); this class only shows what it is told.
 */
import type { DigitalOutput, GpioPort, Level } from "./gpio-port.js";
import { Listeners } from "./listeners.js";

export const COLORS = ["off", "red", "green", "blue", "white", "yellow", "magenta", "cyan"] as const;
export type Color = (typeof COLORS)[number];

export type LedPattern =
  | { kind: "off" }
  | { kind: "solid"; color: Color }
  /** Lit for the first half of `periodMs`, dark for the rest, until the next show(). */
  | { kind: "blink"; color: Color; periodMs: number }
  /** `times` blinks of `periodMs`, then `then`. */
  | { kind: "flash"; color: Color; times: number; periodMs: number; then: LedPattern }
  /** Each colour for `stepMs`, round and round. */
  | { kind: "cycle"; colors: Color[]; stepMs: number };

export interface LedState {
  /** The colour lit right now ("off" in the dark half of a blink). */
  color: Color;
  pattern: LedPattern;
}

type Channel = "red" | "green" | "blue";

export interface RgbLedOptions {
  pins: Record<Channel, number>;
  /** Common-anode LED: a channel lights when its pin is LOW. */
  commonAnode: boolean;
}

const CHANNELS: readonly Channel[] = ["red", "green", "blue"];

/** The channels each colour lights. */
const LIT: Readonly<Record<Color, readonly Channel[]>> = {
  off: [],
  red: ["red"],
  green: ["green"],
  blue: ["blue"],
  white: ["red", "green", "blue"],
  yellow: ["red", "green"],
  magenta: ["red", "blue"],
  cyan: ["green", "blue"],
};

interface Frame {
  color: Color;
  /** Infinity: stays until the next show(). */
  ms: number;
}

/** A pattern as frames: played once and followed by `then`, or looped when there is no `then`. */
interface Script {
  frames: [Frame, ...Frame[]];
  then?: LedPattern;
}

const OFF: LedPattern = { kind: "off" };

export class RgbLed {
  private readonly channels: Readonly<Record<Channel, DigitalOutput>>;
  private readonly litLevel: Level;
  private readonly darkLevel: Level;
  private readonly changes = new Listeners<LedState>();
  private state: LedState = { color: "off", pattern: OFF };
  private timer: ReturnType<typeof setTimeout> | undefined;

  constructor(port: GpioPort, options: RgbLedOptions) {
    this.litLevel = options.commonAnode ? 0 : 1;
    this.darkLevel = options.commonAnode ? 1 : 0;
    const { red, green, blue } = options.pins;
    this.channels = {
      red: port.output(red, this.darkLevel),
      green: port.output(green, this.darkLevel),
      blue: port.output(blue, this.darkLevel),
    };
  }

  /** Replace whatever is showing with `pattern`. Throws a RangeError, showing nothing new, if it is malformed. */
  show(pattern: LedPattern): void {
    const { frames, then } = scriptOf(pattern);
    clearTimeout(this.timer);
    this.play(pattern, frames, 0, then);
  }

  current(): LedState {
    return this.state;
  }

  /** Called whenever the lit colour or the pattern changes. Returns the unsubscribe. */
  onChange(listener: (state: LedState) => void): () => void {
    return this.changes.add(listener);
  }

  /** Stop any pattern, turn the LED off and give the pins back. */
  close(): void {
    this.show(OFF);
    for (const channel of CHANNELS) this.channels[channel].close();
    this.changes.clear();
  }

  private play(pattern: LedPattern, frames: Script["frames"], index: number, then: LedPattern | undefined): void {
    // `index` is always in range; the fallback only satisfies noUncheckedIndexedAccess.
    const frame = frames[index] ?? frames[0];
    this.light(frame.color, pattern);
    if (frame.ms === Infinity) return;
    this.timer = setTimeout(() => {
      const next = index + 1;
      if (next < frames.length) this.play(pattern, frames, next, then);
      else if (then) this.show(then);
      else this.play(pattern, frames, 0, then);
    }, frame.ms);
  }

  private light(color: Color, pattern: LedPattern): void {
    for (const channel of CHANNELS) {
      const level = LIT[color].includes(channel) ? this.litLevel : this.darkLevel;
      const output = this.channels[channel];
      // Only changed channels are written: fewer sysfs writes, and a timeline that shows what changed.
      if (output.read() !== level) output.write(level);
    }
    if (color === this.state.color && pattern === this.state.pattern) return;
    this.state = { color, pattern };
    this.changes.emit(this.state);
  }
}

/** The frames of a pattern, checking it whole (the follow-up of a flash included) before anything is shown. */
function scriptOf(pattern: LedPattern): Script {
  switch (pattern.kind) {
    case "off":
      return { frames: [{ color: "off", ms: Infinity }] };
    case "solid":
      return { frames: [{ color: checkColor(pattern.color), ms: Infinity }] };
    case "blink":
      return { frames: blink(pattern.color, pattern.periodMs) };
    case "flash": {
      if (!Number.isInteger(pattern.times) || pattern.times < 1) {
        throw new RangeError(`flash times must be a positive integer, got ${pattern.times}`);
      }
      scriptOf(pattern.then);
      const [lit, dark] = blink(pattern.color, pattern.periodMs);
      const more = Array.from({ length: pattern.times - 1 }, () => [lit, dark]).flat();
      return { frames: [lit, dark, ...more], then: pattern.then };
    }
    case "cycle": {
      checkMs(pattern.stepMs, "cycle stepMs");
      const [first, ...rest] = pattern.colors.map((color) => ({ color: checkColor(color), ms: pattern.stepMs }));
      if (!first) throw new RangeError("an LED cycle needs at least one colour");
      return { frames: [first, ...rest] };
    }
  }
}

/** One blink: lit for the first half of the period, dark for the rest. */
function blink(color: Color, periodMs: number): [Frame, Frame] {
  checkMs(periodMs, "blink periodMs");
  const lit = Math.ceil(periodMs / 2);
  return [
    { color: checkColor(color), ms: lit },
    { color: "off", ms: periodMs - lit },
  ];
}

function checkColor(color: Color): Color {
  if (!COLORS.includes(color)) throw new RangeError(`unknown LED colour "${String(color)}"; known: ${COLORS.join(", ")}`);
  return color;
}

function checkMs(ms: number, name: string): void {
  if (!Number.isFinite(ms) || ms <= 0) throw new RangeError(`${name} must be a positive number of milliseconds, got ${ms}`);
}
