/**
 * The one debounced input both backends hand out. The backend feeds it raw edges; it reports a
 * new level only once the pin has held that level for `debounceMs`. A contact that bounces, or
 * a glitch shorter than the debounce time, is never seen by the devices.
 */
import type { DigitalInput, Level } from "./gpio-port.js";
import { Listeners } from "./listeners.js";

export class DebouncedInput implements DigitalInput {
  private raw: Level;
  private stable: Level;
  private settling: ReturnType<typeof setTimeout> | undefined;
  private closed = false;
  private readonly changes = new Listeners<Level>();

  /**
   * @param initial the raw level read when the pin was claimed (taken as stable)
   * @param release called once on close, to give the pin back to its backend
   */
  constructor(
    initial: Level,
    private readonly debounceMs: number,
    private readonly release: () => void,
  ) {
    if (!Number.isFinite(debounceMs) || debounceMs < 0) {
      throw new RangeError(`debounceMs must be a non-negative number of milliseconds, got ${debounceMs}`);
    }
    this.raw = initial;
    this.stable = initial;
  }

  /** A raw edge from the backend. Each edge restarts the wait: the level must be stable *since the last edge*. */
  edge(level: Level): void {
    if (this.closed || level === this.raw) return;
    this.raw = level;
    clearTimeout(this.settling);
    this.settling = undefined;
    // Back at the stable level before the wait ran out: that was chatter, nothing to report.
    if (level === this.stable) return;
    this.settling = setTimeout(() => {
      this.settling = undefined;
      this.stable = level;
      this.changes.emit(level);
    }, this.debounceMs);
  }

  read(): Level {
    return this.raw;
  }

  onChange(listener: (level: Level) => void): () => void {
    return this.changes.add(listener);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.settling);
    this.changes.clear();
    this.release();
  }
}
