/**
 * Issue 10: 30 minutes of a hub's life on fake time, in a few seconds. The real hub and a real
 * LevelDB; the clocks (Date, performance.now, timers) are vitest's fake ones, moved 20 s a tick.
 * What happens: the claim window closes unused and a button press opens it again; Bob opens every
 * 40 s (each time past his challenge's 30 s, so the app fetches a fresh one); Carol's phone
 * guesses PINs until her blocks have doubled and she is disabled; the web relay passes on the
 * Owner's Codes and wrong ones for Bob until his web budget is spent; strangers send junk all
 * along. Afterwards the store and the hub's memory are within their caps.
 */
import { randomBytes } from "node:crypto";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { LOCKOUT } from "../../firmware/lockout.js";
import { FRESHNESS } from "../../firmware/handler/challenges.js";
import { REQUESTS } from "../../firmware/handler/limits.js";
import { PAIRING_METER } from "../../firmware/handler/pairing-meter.js";
import { WEB_BUDGET } from "../../firmware/handler/web-budget.js";
import type { SublevelName } from "../../firmware/store.js";
import { BUTTON_PIN, startTestHub, type TestHub } from "../support/hub.js";
import { Phones, refusal } from "../e2e/phones.js";
import { BOB_PIN, OWNER_PIN } from "../e2e/world.js";

const TICK_MS = 20_000;
const SOAK_MS = 30 * 60_000;
const MAX_EVENTS = 100;
const CAROL_PIN = "591736";

beforeEach(() => {
  vi.useFakeTimers({ toFake: ["Date", "performance", "setTimeout", "clearTimeout", "setInterval", "clearInterval"] });
});
afterEach(() => {
  vi.useRealTimers();
});

const count = async (iq: TestHub, name: SublevelName): Promise<number> => (await iq.hub.store.sublevel(name).keys().all()).length;

describe("a 30-minute soak on fake time", () => {
  it("claim window, lockout doubling, challenge expiry, web budget and junk leave the store and memory within their caps", async () => {
    const iq = await startTestHub({ config: { audit: { maxEvents: MAX_EVENTS } } });
    try {
      const phones = new Phones("mqtt://127.0.0.1:1");
      const owner = phones.nearby("owner", iq.hub);
      const iqId = iq.iqId;

      // The claim window closes after 5 minutes unused; a short press opens it again.
      expect(iq.hub.status().claimWindowOpen).toBe(true);
      await vi.advanceTimersByTimeAsync(5 * 60_000 + 1);
      expect(iq.hub.status().claimWindowOpen).toBe(false);
      expect(await refusal(owner.claim({ iqId, setupSecret: iq.setupSecret(), name: "Alice", pin: OWNER_PIN }))).toBe("claim_window_closed");
      iq.gpio.hold(BUTTON_PIN, 300);
      await vi.advanceTimersByTimeAsync(500);
      expect(iq.hub.status().claimWindowOpen).toBe(true);
      await owner.claim({ iqId, setupSecret: iq.setupSecret(), name: "Alice", pin: OWNER_PIN });

      const bob = phones.nearby("bob", iq.hub);
      const bobUser = await owner.addUser({ iqId, pin: OWNER_PIN, name: "Bob", role: "user" });
      await bob.activate({ iqId, userId: bobUser.userId, pin: bobUser.initialPin });
      await bob.changePin({ iqId, pin: bobUser.initialPin, newPin: BOB_PIN });
      const carol = phones.nearby("carol", iq.hub);
      const carolUser = await owner.addUser({ iqId, pin: OWNER_PIN, name: "Carol", role: "user" });
      await carol.activate({ iqId, userId: carolUser.userId, pin: carolUser.initialPin });
      await carol.changePin({ iqId, pin: carolUser.initialPin, newPin: CAROL_PIN });
      const relayUser = await owner.addRelay({ iqId, pin: OWNER_PIN, name: "cloud" });
      const web = phones.nearby("web", iq.hub);
      await web.activate({ iqId, userId: relayUser.userId, pin: relayUser.initialPin });
      const ownerId = (await owner.whoami({ iqId, pin: OWNER_PIN })).userId;

      const carolRefusals: string[] = [];
      const carolBlocks: number[] = [];
      const bobWeb: string[] = [];
      let bobOpens = 0;
      let ownerWebOpens = 0;
      for (let t = 0; t < SOAK_MS; t += TICK_MS) {
        if (t % 40_000 === 0) {
          await bob.open({ iqId, pin: BOB_PIN });
          bobOpens += 1;
        }
        const carolStatus = await iq.hub.lockout.check(carolUser.userId);
        if (carolStatus.allowed) {
          const code = await refusal(carol.whoami({ iqId, pin: "246801" }));
          carolRefusals.push(code);
          const after = await iq.hub.lockout.check(carolUser.userId);
          if (!after.allowed && after.reason === "blocked") carolBlocks.push(after.until - Date.now());
        }
        if (t % 60_000 === 0) {
          const { code } = await owner.code({ iqId, pin: OWNER_PIN });
          await web.webOpen({ iqId, userId: ownerId, code });
          ownerWebOpens += 1;
        }
        if (t % 60_000 === 0) bobWeb.push(await refusal(web.webOpen({ iqId, userId: bobUser.userId, code: "7K3QX" })));
        for (let i = 0; i < 4; i++) await iq.hub.requests.sink({ payload: junk(iqId, i), via: i % 2 === 0 ? "mqtt" : "ble" });
        await vi.advanceTimersByTimeAsync(TICK_MS);
      }

      // Lockout: 5 wrong, then blocks that double with each further wrong PIN, then disabled.
      expect(carolRefusals.slice(0, LOCKOUT.wrongEntryLimit)).toEqual(Array(LOCKOUT.wrongEntryLimit).fill("pin_wrong"));
      expect(carolBlocks).toEqual([30_000, 60_000, 120_000, 240_000, 480_000]);
      expect(await iq.hub.lockout.check(carolUser.userId)).toEqual({ allowed: false, reason: "disabled" });
      expect(await refusal(carol.whoami({ iqId, pin: CAROL_PIN }))).toBe("credential_disabled");
      // Web budget: wrong Codes for Bob are refused unread once 10 have failed in the window.
      expect(bobWeb.filter((c) => c === "code_rejected")).toHaveLength(WEB_BUDGET.failures);
      expect(bobWeb.slice(WEB_BUDGET.failures).every((c) => c === "locked_out")).toBe(true);
      // Bob's phone is untouched by all of it, and every opening was recorded.
      expect(await bob.open({ iqId, pin: BOB_PIN })).toMatchObject({ lock: "door" });
      expect(bobOpens).toBe(SOAK_MS / 40_000);
      expect(ownerWebOpens).toBe(SOAK_MS / 60_000);

      // The store within its caps: the event log trimmed, one record per user and counter.
      expect(iq.hub.events.lastSequence).toBeGreaterThan(MAX_EVENTS);
      expect(await count(iq, "events")).toBe(MAX_EVENTS);
      expect(await count(iq, "users")).toBe(4);
      expect(await count(iq, "apps")).toBe(4);
      expect(await count(iq, "lockout")).toBeLessThanOrEqual(4 * 3);
      expect(await count(iq, "webbudget")).toBeLessThanOrEqual(4);
      expect(((await iq.hub.store.get<number[]>("webbudget", bobUser.userId)) ?? []).length).toBeLessThanOrEqual(WEB_BUDGET.failures);
      // Memory within its caps.
      const handler = iq.hub.requests;
      const answers = handler["answers"]["answers"] as Map<string, unknown>;
      expect(answers.size).toBeGreaterThan(0);
      expect(answers.size).toBeLessThanOrEqual(REQUESTS.maxRemembered);
      expect(handler["answers"]["bytes"]).toBeLessThanOrEqual(REQUESTS.maxRememberedBytes);
      const live = handler.challenges["live"] as Map<string, Map<string, unknown>>;
      expect(live.size).toBeLessThanOrEqual(4);
      for (const mine of live.values()) expect(mine.size).toBeLessThanOrEqual(FRESHNESS.perApp);
      expect(handler.pairing["used"].size).toBeLessThanOrEqual(8);
      expect((handler["pairStarts"]["perKey"] as Map<string, unknown>).size).toBeLessThanOrEqual(PAIRING_METER.maxKeys);
    } finally {
      await iq.stop();
    }
  });
});

/** What strangers send all along: reads, pairing starts for users that do not exist, sealed junk. */
function junk(iqId: string, i: number): Uint8Array {
  const id = randomBytes(9).toString("base64url");
  const replyTo = `iq/v2/${iqId}/res/stranger`;
  const ops = [
    { op: "status", args: {} },
    { op: "pair.start", args: { kind: "activate", appId: `app-${id}`, userId: `u-${id}`, sid: "A".repeat(22), share: "A".repeat(43), commit: "A".repeat(43) } },
    { op: "app", args: { appId: `app-${id}`, epk: "A".repeat(43), mac: "A".repeat(22), box: "A".repeat(60) } },
    { op: "events.list", args: { afterSeq: i } },
  ];
  return Buffer.from(JSON.stringify({ v: 2, id, replyTo, ...ops[i % ops.length] }));
}
