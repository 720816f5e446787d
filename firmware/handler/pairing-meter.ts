/**
 * How many pairing runs the IQ starts (each costs a CPace computation, ~3 ms here and several
 * times that on a Pi Zero). One budget for everything would let a stranger who sends starts faster
 * than it refills keep everyone out (issue 7, "onboarding blocked"). So claim runs have a budget of
 * their own, each pending user has one, and a global one bounds the CPU whatever the mix:
 * a flood aimed at Bob's activation leaves the Owner's claim and Carol's activation alone, and a
 * stranger must outrun the global budget (5 a second) to delay everyone. Without a key, nothing
 * finer can tell the Owner's start from a stranger's; a broker ACL can (security.md).
 */
import { RateLimiter, type BucketSize } from "../rate-limit.js";

export const PAIRING_METER = {
  /** Per kind of run: the claim, or one user's activations and second devices. */
  perKey: { capacity: 5, refillPerSecond: 1 },
  /** All runs together. */
  global: { capacity: 20, refillPerSecond: 5 },
  /** Users with a budget of their own in memory; past it the oldest go (a full bucket is no loss). */
  maxKeys: 256,
} as const satisfies Record<string, BucketSize | number>;

export class PairingMeter {
  private readonly global: RateLimiter;
  private readonly perKey = new Map<string, RateLimiter>();

  constructor(private readonly now: () => number) {
    this.global = new RateLimiter(now, PAIRING_METER.global);
  }

  /** Takes a token for a run of `kind` (for `userId`): false means drop the start unanswered. */
  take(kind: unknown, userId: unknown): boolean {
    const key = kind === "claim" ? "claim" : `user:${typeof userId === "string" ? userId.slice(0, 64) : ""}`;
    let bucket = this.perKey.get(key);
    if (bucket === undefined) {
      bucket = new RateLimiter(this.now, PAIRING_METER.perKey);
      this.perKey.set(key, bucket);
      if (this.perKey.size > PAIRING_METER.maxKeys) this.perKey.delete(this.perKey.keys().next().value!);
    }
    return bucket.take() && this.global.take();
  }
}
