/**
 * Whether the system clock can be trusted for time-bound Codes. Most Pis have no RTC: after boot
 * the clock shows the last saved time until NTP synchronises it. Start-up must not wait for that
 * (an offline boot would keep the door shut), so the hub asks, reports, and keeps asking.
 */
import { execFile } from "node:child_process";
import { access } from "node:fs/promises";
import { promisify } from "node:util";
import type { Logger } from "./log.js";

/** systemd-timesyncd creates this file once it has synchronised the clock. */
export const TIMESYNC_FLAG_FILE = "/run/systemd/timesync/synchronized";
const COMMAND_TIMEOUT_MS = 2_000;
const POLL_INTERVAL_MS = 30_000;

/** Runs a command and resolves with its stdout; rejects when it is absent, fails or times out. */
export type CommandRunner = (file: string, args: readonly string[], timeoutMs: number) => Promise<string>;

const execFileAsync = promisify(execFile);

export const runCommand: CommandRunner = async (file, args, timeoutMs) =>
  (await execFileAsync(file, [...args], { timeout: timeoutMs, encoding: "utf8" })).stdout;

export interface ClockSyncOptions {
  /**
   * Declares the clock synchronised without asking: laptops and CI, where nothing can say so.
   * The config key `clock.assumeSynced` (IQ_HUB_CLOCK__ASSUME_SYNCED=true) feeds it.
   */
  assumeSynced?: boolean;
  flagFile?: string;
  run?: CommandRunner;
}

/**
 * timesyncd's flag file first (no process to start); else timedatectl, which also knows chrony
 * and ntpd through the kernel's sync flag. Anything that cannot answer counts as not synchronised.
 */
export async function isClockSynced(options: ClockSyncOptions = {}): Promise<boolean> {
  if (options.assumeSynced === true) return true;
  try {
    await access(options.flagFile ?? TIMESYNC_FLAG_FILE);
    return true;
  } catch {
    // Not synchronised yet, or not timesyncd: ask timedatectl.
  }
  try {
    const run = options.run ?? runCommand;
    const answer = await run("timedatectl", ["show", "--property=NTPSynchronized", "--value"], COMMAND_TIMEOUT_MS);
    return answer.trim() === "yes";
  } catch {
    // No timedatectl (macOS, a container) or no systemd behind it.
    return false;
  }
}

/** Where the last trusted time survives restarts; the caller provides it (the store). */
export interface TrustedTimeStore {
  load(): Promise<number | undefined>;
  save(ms: number): Promise<void>;
}

export interface TrustedClockOptions {
  store: TrustedTimeStore;
  log: Logger;
  /** Default: isClockSynced() with no override. */
  checkSynced?: () => Promise<boolean>;
  /** Default: Date.now. */
  now?: () => number;
}

/**
 * The clock's synchronisation state plus the last time read while it was synchronised. That time
 * only moves forward, across restarts too: a clock that is behind it is certainly wrong.
 */
export class TrustedClock {
  #synced = false;
  #lastTrusted: number | undefined;
  readonly #store: TrustedTimeStore;
  readonly #log: Logger;
  readonly #checkSynced: () => Promise<boolean>;
  readonly #now: () => number;

  private constructor(options: TrustedClockOptions, lastTrusted: number | undefined) {
    this.#store = options.store;
    this.#log = options.log;
    this.#checkSynced = options.checkSynced ?? (() => isClockSynced());
    this.#now = options.now ?? Date.now;
    this.#lastTrusted = lastTrusted;
  }

  /** Loads the last trusted time and checks the clock once. */
  static async open(options: TrustedClockOptions): Promise<TrustedClock> {
    const clock = new TrustedClock(options, await options.store.load());
    await clock.check();
    return clock;
  }

  get synced(): boolean {
    return this.#synced;
  }

  /** ms since the epoch, or undefined until the clock has once been synchronised. */
  get lastTrusted(): number | undefined {
    return this.#lastTrusted;
  }

  /** Asks once. A synchronised clock ahead of the last trusted time moves it forward and saves it. */
  async check(): Promise<boolean> {
    const synced = await this.#checkSynced();
    this.#synced = synced;
    const now = this.#now();
    if (synced && (this.#lastTrusted === undefined || now > this.#lastTrusted)) {
      this.#lastTrusted = now;
      try {
        await this.#store.save(now);
      } catch (error) {
        // The clock is fine; only its memory across a restart is stale.
        this.#log.warn("cannot save the last trusted time", { error });
      }
    }
    return synced;
  }

  /** Checks every `intervalMs` and calls `onChange` when the state flips. Returns a function that stops. */
  watch(onChange: (synced: boolean) => void, intervalMs = POLL_INTERVAL_MS): () => void {
    let timer: NodeJS.Timeout | undefined;
    let stopped = false;
    const poll = async () => {
      const before = this.#synced;
      try {
        const synced = await this.check();
        if (synced !== before && !stopped) onChange(synced);
      } catch (error) {
        this.#log.warn("clock poll failed", { error });
      }
      schedule();
    };
    // The next check waits for the last one: a slow timedatectl never piles up.
    const schedule = () => {
      if (stopped) return;
      timer = setTimeout(() => void poll(), intervalMs);
      timer.unref();
    };
    schedule();
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }
}
