/**
 * Freshness on the IQ's own clock (protocol v2). Every sealed answer hands the app a new random
 * challenge; its next sealed command must carry one that is live: issued to that app less than
 * FRESHNESS.windowMs ago on the monotonic clock, and not used before. A relay that holds a command
 * back beyond the window delivers something the IQ refuses, whatever the wall clock says (a Pi
 * without RTC may not know the date at all). Challenges live in memory only: a restart voids every
 * one, which only costs the next command one extra round trip (`challenge_required`).
 */
import { randomBytes } from "node:crypto";

export const FRESHNESS = {
  /** How long a challenge is good for: the longest a captured command can be held back. */
  windowMs: 30_000,
  /** Live challenges per app: a few commands may be in flight at once (an app with two windows). */
  perApp: 4,
  /** Apps with live challenges, at most (memory on a Pi Zero; only apps whose box opened get one). */
  maxApps: 1_000,
} as const;

export class Challenges {
  /** appId → challenge → issued at (monotonic ms), oldest first. */
  private readonly live = new Map<string, Map<string, number>>();

  constructor(private readonly monotonic: () => number = () => performance.now()) {}

  /** A new challenge for `appId`; the oldest of its live ones goes if it has too many. */
  issue(appId: string): string {
    const now = this.monotonic();
    let mine = this.live.get(appId);
    if (mine === undefined) {
      this.sweep(now);
      mine = new Map();
      this.live.set(appId, mine);
    }
    const challenge = randomBytes(16).toString("base64url");
    mine.set(challenge, now);
    while (mine.size > FRESHNESS.perApp) mine.delete(mine.keys().next().value!);
    return challenge;
  }

  /** True, once, for a live challenge issued to `appId`. */
  consume(appId: string, challenge: string | undefined): boolean {
    const mine = this.live.get(appId);
    if (challenge === undefined || mine === undefined) return false;
    const issuedAt = mine.get(challenge);
    if (issuedAt === undefined) return false;
    mine.delete(challenge);
    return this.monotonic() - issuedAt <= FRESHNESS.windowMs;
  }

  /** An app that is gone (PIN reset, removal) keeps no challenge; a factory reset clears all. */
  forget(appId?: string): void {
    if (appId === undefined) this.live.clear();
    else this.live.delete(appId);
  }

  private sweep(now: number): void {
    for (const [appId, mine] of this.live) {
      for (const [challenge, issuedAt] of mine) if (now - issuedAt > FRESHNESS.windowMs) mine.delete(challenge);
      if (mine.size === 0) this.live.delete(appId);
    }
    // Still full of live ones: the oldest app's go first (they are the likeliest to be stale).
    while (this.live.size >= FRESHNESS.maxApps) this.live.delete(this.live.keys().next().value!);
  }
}
