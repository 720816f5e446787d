/** How long and how large requests may be, and how many refusals are recorded; one place for the handler and the sealed-command path. */
export const REQUESTS = {
  /** Request ids are remembered this long: a repeat within it gets the first answer again. */
  rememberMs: 24 * 60 * 60_000,
  /** Largest request accepted. */
  maxBytes: 256 * 1024,
  /** Requests waiting for the handler; more are dropped (a flood must not exhaust a Pi Zero's memory). */
  maxQueued: 100,
  /** A command lives at most this long. */
  maxCommandLifetimeMs: 5 * 60_000,
  /** Phones and IQs disagree on the time by seconds, laptops by more: expiry allows this much. */
  clockSkewMs: 60_000,
} as const;

/** Refusals of requests that proved no app key, recorded as audit events: 30 in a burst, then 1 a minute. */
export const REFUSAL_EVENTS = { capacity: 30, refillPerSecond: 1 / 60 } as const;
