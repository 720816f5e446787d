/**
 * What the IQ refuses, end to end through a real broker: each refusal with its own error code
 * and its own audit event, and nothing a spammer sends can lock a real user out.
 */
import { connect, type MqttClient } from "mqtt";
import { describe, expect, it } from "vitest";
import { generateCode } from "../../provisioning/crypto/code.js";
import { fromB64u } from "../../provisioning/pairing.js";
import { topicsFor } from "../../provisioning/protocol/topics.js";
import { RELAY_PIN, type TestHub } from "../support/hub.js";
import { REFUSAL_EVENTS } from "../../firmware/handler/limits.js";
import { refusal } from "./phones.js";
import { BOB_PIN, e2eWorld, OWNER_PIN, until } from "./world.js";

const world = e2eWorld();
const phones = { phone: (name: string, now?: () => number) => world.phones().phone(name, now) };

async function claimedWithBob(role: "user" | "superuser" = "user") {
  const claimed = await world.claimedWithBob({ role });
  return { ...claimed, web: await world.webRelay(claimed.iq, claimed.owner) };
}

async function refusedReasons(iq: TestHub): Promise<string[]> {
  return (await iq.hub.events.list({ limit: 1000 })).filter((e) => e.type === "refused").map((e) => e.reason ?? "");
}

describe("refused, each with its own error code and event", () => {
  it("a Code used twice", async () => {
    const { iq, bob, web, bobId } = await claimedWithBob();
    const { code } = await bob.app.code({ iqId: iq.iqId, pin: BOB_PIN });
    await web.app.webOpen({ iqId: iq.iqId, userId: bobId, code });
    expect(await refusal(web.app.webOpen({ iqId: iq.iqId, userId: bobId, code }))).toBe("code_replay");
    expect(await refusedReasons(iq)).toEqual(["code_replay"]);
  });

  it("a Code for another IQ", async () => {
    const { iq, bob, web, bobId } = await claimedWithBob();
    const other = await world.newHub();
    const owner2 = await phones.phone("owner2");
    await owner2.app.claim({ iqId: other.iqId, setupSecret: other.setupSecret(), name: "Zoe", pin: OWNER_PIN });
    const bobThere = await owner2.app.addUser({ iqId: other.iqId, pin: OWNER_PIN, name: "Bob", role: "user" });
    await bob.app.activate({ iqId: other.iqId, userId: bobThere.userId, pin: bobThere.initialPin });
    const forOther = await bob.app.code({ iqId: other.iqId, pin: bobThere.initialPin });
    expect(await refusal(web.app.webOpen({ iqId: iq.iqId, userId: bobId, code: forOther.code }))).toBe("code_rejected");
    expect(await refusedReasons(iq)).toEqual(["code_rejected"]);
  });

  it("an expired Code", async () => {
    const { iq, web, bobId } = await claimedWithBob();
    const lateBob = await phones.phone("bob", () => Date.now() - 4 * 60_000);
    const { code } = await lateBob.app.code({ iqId: iq.iqId, pin: BOB_PIN });
    expect(await refusal(web.app.webOpen({ iqId: iq.iqId, userId: bobId, code }))).toBe("code_rejected");
    expect(await refusedReasons(iq)).toEqual(["code_rejected"]);
    expect(iq.gpio.level(RELAY_PIN)).toBe(0);
  });

  it("a Code while the clock is not synchronised; the PIN still opens", async () => {
    const { iq, bob, web, bobId } = await claimedWithBob();
    iq.clock.synced = false;
    await new Promise((resolve) => setTimeout(resolve, 20));
    const { code } = await bob.app.code({ iqId: iq.iqId, pin: BOB_PIN });
    expect(await refusal(web.app.webOpen({ iqId: iq.iqId, userId: bobId, code }))).toBe("clock_unsynced");
    expect(await refusedReasons(iq)).toEqual(["clock_unsynced"]);
    await bob.app.open({ iqId: iq.iqId, pin: BOB_PIN });
    // A Pi without RTC booted offline is minutes behind the phone: the PIN still opens.
    const phoneAhead = await phones.phone("bob", () => Date.now() + 20 * 60_000);
    await phoneAhead.app.open({ iqId: iq.iqId, pin: BOB_PIN });
    expect((await iq.hub.events.list({ limit: 100 })).filter((e) => e.type === "opened")).toHaveLength(2);
  });

  it("a Code made with a wrong PIN counts once, however often it is replayed", async () => {
    const { iq, bob, web, bobId } = await claimedWithBob();
    const typo = await bob.app.code({ iqId: iq.iqId, pin: "730265" });
    const reasons: string[] = [];
    for (let i = 0; i < 6; i++) reasons.push(await refusal(web.app.webOpen({ iqId: iq.iqId, userId: bobId, code: typo.code })));
    expect(reasons).toEqual(["pin_wrong", ...Array<string>(5).fill("code_replay")]);
    const right = await bob.app.code({ iqId: iq.iqId, pin: BOB_PIN });
    await web.app.webOpen({ iqId: iq.iqId, userId: bobId, code: right.code });
  });

  it("a wrong PIN says how many tries are left and that every device counts; the lockout says so too", async () => {
    const { iq, bob } = await claimedWithBob();
    const wrong = bob.app.open({ iqId: iq.iqId, pin: "111111" });
    await expect(wrong).rejects.toMatchObject({
      code: "pin_wrong",
      details: { triesLeft: 4 },
      message: "wrong PIN: 4 more tries before this user is blocked for a while (wrong PINs from every device of the user count together)",
    });
    for (let i = 0; i < 3; i++) await refusal(bob.app.open({ iqId: iq.iqId, pin: "111111" }));
    await expect(bob.app.open({ iqId: iq.iqId, pin: "111111" })).rejects.toMatchObject({ details: { triesLeft: 0 }, message: /now blocked/ });
    await expect(bob.app.open({ iqId: iq.iqId, pin: BOB_PIN })).rejects.toMatchObject({
      code: "locked_out",
      message: /wrong ones from every device of the user count together\): try again in \d+ s$/,
    });
  });

  it("an expired or mistyped Code: the message gives both and what to do", async () => {
    const { iq, web, bobId } = await claimedWithBob();
    await expect(web.app.webOpen({ iqId: iq.iqId, userId: bobId, code: "ABCDE" })).rejects.toMatchObject({
      code: "code_rejected",
      message: /expired \(a Code lasts about 3 minutes\) or it was mistyped.*Make a new Code; if this one was typed within 3 minutes, check it for a typo/,
    });
  });

  it("a Super User or User trying an Owner-only action", async () => {
    const { iq, bob, bobId } = await claimedWithBob("superuser");
    await expect(bob.app.addUser({ iqId: iq.iqId, pin: BOB_PIN, name: "Eve", role: "user" })).rejects.toMatchObject({
      code: "forbidden",
      message: "adding users needs the Owner or an Admin; you are a Super User",
    });
    await refusal(bob.app.listUsers({ iqId: iq.iqId, pin: BOB_PIN }));
    expect(await refusal(bob.app.backup({ iqId: iq.iqId, pin: BOB_PIN }))).toBe("forbidden");
    expect(await refusal(bob.app.resetPin({ iqId: iq.iqId, pin: BOB_PIN, userId: bobId }))).toBe("forbidden");
    expect(await refusedReasons(iq)).toEqual(["forbidden", "forbidden", "forbidden", "forbidden"]);
    await bob.app.office({ iqId: iq.iqId, pin: BOB_PIN, on: true });
    await bob.app.office({ iqId: iq.iqId, pin: BOB_PIN, on: false });
  });

  it("10 wrong Codes disable the credential until the Owner resets the PIN", async () => {
    const { iq, owner, bob, bobId } = await world.claimedWithBob();
    const web = await world.webRelay(iq, owner, iq.now);
    // A thief with Bob's phone (its Code key) tries PINs through the web app.
    const keys = (await bob.profile.activation(iq.iqId))!;
    const reasons: string[] = [];
    for (let guess = 0; guess < 11; guess++) {
      const { code } = generateCode({
        key: fromB64u(keys.codeKey),
        iqId: iq.iqId,
        appId: keys.appId,
        purpose: "open",
        lock: "door",
        pin: String(100_000 + guess * 7_919),
        lastCounter: keys.codeCounter,
        now: iq.now(),
      });
      reasons.push(await refusal(web.app.webOpen({ iqId: iq.iqId, userId: bobId, code })));
      // A patient thief waits out each block (at most an hour); the Code is made for the new time.
      iq.advance(61 * 60_000);
    }
    expect(reasons).toEqual([...Array<string>(10).fill("pin_wrong"), "credential_disabled"]);
    const lockouts = (await iq.hub.events.list({ limit: 100 })).filter((e) => e.type === "lockout");
    expect(lockouts.map((e) => e.reason)).toEqual(["blocked", "blocked", "blocked", "blocked", "blocked", "disabled"]);
    expect(iq.gpio.level(RELAY_PIN)).toBe(0);
    // Bob's phone, with his PIN, is a path of its own and still opens.
    const phoneBob = await phones.phone("bob", iq.now);
    await phoneBob.app.open({ iqId: iq.iqId, pin: BOB_PIN });
    // Only the Owner's PIN reset clears the disabled credential.
    const ownerNow = await phones.phone("owner", iq.now);
    const reset = await ownerNow.app.resetPin({ iqId: iq.iqId, pin: OWNER_PIN, userId: bobId });
    expect((await iq.hub.lockout.check(`${bobId}/web`)).allowed).toBe(true);
    expect(reset.initialPin).toMatch(/^[0-9]{6}$/);
    void owner;
  });
});

describe("the web Code budget", () => {
  it("10 failed web Codes a day per user, not refilled by a success; the Owner is told when it runs low", async () => {
    const { iq, owner, bobId } = await world.claimedWithBob();
    const relay = await world.webRelay(iq, owner, iq.now);
    const bobNow = await phones.phone("bob", iq.now);
    const guess = (i: number) => `${"0123456789ABCDEFGHJKMNPQRSTVWXYZ"[i]}ZZZZ`;
    const reasons: string[] = [];
    for (let i = 0; i < 6; i++) reasons.push(await refusal(relay.app.webOpen({ iqId: iq.iqId, userId: bobId, code: guess(i) })));
    // A real opening in between does not give the guesser their budget back.
    await relay.app.webOpen({ iqId: iq.iqId, userId: bobId, code: (await bobNow.app.code({ iqId: iq.iqId, pin: BOB_PIN })).code });
    for (let i = 6; i < 10; i++) reasons.push(await refusal(relay.app.webOpen({ iqId: iq.iqId, userId: bobId, code: guess(i) })));
    expect(reasons.every((r) => r === "code_rejected" || r === "pin_wrong")).toBe(true);
    const right = await bobNow.app.code({ iqId: iq.iqId, pin: BOB_PIN });
    expect(await refusal(relay.app.webOpen({ iqId: iq.iqId, userId: bobId, code: right.code }))).toBe("locked_out");
    const low = (await iq.hub.events.list({ limit: 100 })).filter((e) => e.type === "web_budget_low");
    expect(low).toMatchObject([{ user: bobId, details: { remaining: 3 } }]);
    // Bob's phone is not touched, and after 24 h the web path works again.
    await bobNow.app.open({ iqId: iq.iqId, pin: BOB_PIN });
    iq.advance(24 * 60 * 60_000 + 60_000);
    await relay.app.webOpen({ iqId: iq.iqId, userId: bobId, code: (await bobNow.app.code({ iqId: iq.iqId, pin: BOB_PIN })).code });
  });
});

describe("requests", () => {
  it("a request id is never executed twice: an exact repeat gets the first answer, nobody else gets it", async () => {
    const { iq, bob } = await claimedWithBob();
    const topics = topicsFor(iq.iqId);
    // Anyone on the broker can read requests: the eavesdropper records Bob's sealed open.
    const eavesdropper: MqttClient = connect(world.broker().url, { protocolVersion: 4 });
    await new Promise((resolve) => eavesdropper.once("connect", resolve));
    const captured: string[] = [];
    const answers = new Map<string, string[]>();
    eavesdropper.on("message", (topic, payload) => {
      if (topic === topics.requests) captured.push(payload.toString());
      else answers.set(topic, [...(answers.get(topic) ?? []), payload.toString()]);
    });
    await eavesdropper.subscribeAsync([topics.requests, `${topics.responses}/#`], { qos: 1 });
    await bob.app.open({ iqId: iq.iqId, pin: BOB_PIN });
    await until(() => captured.length === 1 && answers.size === 1);
    const request = JSON.parse(captured[0]!) as { id: string; replyTo: string; expiresAt: number };
    const [bobsRoute, [bobsAnswer]] = [...answers.entries()][0]!;

    // The same request again (a QoS 1 duplicate, or a replay): the same answer, to the same route.
    await eavesdropper.publishAsync(topics.requests, captured[0]!, { qos: 1 });
    await until(() => answers.get(bobsRoute)!.length === 2);
    expect(answers.get(bobsRoute)![1]).toBe(bobsAnswer);
    // The same id with the answer pointed elsewhere is another request: it runs (and fails), and the
    // stored answer goes nowhere else. What it gets is sealed for Bob's app: nothing readable.
    const stolen = `${topics.responses}/eavesdropper`;
    await eavesdropper.publishAsync(topics.requests, JSON.stringify({ ...request, replyTo: stolen }), { qos: 1 });
    await until(() => (answers.get(stolen)?.length ?? 0) === 1);
    expect(answers.get(stolen)![0]).not.toBe(bobsAnswer);
    expect(JSON.parse(answers.get(stolen)![0]!)).toEqual({ v: 2, id: request.id, box: expect.any(String) as string });
    await eavesdropper.endAsync();
    const types = (await iq.hub.events.list({ limit: 100 })).map((e) => `${e.type}:${e.reason ?? ""}`);
    expect(types.filter((t) => t.startsWith("opened"))).toHaveLength(1);
  });
});

describe("spam", () => {
  it("10,000 garbage requests straight into the handler leave the real user able to open", async () => {
    const { iq, bob, web, bobId } = await claimedWithBob();
    const appId = (await bob.profile.activation(iq.iqId))!.appId;
    const expiresAt = () => Date.now() + 30_000;
    const garbage = (i: number): unknown => {
      switch (i % 4) {
        case 0:
          return `{"v":2,"id":"g${i}"`; // cut short
        case 1: // a box that does not open, from Bob's real app id
          return { v: 2, id: `g${i}`, op: "app", expiresAt: expiresAt(), args: { appId, epk: "A".repeat(43), mac: "A".repeat(22), box: "A".repeat(60) } };
        case 2: // a random Code naming Bob, sent as v1's plain web.open (only a paired relay may now)
          return { v: 2, id: `g${i}`, op: "web.open", expiresAt: expiresAt(), args: { userId: bobId, lock: "door", code: String(10_000 + i).slice(-5) } };
        default: // an activation run for Bob, who is not waiting for one
          return { v: 2, id: `g${i}`, op: "pair.start", args: { kind: "activate", appId: `x${i}`, userId: bobId, sid: "AAAAAAAAAAAAAAAAAAAAAA", share: "AA", commit: "A".repeat(43) } };
      }
    };
    for (let i = 0; i < 10_000; i++) {
      const body = garbage(i);
      await iq.hub.requests.sink({ payload: Buffer.from(typeof body === "string" ? body : JSON.stringify(body)), via: "mqtt" });
    }
    expect((await iq.hub.lockout.check(bobId)).allowed).toBe(true);
    await bob.app.open({ iqId: iq.iqId, pin: BOB_PIN });
    // The relay's Codes are metered apart from junk: the web path opens at once too.
    const { code } = await bob.app.code({ iqId: iq.iqId, pin: BOB_PIN });
    await web.app.webOpen({ iqId: iq.iqId, userId: bobId, code });
    expect((await iq.hub.events.list({ limit: 10_000 })).filter((e) => e.type === "opened")).toHaveLength(2);
  });

  it("garbage flooding the request topic does not lock out a real user", async () => {
    const { iq, bob, web, bobId } = await claimedWithBob();
    const topics = topicsFor(iq.iqId);
    const spammer: MqttClient = connect(world.broker().url, { protocolVersion: 4 });
    await new Promise((resolve) => spammer.once("connect", resolve));
    const garbage = (i: number): string => {
      switch (i % 5) {
        case 0:
          return "not json at all";
        case 1:
          return JSON.stringify({ v: 2, id: `g${i}`, op: "nope", args: {} });
        case 2:
          return JSON.stringify({ v: 2, id: `g${i}`, op: "app", expiresAt: Date.now() + 30_000, args: { appId: "stolen", epk: "AAAA", mac: "AAAA", box: "AAAA" } });
        case 3:
          return JSON.stringify({ v: 2, id: `g${i}`, op: "status", args: {} });
        default: {
          const code = Array.from({ length: 5 }, () => "0123456789ABCDEFGHJKMNPQRSTVWXYZ"[Math.floor(Math.random() * 32)]).join("");
          return JSON.stringify({ v: 2, id: `g${i}`, op: "web.open", expiresAt: Date.now() + 30_000, args: { userId: bobId, lock: "door", code } });
        }
      }
    };
    for (let i = 0; i < 2_000; i++) spammer.publish(topics.requests, garbage(i), { qos: 0 });
    await new Promise<void>((resolve) => spammer.end(false, {}, () => resolve()));
    // The real user, during and after the flood: the app with the PIN always gets through.
    await bob.app.open({ iqId: iq.iqId, pin: BOB_PIN });
    const whoami = await bob.app.whoami({ iqId: iq.iqId, pin: BOB_PIN });
    expect(whoami.userId).toBe(bobId);
    expect((await iq.hub.lockout.check(bobId)).allowed).toBe(true);
    // The junk limiter answers a burst and drops the rest; refusal events are capped on top.
    const refused = (await iq.hub.events.list({ limit: 10_000 })).filter((e) => e.type === "refused");
    expect(refused.length).toBeLessThanOrEqual(REFUSAL_EVENTS.capacity);
    void web;
  });
});
