/**
 * Freshness on the IQ's own clock (protocol v2). Every sealed answer hands the app a new random
 * challenge; its next sealed command must carry one that is live: issued to that app less than
 * FRESHNESS.windowMs ago on the monotonic clock, and not used before. A relay that holds a command
 * back beyond the window delivers something the IQ refuses, whatever the wall clock says (a Pi
 * without RTC may not know the date at all). Challenges live in memory only: a restart voids every
 * one, which only costs the next command one extra round trip (`challenge_required`).
 *
 * A challenge the IQ knows but that is used or too old marks a command that was held back or
 * replayed (`challenge_stale`, recorded as a refusal); one it does not know is most likely from
 * before a restart, and only asks for a fresh one. Used and expired challenges are remembered a
 * while (FRESHNESS.rememberMs) for that distinction.
 */
import { randomBytes } from "node:crypto";

export const FRESHNESS = {
  /** How long a challenge is good for: the longest a captured command can be held back. */
  windowMs: 30_000,
  /** Challenges remembered per app, live or not: a few commands may be in flight at once. */
  perApp: 8,
  /** How long a used or expired challenge is still recognised as stale. */
  rememberMs: 10 * 60_000,
  /** Apps with live challenges, at most (memory on a Pi Zero; only apps whose box opened get one). */
  maxApps: 1_000,
} as const;

export type ChallengeVerdict = "fresh" | "stale" | "unknown";

interface Issued {
  /** Monotonic ms. */
  at: number;
  used: boolean;
}

export class Challenges {
  /** appId → challenge → when issued and whether used, oldest first. */
  private readonly live = new Map<string, Map<string, Issued>>();

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
    mine.set(challenge, { at: now, used: false });
    while (mine.size > FRESHNESS.perApp) mine.delete(mine.keys().next().value!);
    return challenge;
  }

  /** `fresh`, once, for a live challenge issued to `appId` (it is used up); else why not. */
  consume(appId: string, challenge: string): ChallengeVerdict {
    const issued = this.live.get(appId)?.get(challenge);
    if (issued === undefined) return "unknown";
    if (issued.used || this.monotonic() - issued.at > FRESHNESS.windowMs) return "stale";
    issued.used = true;
    return "fresh";
  }

  /** An app that is gone (PIN reset, removal) keeps no challenge; a factory reset clears all. */
  forget(appId?: string): void {
    if (appId === undefined) this.live.clear();
    else this.live.delete(appId);
  }

  private sweep(now: number): void {
    for (const [appId, mine] of this.live) {
      for (const [challenge, issued] of mine) if (now - issued.at > FRESHNESS.rememberMs) mine.delete(challenge);
      if (mine.size === 0) this.live.delete(appId);
    }
    // Still full: the oldest app's go first (they are the likeliest to be stale).
    while (this.live.size >= FRESHNESS.maxApps) this.live.delete(this.live.keys().next().value!);
  }
}
