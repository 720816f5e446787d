import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { Audit, AuditEventInput } from "../../../firmware/audit.js";
import { createLogger } from "../../../firmware/log.js";
import { CUT_SHORT_MS, SessionWatch } from "../../../firmware/transports/session-watch.js";

function watch() {
  const events: AuditEventInput[] = [];
  const logs: string[] = [];
  const contested: boolean[] = [];
  const audit = { record: (event: AuditEventInput) => Promise.resolve(events.push(event)) } as unknown as Audit;
  const session = new SessionWatch({
    audit,
    log: createLogger({ write: (line) => logs.push(line) }),
    onContested: (value) => contested.push(value),
    now: () => Date.now(),
  });
  return { session, events, logs, contested };
}

describe("the session watch", () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it("an MQTT 5 DISCONNECT 0x8E is a takeover at once; two thousand more in 17 minutes make no event and one more log line", () => {
    const { session, events, logs, contested } = watch();
    for (let i = 0; i < 2_000; i += 1) {
      session.connected();
      vi.advanceTimersByTime(500);
      session.takenOver();
      session.closed();
    }
    expect(contested).toEqual([true]);
    expect(events).toEqual([
      { type: "session_takeover", source: "system", details: { evidence: "the broker said the session was taken over (MQTT 5 reason 0x8E)" } },
    ]);
    // 2,000 × 0.5 s: the first line, then one more after 10 minutes.
    expect(logs.filter((line) => line.includes("level=warn"))).toHaveLength(2);
  });

  it("closes soon after CONNACK count only three in a row; a connection that lasted resets the count", () => {
    const { session, events, contested } = watch();
    const cycle = (lastsMs: number) => {
      session.connected();
      vi.advanceTimersByTime(lastsMs);
      session.closed();
    };
    cycle(100);
    cycle(100);
    cycle(CUT_SHORT_MS);
    cycle(100);
    cycle(100);
    expect(contested).toEqual([]);
    cycle(100);
    expect(contested).toEqual([true]);
    expect(events).toHaveLength(1);
  });

  it("a session held for a minute is no longer contested", () => {
    const { session, contested, logs } = watch();
    session.connected();
    session.takenOver();
    session.closed();
    session.connected();
    vi.advanceTimersByTime(59_000);
    expect(contested).toEqual([true]);
    vi.advanceTimersByTime(1_000);
    expect(contested).toEqual([true, false]);
    expect(logs.some((line) => line.includes("no longer contested"))).toBe(true);
  });
});
