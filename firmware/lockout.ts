/**
 * Wrong PINs and Codes, counted per user on this IQ. After `wrongEntryLimit` wrong attempts in
 * a row the user is blocked for a while, and every further wrong attempt blocks again for twice
 * as long; after `disableAfter` in a row the credential is disabled until the Owner resets the
 * PIN. With the defaults an attacker gets at most 10 guesses between two successes of the real
 * user, the last six spread over a quarter of an hour (blocks of 30, 60, 120, 240 and 480 s).
 *
 * Decisions:
 * - A success resets the count in a row (it is what the disabling counts) and lifts a block,
 *   but not the doubling: someone guessing between the real user's openings keeps meeting
 *   longer blocks. The doubling is forgotten after `forgetBlocksAfterMs` without a wrong attempt,
 *   so a user who mistypes now and then is never punished for last month. The count in a row is
 *   never forgotten with time, or an attacker could make 9 guesses every day.
 * - The state lives in the `lockout` sublevel, written synced before the answer goes out: a
 *   restart (or pulling the plug) forgives nothing.
 * - Only real attempts count: a request that names a real, activated user and carries a PIN or
 *   Code. Garbage, replays and unknown users go to the per-IQ RateLimiter instead, so nobody can
 *   lock a user out by spamming the IQ with junk.
 * - Everything for one user runs one at a time, so parallel requests cannot all pass the check
 *   before the first failure is written. `attempt` does check, verify and record in one turn.
 * - Times come from the injected clock (ms since the epoch). A block ends at a wall-clock time;
 *   a clock that jumps forward at time sync shortens it, which costs an attacker nothing new
 *   since the count in a row still disables.
 */
import type { Store, StoreOp } from "./store.js";

export const LOCKOUT = {
  /**
   * Wrong attempts in a row before the first block: the Matter Door Lock cluster's
   * WrongCodeEntryLimit (attribute 0x0030, 1 to 255; Application Cluster Specification 5.2).
   */
  wrongEntryLimit: 5,
  /**
   * The first block: Matter's UserCodeTemporaryDisableTime (attribute 0x0031, 1 to 255 s). Matter
   * keeps it fixed and lock-wide; here it is per user and doubles with each block, beyond the
   * 255 s a Matter attribute can hold.
   */
  firstBlockMs: 30_000,
  maxBlockMs: 60 * 60_000,
  /** Wrong attempts in a row after which only the Owner's PIN reset lets the user in again. */
  disableAfter: 10,
  forgetBlocksAfterMs: 24 * 60 * 60_000,
} as const;

/**
 * Keys ending in this are pairing counters: throttled by the same doubling blocks, never
 * disabled. A pending user's activation can be tried by anyone who knows the user id; a disable
 * there would let a stranger lock the user out until the Owner acts. The bound on guessing the
 * initial PIN comes from its lifetime instead (docs/security.md).
 */
export const PAIR_SUFFIX = "/pair";

export type LockoutStatus =
  | { allowed: true }
  | { allowed: false; reason: "blocked"; until: number }
  | { allowed: false; reason: "disabled" };

export type LockedStatus = Exclude<LockoutStatus, { allowed: true }>;

export type AttemptResult =
  /** The PIN or Code was right. */
  | { outcome: "accepted" }
  /** Blocked or disabled: the PIN or Code was not even looked at. */
  | { outcome: "refused"; status: LockedStatus }
  /**
   * The PIN or Code was wrong; `status` is the state after counting it, `triesLeft` how many
   * more wrong ones in a row the user may make before being blocked (0: blocked or disabled now).
   */
  | { outcome: "wrong"; status: LockoutStatus; triesLeft: number };

/** What the `lockout` sublevel holds per user; a user without a record has a clean slate. */
interface LockoutRecord {
  failuresInARow: number;
  /** Blocks imposed since the doubling was last forgotten: the exponent of the next block. */
  blocks: number;
  blockedUntil: number;
  lastFailureAt: number;
  disabled: boolean;
}

const CLEAN: LockoutRecord = { failuresInARow: 0, blocks: 0, blockedUntil: 0, lastFailureAt: 0, disabled: false };

export class Lockout {
  private readonly queues = new Map<string, Promise<unknown>>();

  constructor(
    private readonly store: Store,
    private readonly now: () => number = Date.now,
  ) {}

  /** Whether the user may try a PIN or Code now. */
  check(userId: string): Promise<LockoutStatus> {
    return this.serial(userId, async () => statusOf(await this.load(userId), this.now()));
  }

  /**
   * Checks, runs `verify` only if the user may try, and counts the result, all in one turn for
   * this user. `verify` answers whether the PIN or Code is right; if it throws, nothing is counted
   * and the error propagates, so it must not throw for a merely wrong PIN or Code.
   */
  attempt(userId: string, verify: () => boolean | Promise<boolean>): Promise<AttemptResult> {
    return this.serial(userId, async (): Promise<AttemptResult> => {
      const record = await this.load(userId);
      const status = statusOf(record, this.now());
      if (!status.allowed) return { outcome: "refused", status };
      // A wrong attempt that could not be counted would be a free guess (a right PIN costs no
      // write, so `whoami` would tell them apart): with the store not writable, no attempt at all.
      await this.store.requireWritable();
      if (await verify()) {
        await this.succeed(userId, record);
        return { outcome: "accepted" };
      }
      const next = await this.fail(userId, record);
      return { outcome: "wrong", status: statusOf(next, this.now()), triesLeft: triesLeft(next, this.now()) };
    });
  }

  /**
   * Counts a wrong attempt that `attempt` could not wrap (a CPace run whose key confirmation
   * failed). Returns the new status so the caller can record a "lockout" event when it changed.
   * Such a caller must itself allow one run per user at a time, or parallel runs all pass `check`.
   */
  recordFailure(userId: string): Promise<LockoutStatus> {
    return this.serial(userId, async () => statusOf(await this.fail(userId, await this.load(userId)), this.now()));
  }

  recordSuccess(userId: string): Promise<void> {
    return this.serial(userId, async () => this.succeed(userId, await this.load(userId)));
  }

  /** The Owner reset the user's PIN: a clean slate, doubling included. */
  clear(userId: string): Promise<void> {
    return this.serial(userId, () => this.store.commit([this.clearOp(userId)]));
  }

  /** The same as `clear`, for committing in one batch with the new PIN. */
  clearOp(userId: string): StoreOp {
    assertUserId(userId);
    return { type: "del", in: "lockout", key: userId };
  }

  private async fail(userId: string, record: LockoutRecord): Promise<LockoutRecord> {
    const next = afterFailure(record, this.now(), !userId.endsWith(PAIR_SUFFIX));
    await this.store.put("lockout", userId, next);
    return next;
  }

  private async succeed(userId: string, record: LockoutRecord): Promise<void> {
    // The common case, a user with a clean slate opening the door, costs no write.
    if (record.failuresInARow === 0 && record.blockedUntil === 0) return;
    const next: LockoutRecord = { ...record, failuresInARow: 0, blockedUntil: 0 };
    await (next.blocks === 0 && !next.disabled
      ? this.store.del("lockout", userId)
      : this.store.put("lockout", userId, next));
  }

  private async load(userId: string): Promise<LockoutRecord> {
    return parseRecord(await this.store.get("lockout", userId));
  }

  /** Async so that a bad user id is a rejected promise, like every other failure here. */
  private async serial<T>(userId: string, task: () => Promise<T>): Promise<T> {
    assertUserId(userId);
    const result = (this.queues.get(userId) ?? Promise.resolve()).then(task);
    const tail = result.catch(() => undefined);
    this.queues.set(userId, tail);
    void tail.then(() => {
      if (this.queues.get(userId) === tail) this.queues.delete(userId);
    });
    return result;
  }
}

function afterFailure(record: LockoutRecord, now: number, mayDisable: boolean): LockoutRecord {
  const failuresInARow = record.failuresInARow + 1;
  const forgotten = now - record.lastFailureAt >= LOCKOUT.forgetBlocksAfterMs;
  const blocks = forgotten ? 0 : record.blocks;
  const next: LockoutRecord = { failuresInARow, blocks, blockedUntil: 0, lastFailureAt: now, disabled: record.disabled };
  if (mayDisable && failuresInARow >= LOCKOUT.disableAfter) return { ...next, disabled: true };
  if (failuresInARow < LOCKOUT.wrongEntryLimit) return next;
  const blockMs = Math.min(LOCKOUT.firstBlockMs * 2 ** blocks, LOCKOUT.maxBlockMs);
  return { ...next, blocks: blocks + 1, blockedUntil: now + blockMs };
}

/**
 * Wrong attempts left before a block. Past the first block every wrong attempt blocks again, so
 * a user still allowed after a failure is always below the limit.
 */
function triesLeft(record: LockoutRecord, now: number): number {
  return statusOf(record, now).allowed ? LOCKOUT.wrongEntryLimit - record.failuresInARow : 0;
}

function statusOf(record: LockoutRecord, now: number): LockoutStatus {
  if (record.disabled) return { allowed: false, reason: "disabled" };
  if (record.blockedUntil > now) return { allowed: false, reason: "blocked", until: record.blockedUntil };
  return { allowed: true };
}

/** Only this module writes the sublevel; a record it cannot read fails closed (disabled). */
function parseRecord(value: unknown): LockoutRecord {
  if (value === undefined) return CLEAN;
  const r = value as Partial<Record<keyof LockoutRecord, unknown>>;
  const counts = [r.failuresInARow, r.blocks, r.blockedUntil, r.lastFailureAt];
  if (!counts.every((n) => Number.isSafeInteger(n) && (n as number) >= 0) || typeof r.disabled !== "boolean") {
    return { ...CLEAN, disabled: true };
  }
  return value as LockoutRecord;
}

function assertUserId(userId: string): void {
  if (typeof userId !== "string" || userId.length === 0 || userId.length > 128) {
    throw new TypeError("a user id is a string of 1 to 128 characters");
  }
}
