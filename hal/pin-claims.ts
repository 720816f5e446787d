/**
 * What both backends share about claiming pins: a pin serves one device at a time (two devices
 * on one pin is a wiring or config mistake that must stop the start, not fight over the line),
 * an output remembers what it last drove, and closing the port releases every pin still held.
 */
import { GpioError } from "./errors.js";
import type { DebouncedInput } from "./debounce.js";
import type { DigitalOutput, Level } from "./gpio-port.js";
import { assertBcm } from "./pin-mapping.js";

/** An output as both backends hand it out; `drive` is the backend's write to the hardware. */
export class OutputPin implements DigitalOutput {
  private closed = false;

  constructor(
    private readonly bcm: number,
    private last: Level,
    private readonly drive: (level: Level) => void,
    private readonly release: () => void,
  ) {}

  write(level: Level): void {
    if (this.closed) throw new GpioError(`BCM ${this.bcm} was closed and can no longer be driven`, { bcm: this.bcm });
    this.drive(level);
    this.last = level;
  }

  read(): Level {
    return this.last;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.release();
  }
}

export type ClaimedPin = OutputPin | DebouncedInput;

export class PinClaims {
  private readonly pins = new Map<number, ClaimedPin>();

  /**
   * Claim `bcm` for one device. `open` touches the hardware and builds the pin; it receives the
   * `release` its pin must call on close. Nothing is recorded if `open` throws.
   */
  claim<T extends ClaimedPin>(bcm: number, open: (release: () => void) => T): T {
    assertBcm(bcm);
    if (this.pins.has(bcm)) {
      throw new GpioError(`BCM ${bcm} is already used by another device of this hub: give each device its own pin`, {
        bcm,
      });
    }
    const pin = open(() => this.pins.delete(bcm));
    this.pins.set(bcm, pin);
    return pin;
  }

  get(bcm: number): ClaimedPin | undefined {
    return this.pins.get(bcm);
  }

  closeAll(): void {
    // A copy: each close removes its pin from the map.
    for (const pin of [...this.pins.values()]) pin.close();
  }
}
