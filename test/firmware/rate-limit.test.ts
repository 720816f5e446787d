import { timingSafeEqual } from "node:crypto";
import { describe, expect, it } from "vitest";
import { Lockout } from "../../firmware/lockout.js";
import { RATE_LIMIT, RateLimiter } from "../../firmware/rate-limit.js";
import { openStore, tempStateDir } from "./temp-state.js";

describe("RateLimiter", () => {
  it("answers a burst of `capacity`, then one request per refill interval", () => {
    const clock = { t: 0 };
    const limiter = new RateLimiter(() => clock.t);
    const burst = Array.from({ length: RATE_LIMIT.capacity + 5 }, () => limiter.take());
    expect(burst.filter(Boolean)).toHaveLength(RATE_LIMIT.capacity);
    clock.t += 1_000 / RATE_LIMIT.refillPerSecond;
    expect([limiter.take(), limiter.take()]).toEqual([true, false]);
  });

  it("refills to capacity and no further", () => {
    const clock = { t: 0 };
    const limiter = new RateLimiter(() => clock.t);
    while (limiter.take());
    clock.t += 24 * 3_600_000;
    const taken = Array.from({ length: RATE_LIMIT.capacity * 2 }, () => limiter.take()).filter(Boolean);
    expect(taken).toHaveLength(RATE_LIMIT.capacity);
  });

  it("neither drains nor breaks when the clock steps back", () => {
    const clock = { t: 10_000_000 };
    const limiter = new RateLimiter(() => clock.t);
    while (limiter.take());
    clock.t -= 3_600_000;
    expect(limiter.take()).toBe(false);
    clock.t += 1_000 / RATE_LIMIT.refillPerSecond;
    expect(limiter.take()).toBe(true);
  });
});

/**
 * The request path as the handler will run it, cut down to what the two limiters see: junk
 * (malformed, replayed, unknown or not activated user) takes a token or is dropped; a request
 * from a real, activated user goes to that user's own Lockout, whatever the bucket holds.
 */
function requestPath(options: { pins: ReadonlyMap<string, string>; limiter: RateLimiter; lockout: Lockout }) {
  const seenRequestIds = new Set<string>();
  const junk = () => (options.limiter.take() ? "rejected" : "dropped");
  return async (request: Record<string, unknown>) => {
    const { id, user, pin } = request;
    if (typeof id !== "string" || typeof user !== "string" || typeof pin !== "string") return junk();
    if (seenRequestIds.has(id)) return junk();
    const expected = options.pins.get(user);
    if (expected === undefined) return junk();
    seenRequestIds.add(id);
    const result = await options.lockout.attempt(user, () => samePin(pin, expected));
    return result.outcome === "accepted" ? "opened" : result.outcome;
  };
}

function samePin(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** 10,000 requests of every kind of junk, many naming the real user or replaying `replayedId`. */
function garbage(replayedId: string): Record<string, unknown>[] {
  return Array.from({ length: 10_000 }, (_, i) => {
    switch (i % 5) {
      case 0:
        return { id: `g${i}`, user: `nobody-${i}`, pin: "123456" };
      case 1:
        return { id: replayedId, user: "ana", pin: "483920" };
      case 2:
        return { id: `g${i}`, user: "ana" };
      case 3:
        return { id: i, user: "ana", pin: "000000" };
      default:
        return { nonsense: "x".repeat(i % 50) };
    }
  });
}

describe("junk against the rate limiter and a real user", () => {
  async function setup() {
    const clock = { t: Date.UTC(2025, 0, 1) };
    const lockout = new Lockout(await openStore(tempStateDir()), () => clock.t);
    const limiter = new RateLimiter(() => clock.t);
    const handle = requestPath({ pins: new Map([["ana", "483920"]]), limiter, lockout });
    // Her earlier request, which the junk replays.
    expect(await handle({ id: "r1", user: "ana", pin: "483920" })).toBe("opened");
    return { handle, lockout };
  }

  it("10,000 junk requests leave a real user able to open", async () => {
    const { handle, lockout } = await setup();
    const outcomes = new Map<string, number>();
    for (const request of garbage("r1")) {
      const outcome = await handle(request);
      outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
    }
    // The bucket emptied (junk is dropped) and no junk reached a user's lockout.
    expect(Object.fromEntries(outcomes)).toEqual({ rejected: RATE_LIMIT.capacity, dropped: 10_000 - RATE_LIMIT.capacity });
    expect(await handle({ id: "r2", user: "ana", pin: "483920" })).toBe("opened");
    expect(await lockout.check("ana")).toEqual({ allowed: true });
  });

  it("junk naming the user never counts as her wrong attempts", async () => {
    const { handle } = await setup();
    for (const request of garbage("r1")) await handle(request);
    // Four wrong PINs of her own still leave her free: the junk counted for nothing.
    for (let i = 0; i < 4; i++) expect(await handle({ id: `w${i}`, user: "ana", pin: "111222" })).toBe("wrong");
    expect(await handle({ id: "r3", user: "ana", pin: "483920" })).toBe("opened");
  });

  it("a real user's requests are evaluated while the bucket is empty", async () => {
    const { handle } = await setup();
    for (const request of garbage("r1").slice(0, 1_000)) await handle(request);
    expect(await handle({ nonsense: true })).toBe("dropped");
    expect(await handle({ id: "w1", user: "ana", pin: "111222" })).toBe("wrong");
    expect(await handle({ id: "r4", user: "ana", pin: "483920" })).toBe("opened");
  });
});
