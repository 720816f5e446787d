/**
 * The reset button, as gestures: `down`, a `hold` per threshold reached while still held,
 * `release` with how long it was held, and `shortPress`. Decisions belong to whoever listens,
 * and should act on release: a hold threshold only says "letting go now would mean this".
 * Held time and thresholds both count from the debounced press, so `hold(T)` has been emitted
 * before a `release` exactly when its heldMs ≥ T.
 *
 * A press already held when the hub starts is ignored until the button has been released once.
 * Without a pull-up (config.txt line missing) the pin floats and may read as held forever; a
 * hub that took that as a 10-second hold would factory-reset itself on every boot.
 */
import { EventEmitter } from "node:events";
import type { DigitalInput, GpioPort, Level } from "./gpio-port.js";

export interface ButtonOptions {
  pin: number;
  /** Pressed = low, with a pull-up (the usual wiring, and the default). */
  activeLow?: boolean;
  debounceMs: number;
  /** Each fires one `hold` event when the button has been held that long. */
  holdThresholdsMs: number[];
  /** A release before this is also a `shortPress`. */
  shortPressMaxMs: number;
}

export interface ButtonEvents {
  down: [];
  hold: [thresholdMs: number];
  release: [heldMs: number];
  shortPress: [];
}

export class Button extends EventEmitter<ButtonEvents> {
  private readonly input: DigitalInput;
  private readonly pressedLevel: Level;
  private readonly stopWatching: () => void;
  private ignoring: boolean;
  /** `performance.now()` at the press: monotonic, so the clock sync at boot cannot fake a long hold. */
  private downAt: number | undefined;
  private holdTimers: ReturnType<typeof setTimeout>[] = [];

  constructor(
    port: GpioPort,
    private readonly options: ButtonOptions,
  ) {
    super();
    for (const ms of [...options.holdThresholdsMs, options.shortPressMaxMs]) {
      if (!Number.isFinite(ms) || ms <= 0) throw new RangeError(`button times must be positive milliseconds, got ${ms}`);
    }
    this.pressedLevel = (options.activeLow ?? true) ? 0 : 1;
    this.input = port.input(options.pin, { debounceMs: options.debounceMs });
    this.ignoring = this.input.read() === this.pressedLevel;
    this.stopWatching = this.input.onChange((level) => (level === this.pressedLevel ? this.pressed() : this.released()));
  }

  /** True while a press that was already held at start has not been released yet. */
  get ignoringUntilReleased(): boolean {
    return this.ignoring;
  }

  close(): void {
    this.cancelHolds();
    this.stopWatching();
    this.input.close();
  }

  private pressed(): void {
    if (this.ignoring) return;
    this.downAt = performance.now();
    this.emit("down");
    this.holdTimers = this.options.holdThresholdsMs.map((ms) => setTimeout(() => this.emit("hold", ms), ms));
  }

  private released(): void {
    if (this.ignoring) {
      this.ignoring = false;
      return;
    }
    if (this.downAt === undefined) return;
    const heldMs = Math.round(performance.now() - this.downAt);
    this.downAt = undefined;
    this.cancelHolds();
    this.emit("release", heldMs);
    if (heldMs < this.options.shortPressMaxMs) this.emit("shortPress");
  }

  private cancelHolds(): void {
    for (const timer of this.holdTimers) clearTimeout(timer);
    this.holdTimers = [];
  }
}
