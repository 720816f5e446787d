/**
 * The handler's small stores of protocol v2, on injected clocks: challenges (freshness on the
 * monotonic clock), remembered answers (exact repeats only, bounded), the web Code budget (a
 * rolling window a success does not refill), the pairing meter (per kind and user) and the lanes
 * (sealed commands first).
 */
import { describe, expect, it } from "vitest";
import { AnswerMemory } from "../../../firmware/handler/answer-memory.js";
import { Challenges, FRESHNESS } from "../../../firmware/handler/challenges.js";
import { LANE, Lanes } from "../../../firmware/handler/lanes.js";
import { REQUESTS } from "../../../firmware/handler/limits.js";
import { PAIRING_METER, PairingMeter } from "../../../firmware/handler/pairing-meter.js";
import { WEB_BUDGET, WebBudget } from "../../../firmware/handler/web-budget.js";
import { openStore, tempStateDir } from "../temp-state.js";

const clock = () => {
  let now = 1_000_000;
  return { now: () => now, advance: (ms: number) => (now += ms) };
};

describe("challenges", () => {
  it("are fresh once within 30 s of the monotonic clock, stale after (or when used), unknown if never issued", () => {
    const time = clock();
    const challenges = new Challenges(time.now);
    const first = challenges.issue("app-1");
    const second = challenges.issue("app-1");
    expect(challenges.consume("app-1", first)).toBe("fresh");
    expect(challenges.consume("app-1", first)).toBe("stale");
    expect(challenges.consume("app-2", second)).toBe("unknown");
    time.advance(FRESHNESS.windowMs + 1);
    expect(challenges.consume("app-1", second)).toBe("stale");
    expect(challenges.consume("app-1", "never-issued")).toBe("unknown");
  });

  it("keep at most a few per app, and none for a forgotten app", () => {
    const challenges = new Challenges(clock().now);
    const issued = Array.from({ length: FRESHNESS.perApp + 1 }, () => challenges.issue("app-1"));
    expect(challenges.consume("app-1", issued[0]!)).toBe("unknown");
    expect(challenges.consume("app-1", issued.at(-1)!)).toBe("fresh");
    const kept = challenges.issue("app-2");
    challenges.forget("app-2");
    expect(challenges.consume("app-2", kept)).toBe("unknown");
  });
});

describe("remembered answers", () => {
  const envelope = (id: string, args: Record<string, unknown> = {}) => ({ v: 2 as const, id, op: "app", args });

  it("are keyed by id, op, arguments and route: only an exact repeat finds one", () => {
    const memory = new AnswerMemory(clock().now);
    memory.remember(AnswerMemory.keyOf(envelope("r1", { a: 1 }), "iq/v2/x/res/bob"), "bob's answer");
    expect(memory.recall(AnswerMemory.keyOf(envelope("r1", { a: 1 }), "iq/v2/x/res/bob"))).toBe("bob's answer");
    expect(memory.recall(AnswerMemory.keyOf(envelope("r1", { a: 1 }), "iq/v2/x/res/mallory"))).toBeUndefined();
    expect(memory.recall(AnswerMemory.keyOf(envelope("r1", { a: 2 }), "iq/v2/x/res/bob"))).toBeUndefined();
  });

  it("are forgotten after 24 h, and the oldest go first past the caps", () => {
    const time = clock();
    const memory = new AnswerMemory(time.now);
    memory.remember("old", "x");
    time.advance(REQUESTS.rememberMs + 1);
    expect(memory.recall("old")).toBeUndefined();
    for (let i = 0; i <= REQUESTS.maxRemembered; i++) memory.remember(`k${i}`, "y");
    expect(memory.recall("k0")).toBeUndefined();
    expect(memory.recall(`k${REQUESTS.maxRemembered}`)).toBe("y");
  });
});

describe("the web Code budget", () => {
  it("counts failures in a rolling 24 h window that a success does not refill", async () => {
    const time = clock();
    const store = await openStore(tempStateDir());
    const budget = new WebBudget(() => store, time.now);
    for (let i = 0; i < WEB_BUDGET.failures; i++) await budget.spend("u-1");
    expect(await budget.check("u-1")).toEqual({ allowed: false, until: 1_000_000 + WEB_BUDGET.windowMs });
    expect(await budget.check("u-2")).toMatchObject({ allowed: true, remaining: WEB_BUDGET.failures });
    time.advance(WEB_BUDGET.windowMs + 1);
    expect(await budget.check("u-1")).toMatchObject({ allowed: true });
    await store.put("webbudget", "u-3", "not a list");
    expect(await budget.check("u-3")).toMatchObject({ allowed: false });
    await store.close();
  });
});

describe("the pairing meter", () => {
  it("keeps a budget per kind and user under a global cap", () => {
    const meter = new PairingMeter(clock().now);
    for (let i = 0; i < PAIRING_METER.perKey.capacity; i++) expect(meter.take("activate", "u-bob")).toBe(true);
    expect(meter.take("activate", "u-bob")).toBe(false);
    expect(meter.take("activate", "u-carol")).toBe(true);
    expect(meter.take("claim", undefined)).toBe(true);
    let granted = 0;
    for (let i = 0; i < 100; i++) if (meter.take("activate", `u-${i}`)) granted += 1;
    expect(granted).toBeLessThanOrEqual(PAIRING_METER.global.capacity);
  });
});

describe("lanes", () => {
  it("run one task at a time, sealed commands before plain requests, and drop past the bound", async () => {
    const lanes = new Lanes(2);
    const order: string[] = [];
    const task = (name: string) => async () => {
      order.push(name);
      await new Promise((resolve) => setTimeout(resolve, 1));
    };
    const running = lanes.run(LANE.plain, task("plain-1"));
    const queued = [lanes.run(LANE.plain, task("plain-2")), lanes.run(LANE.plain, task("plain-3")), lanes.run(LANE.sealed, task("sealed"))];
    expect(lanes.run(LANE.plain, task("plain-4"))).toBeUndefined();
    await Promise.all([running, ...queued]);
    expect(order).toEqual(["plain-1", "sealed", "plain-2", "plain-3"]);
  });
});
