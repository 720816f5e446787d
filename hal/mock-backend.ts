/**
 * The GpioPort without hardware: for tests, CI and the terminal simulator. It works at the level
 * of pins, like the real board: outputs record what was driven, inputs are set by the script
 * and pass through the same debounce as on a Pi (so tests drive time with fake timers).
 *
 * Scripting an input: `setInput(bcm, level)` sets the raw level. `press`/`release` are the same
 * for a button; they assume the usual wiring (pull-up, pressed = low) unless told
 * `{ activeLow: false }`. An input nobody has set idles high, as the installer's pull-up makes
 * it; set a level before the device claims the pin to start in another state (a floating or
 * stuck button, say).
 */
import { GpioError } from "./errors.js";
import { DebouncedInput } from "./debounce.js";
import type { DigitalInput, DigitalOutput, GpioPort, InputOptions, Level } from "./gpio-port.js";
import { Listeners } from "./listeners.js";
import { OutputPin, PinClaims } from "./pin-claims.js";
import { assertBcm } from "./pin-mapping.js";

export interface PinWrite {
  bcm: number;
  level: Level;
  /** `Date.now()` at the write (fake timers make it deterministic). */
  at: number;
}

export interface ButtonWiring {
  /** Pressed pulls the pin low (pull-up wiring). Default true. */
  activeLow?: boolean;
}

/** An input that nothing drives reads high: the installer configures a pull-up. */
const IDLE_INPUT: Level = 1;

export class MockGpio implements GpioPort {
  readonly backend = "mock";
  /** Every output write, claims included, in order. */
  readonly timeline: PinWrite[] = [];
  private readonly levels = new Map<number, Level>();
  private readonly writes = new Listeners<PinWrite>();
  private readonly claims = new PinClaims();

  output(bcm: number, initial: Level): DigitalOutput {
    return this.claims.claim(bcm, (release) => {
      this.drive(bcm, initial);
      return new OutputPin(bcm, initial, (level) => this.drive(bcm, level), release);
    });
  }

  input(bcm: number, options: InputOptions): DigitalInput {
    return this.claims.claim(bcm, (release) => {
      const level = this.levels.get(bcm) ?? IDLE_INPUT;
      this.levels.set(bcm, level);
      return new DebouncedInput(level, options.debounceMs, release);
    });
  }

  close(): void {
    this.claims.closeAll();
  }

  /** Set the raw level of an input pin (claimed or not yet). */
  setInput(bcm: number, level: Level): void {
    assertBcm(bcm);
    const pin = this.claims.get(bcm);
    if (pin instanceof OutputPin) throw new GpioError(`BCM ${bcm} is an output: the mock sets only inputs`, { bcm });
    this.levels.set(bcm, level);
    pin?.edge(level);
  }

  press(bcm: number, { activeLow = true }: ButtonWiring = {}): void {
    this.setInput(bcm, activeLow ? 0 : 1);
  }

  release(bcm: number, { activeLow = true }: ButtonWiring = {}): void {
    this.setInput(bcm, activeLow ? 1 : 0);
  }

  /**
   * Presses now and releases after `ms`, on setTimeout: under fake timers the test advances the
   * clock past `ms` (plus the debounce) to see the release.
   */
  hold(bcm: number, ms: number, wiring: ButtonWiring = {}): void {
    this.press(bcm, wiring);
    setTimeout(() => this.release(bcm, wiring), ms);
  }

  /** The level of a pin: last driven for an output, last set for an input. */
  level(bcm: number): Level {
    const level = this.levels.get(bcm);
    if (level === undefined) throw new GpioError(`BCM ${bcm} was never claimed or set on the mock GPIO`, { bcm });
    return level;
  }

  /** Called after every output write, e.g. for the simulator to redraw. Returns the unsubscribe. */
  onWrite(listener: (write: PinWrite) => void): () => void {
    return this.writes.add(listener);
  }

  private drive(bcm: number, level: Level): void {
    this.levels.set(bcm, level);
    const write = { bcm, level, at: Date.now() };
    this.timeline.push(write);
    this.writes.emit(write);
  }
}
