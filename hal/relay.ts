/**
 * The door-lock relay. Locked is its safe state: the pin is claimed locked, every pulse ends
 * locked, and close() locks before giving the pin back. How the board is wired decides which
 * level is locked: an active-high board switches on high (so low = locked), an active-low
 * board (most opto-isolated modules) switches on low (so high = locked).
 */
import type { DigitalOutput, GpioPort, Level } from "./gpio-port.js";
import { Listeners } from "./listeners.js";

export interface RelayOptions {
  pin: number;
  activeLow: boolean;
  /** How long a pulse keeps the door unlocked, unless pulse() is given another time. */
  pulseMs: number;
}

interface Pulse {
  timer: ReturnType<typeof setTimeout>;
  /** `performance.now()` when the pulse ends: monotonic, so a clock sync at boot cannot stretch it. */
  endsAt: number;
  done: Promise<void>;
  finish: () => void;
}

export class Relay {
  private readonly output: DigitalOutput;
  private readonly lockedLevel: Level;
  private readonly unlockedLevel: Level;
  private readonly changes = new Listeners<boolean>();
  private activePulse: Pulse | undefined;
  private closed = false;

  constructor(
    port: GpioPort,
    private readonly options: RelayOptions,
  ) {
    assertDuration(options.pulseMs, "pulseMs");
    this.lockedLevel = options.activeLow ? 1 : 0;
    this.unlockedLevel = options.activeLow ? 0 : 1;
    this.output = port.output(options.pin, this.lockedLevel);
  }

  get isUnlocked(): boolean {
    return this.output.read() !== this.lockedLevel;
  }

  /**
   * Unlock for `ms`, then lock. A pulse during a pulse extends it (never shortens it). While the
   * door is held open (Office Mode) a pulse changes nothing. Resolves when the pulse ends: locked
   * again, or taken over by hold(), lock() or close().
   */
  pulse(ms: number = this.options.pulseMs): Promise<void> {
    assertDuration(ms, "pulse time");
    if (this.isUnlocked && !this.activePulse) return Promise.resolve();
    const endsAt = performance.now() + ms;
    if (this.activePulse) {
      if (endsAt > this.activePulse.endsAt) {
        clearTimeout(this.activePulse.timer);
        this.activePulse.timer = setTimeout(() => this.lock(), ms);
        this.activePulse.endsAt = endsAt;
      }
      return this.activePulse.done;
    }
    // Unlock first: if the write fails, no timer is left behind to write again later.
    this.drive(false);
    let finish = (): void => {};
    const done = new Promise<void>((resolve) => (finish = resolve));
    this.activePulse = { timer: setTimeout(() => this.lock(), ms), endsAt, done, finish };
    return done;
  }

  /** Keep the door unlocked (Office Mode) until lock(). */
  hold(): void {
    this.endPulse();
    this.drive(false);
  }

  /** The safe state, now. Cancels a pending pulse. */
  lock(): void {
    this.endPulse();
    this.drive(true);
  }

  /** Called with `isUnlocked` whenever it changes. Returns the unsubscribe. */
  onChange(listener: (unlocked: boolean) => void): () => void {
    return this.changes.add(listener);
  }

  /** Lock, then give the pin back (the kernel keeps driving the locked level). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.lock();
    this.output.close();
    this.changes.clear();
  }

  private endPulse(): void {
    if (!this.activePulse) return;
    clearTimeout(this.activePulse.timer);
    this.activePulse.finish();
    this.activePulse = undefined;
  }

  /** Always writes (lock() must reassert the safe level), but reports only real changes. */
  private drive(locked: boolean): void {
    const wasUnlocked = this.isUnlocked;
    this.output.write(locked ? this.lockedLevel : this.unlockedLevel);
    if (this.isUnlocked !== wasUnlocked) this.changes.emit(this.isUnlocked);
  }
}

function assertDuration(ms: number, name: string): void {
  if (!Number.isFinite(ms) || ms <= 0) throw new RangeError(`${name} must be a positive number of milliseconds, got ${ms}`);
}
