/** How long and how large requests may be, and how many refusals are recorded; one place for the handler and the sealed-command path. */
export const REQUESTS = {
  /** Answers are remembered this long: an exact repeat within it gets the first answer again. */
  rememberMs: 24 * 60 * 60_000,
  /** …and at most this many, in at most this many bytes (RAM on a Pi Zero). */
  maxRemembered: 2_000,
  maxRememberedBytes: 2 * 1024 * 1024,
  /** Largest request accepted. */
  maxBytes: 256 * 1024,
  /**
   * Deepest nesting of a request's JSON (a backup, the deepest argument, needs 4). JSON.parse
   * takes any depth, but what walks the value recursively afterwards (JSON.stringify of the
   * arguments for the answer memory) overflows the stack at a few thousand.
   */
  maxDepth: 16,
  /** Requests waiting for the handler; more are dropped (a flood must not exhaust a Pi Zero's memory). */
  maxQueued: 100,
  /** An envelope's expiresAt may lie at most this far ahead. */
  maxCommandLifetimeMs: 5 * 60_000,
  /** Phones and IQs disagree on the time by seconds, laptops by more: expiry allows this much. */
  clockSkewMs: 60_000,
} as const;

/** Refusals of requests that proved no app key, recorded as audit events: 30 in a burst, then 1 a minute. */
export const REFUSAL_EVENTS = { capacity: 30, refillPerSecond: 1 / 60 } as const;

/**
 * Budgets for what anyone may send without a key, taken before a request is queued; beyond them
 * requests are dropped unanswered. Reads (`status`, `events.list`): a client polling once a second
 * never meets the limit. Pairing starts: pairing-meter.ts.
 */
export const METERS = {
  reads: { capacity: 20, refillPerSecond: 5 },
} as const;
