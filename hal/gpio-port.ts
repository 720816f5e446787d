/**
 * The GPIO port: the only door between the hub and its pins. Two backends implement it —
 * `onoff` (sysfs, on a Pi) and `mock` (in memory, for tests and the simulator) — and the
 * devices (Relay, RgbLed, Button) are written against it alone.
 */

/** A logic level on a pin. 1 = high (3.3 V), 0 = low. */
export type Level = 0 | 1;

export interface DigitalOutput {
  /** Drive the pin. Synchronous: a relay must be locked before the process goes on. */
  write(level: Level): void;
  /** The level last written. */
  read(): Level;
  /** Give the pin back. The kernel keeps driving the last level written. */
  close(): void;
}

export interface DigitalInput {
  /** The current (raw) level. */
  read(): Level;
  /**
   * Called with the new level after the input has been stable for the debounce time.
   * Chatter shorter than that is swallowed. Returns a function that stops the watch.
   */
  onChange(listener: (level: Level) => void): () => void;
  close(): void;
}

export interface InputOptions {
  /** Edges shorter than this are chatter, not a change. */
  debounceMs: number;
}

export interface GpioPort {
  /** Which backend this is, for the start-up log ("onoff" or "mock"). */
  readonly backend: "onoff" | "mock";
  /**
   * Claim `bcm` (the Broadcom GPIO number printed on pinout diagrams) as an output,
   * driven to `initial` at once: the caller passes the safe level (relay locked, LED off).
   */
  output(bcm: number, initial: Level): DigitalOutput;
  input(bcm: number, options: InputOptions): DigitalInput;
  /** Release every pin claimed through this port. */
  close(): void;
}
