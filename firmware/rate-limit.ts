/**
 * Token buckets for what is not a real attempt by a real user. The request handler keeps one per
 * IQ for junk: every web Code takes a token *before* it is checked (that caps how fast anyone can
 * guess Codes, and how often random Codes read as a wrong PIN), and every refusal of a request
 * that proved no app key (malformed, replayed, unknown user or app, expired …) takes one before
 * the hub answers, records or remembers it. With the bucket empty such requests are dropped
 * without a word. A second, slower bucket caps how many junk refusals become audit events.
 *
 * Why separate from the per-user Lockout:
 * - If junk counted against the user it names, anyone who can reach the broker could lock any
 *   user out by sending ten malformed requests (or replaying ten of the user's own old ones).
 *   Junk is never counted against a user.
 * - A sealed command whose box opens proved the app's key: it never waits for a token, so a flood
 *   of junk cannot keep a user's phone out; its wrong PINs go to that user's own Lockout. A flood
 *   does hold back web Codes (every web request of the IQ) while it lasts: that is the price of
 *   bounding Code guessing, and the phone path stays open.
 * The buckets live in memory: a restart refills them, which an attacker cannot cause by sending
 * requests.
 */

export const RATE_LIMIT = {
  /** Junk answered in a burst (a client with a bug sees its errors) before the bucket is empty. */
  capacity: 20,
  /** Junk answered per second once the bucket is empty. */
  refillPerSecond: 1,
} as const;

export interface BucketSize {
  capacity: number;
  refillPerSecond: number;
}

export class RateLimiter {
  private tokens: number;
  private refilledAt: number;

  /** `now`: ms, injected so that tests run on fake time. */
  constructor(
    private readonly now: () => number = Date.now,
    private readonly size: BucketSize = RATE_LIMIT,
  ) {
    this.tokens = size.capacity;
    this.refilledAt = now();
  }

  /** Takes a token if one is left: true means handle the request, false means drop it. */
  take(): boolean {
    const now = this.now();
    // A clock that steps back (time sync on a Pi without RTC) adds nothing rather than taking away.
    const elapsedMs = Math.max(0, now - this.refilledAt);
    this.tokens = Math.min(this.size.capacity, this.tokens + (elapsedMs / 1000) * this.size.refillPerSecond);
    this.refilledAt = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}
