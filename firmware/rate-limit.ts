/**
 * One token bucket per IQ for requests that are not a real attempt by a real user: malformed
 * requests, replays (a request id or counter already seen, a sealed command that does not open)
 * and requests naming a user who does not exist or has not activated. Each such request takes a
 * token before the hub spends anything on it (an error response, a log line, an audit event);
 * with the bucket empty it is dropped without a word.
 *
 * Why separate from the per-user Lockout:
 * - If junk counted against the user it names, anyone who can reach the broker could lock any
 *   user out by sending ten malformed requests (or replaying ten of the user's own old ones).
 *   Junk is never counted against a user.
 * - If the bucket gated every request, a flood of junk would keep the real users out: the same
 *   lock-out, one level up. So a request naming a real, activated user with a PIN or Code is
 *   never held back by the bucket: it goes to that user's own Lockout, which limits guessing at
 *   that user's PIN and nothing else.
 * The bucket lives in memory: a restart refills it, which an attacker cannot cause by sending
 * requests.
 */

export const RATE_LIMIT = {
  /** Junk answered in a burst (a client with a bug sees its errors) before the bucket is empty. */
  capacity: 20,
  /** Junk answered per second once the bucket is empty. */
  refillPerSecond: 1,
} as const;

export class RateLimiter {
  private tokens: number = RATE_LIMIT.capacity;
  private refilledAt: number;

  /** `now`: ms, injected so that tests run on fake time. */
  constructor(private readonly now: () => number = Date.now) {
    this.refilledAt = now();
  }

  /** Takes a token if one is left: true means handle the request, false means drop it. */
  take(): boolean {
    const now = this.now();
    // A clock that steps back (time sync on a Pi without RTC) adds nothing rather than taking away.
    const elapsedMs = Math.max(0, now - this.refilledAt);
    this.tokens = Math.min(RATE_LIMIT.capacity, this.tokens + (elapsedMs / 1000) * RATE_LIMIT.refillPerSecond);
    this.refilledAt = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}
