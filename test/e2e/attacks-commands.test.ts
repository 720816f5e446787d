/**
 * Issue 7's attacks on commands, end to end against the real hub through mosquitto: a stranger on
 * the broker (a plain mqtt.js client, no PIN, no key unless it stole one) tries each, gains
 * nothing, and the real user's app still works afterwards.
 */
import { copyFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { generateIdentity, signDocument } from "../../provisioning/crypto/identity.js";
import { WEB_BUDGET } from "../../firmware/handler/web-budget.js";
import { RELAY_PIN } from "../support/hub.js";
import { attacker, doorEverOpened, eventsOf, idOf, lockoutRecord, parseJson, sealAs, sendSealed, signedBody, sleep } from "./attacker.js";
import { refusal } from "./phones.js";
import { BOB_PIN, e2eWorld, OWNER_PIN, until } from "./world.js";

const world = e2eWorld();

describe("attack: a sealed open held back and delivered late", () => {
  it.each([
    ["synchronised", true],
    ["not synchronised", false],
  ])("with the clock %s: refused challenge_stale, door locked, refusal recorded; Bob's app still opens", async (_name, synced) => {
    const { iq, bob, bobId } = await world.claimedWithBob();
    const mallory = await attacker(world.broker().url, iq.iqId);
    // Bob's app seals an open with the challenge it holds; the attacker takes it off the wire and
    // the hub never sees it (as with a stolen session or a hostile broker).
    const keys = (await bob.profile.activation(iq.iqId))!;
    const challenge = await bob.profile.challenges.get(iq.iqId, keys.appId, Date.now(), 25_000);
    expect(challenge).toBeDefined();
    const captured = sealAs(keys, iq.iqId, { op: "open", args: { lock: "door" }, pin: BOB_PIN, challenge: challenge! });
    iq.clock.synced = synced;
    await sleep(20);
    // Held back past the 30 s window, on the IQ's own monotonic clock; the wall clock says nothing.
    iq.advanceMonotonic(31_000);
    // The envelope's expiry is outside the box: the attacker strips it.
    await mallory.send({ id: captured.id, op: "app", args: captured.args });
    const answer = captured.open(await mallory.answer(captured.id));
    expect(answer).toMatchObject({ ok: false, error: { code: "challenge_stale" } });
    expect(iq.gpio.level(RELAY_PIN)).toBe(0);
    expect(doorEverOpened(iq)).toBe(false);
    expect(await eventsOf(iq, "opened")).toHaveLength(0);
    const refused = await eventsOf(iq, "refused");
    expect(refused.map((e) => [e.reason, e.user, e.details?.op])).toEqual([["challenge_stale", bobId, "open"]]);
    // The same box again: still nothing (its challenge is gone, its answer is the one remembered).
    await mallory.send({ id: captured.id, op: "app", args: captured.args });
    await until(() => mallory.answers.get(captured.id)!.length === 2);
    expect(doorEverOpened(iq)).toBe(false);
    // Bob's app, whose stored challenge was spent by the replay, gets a fresh one and opens.
    const opened = await bob.app.open({ iqId: iq.iqId, pin: BOB_PIN });
    expect(opened.lock).toBe("door");
    expect(doorEverOpened(iq)).toBe(true);
    expect((await eventsOf(iq, "opened")).map((e) => e.user)).toEqual([bobId]);
  });
});

describe("attack: web Codes from a client that is not the paired relay", () => {
  it("plain web.open naming Bob and sealed-looking requests from unknown apps are never checked", async () => {
    const { iq, owner, bob, bobId } = await world.claimedWithBob();
    const web = await world.webRelay(iq, owner);
    const mallory = await attacker(world.broker().url, iq.iqId);
    const bobAppId = (await bob.profile.activation(iq.iqId))!.appId;
    const ids: string[] = [];
    const randomCode = (): string => Array.from({ length: 5 }, () => "0123456789ABCDEFGHJKMNPQRSTVWXYZ"[randomBytes(1)[0]! % 32]).join("");
    const junkBox = { epk: toB64(randomBytes(32)), mac: toB64(randomBytes(16)), box: toB64(randomBytes(80)) };
    for (let i = 0; i < 10; i++) {
      // v1's way: a plain web.open with a guessed Code (and v1's web.office).
      ids.push(await mallory.send({ op: "web.open", args: { userId: bobId, lock: "door", code: randomCode() } }));
      ids.push(await mallory.send({ op: "web.office", args: { userId: bobId, lock: "door", on: true, code: randomCode() } }));
      // Sealed-looking, from an app id the IQ never paired, and under Bob's real app id without his key.
      ids.push(await mallory.send({ op: "app", expiresAt: Date.now() + 30_000, args: { appId: `web-${i}`, ...junkBox } }));
      ids.push(await mallory.send({ op: "app", expiresAt: Date.now() + 30_000, args: { appId: bobAppId, ...junkBox } }));
    }
    // Wait until the hub has dealt with all of them (answered, or dropped by the junk limiter).
    const done = await mallory.send({ op: "status" });
    await mallory.answer(done);
    const codes = ids.flatMap((id) => (mallory.answers.get(id) ?? []).map((text) => signedBody(text)));
    expect(codes.length).toBeGreaterThan(0);
    for (const body of codes) {
      expect(body.ok).toBe(false);
      expect(["op_unknown", "not_activated", "seal_invalid"]).toContain(body.error?.code);
    }
    // Not one Code was looked at: Bob's budget and every counter of his are as they were.
    expect(await iq.hub.webBudget.check(bobId)).toEqual({ allowed: true, remaining: WEB_BUDGET.failures });
    expect(await iq.hub.lockout.check(bobId)).toEqual({ allowed: true });
    expect(await iq.hub.lockout.check(`${bobId}/web`)).toEqual({ allowed: true });
    expect(await lockoutRecord(iq, bobId)).toBeUndefined();
    expect(await lockoutRecord(iq, `${bobId}/web`)).toBeUndefined();
    const refusedReasons = (await eventsOf(iq, "refused")).map((e) => e.reason);
    expect(refusedReasons).not.toContain("code_rejected");
    expect(refusedReasons).not.toContain("pin_wrong");
    expect(doorEverOpened(iq)).toBe(false);
    // The relay's Codes still open.
    const { code } = await bob.app.code({ iqId: iq.iqId, pin: BOB_PIN });
    await web.app.webOpen({ iqId: iq.iqId, userId: bobId, code });
    expect((await eventsOf(iq, "opened")).map((e) => [e.user, e.source])).toEqual([[bobId, "web"]]);
  });
});

describe("attack: forged answers", () => {
  it.each(["not_activated", "not_claimed"])("a forged %s that arrives first is ignored; the real answer is taken, the profile stays activated", async (code) => {
    const { iq, bob, bobId } = await world.claimedWithBob();
    const mallory = await attacker(world.broker().url, iq.iqId);
    await mallory.subscribe(mallory.topics.requests, `${mallory.topics.responses}/#`);
    const stranger = generateIdentity();
    const forgeries: { id: string; replyTo: string; texts: string[] }[] = [];
    mallory.onMessage((message) => {
      if (message.topic !== mallory.topics.requests) return;
      const request = parseJson(message.text) as { id: string; replyTo: string; op: string } | undefined;
      if (request?.op !== "app" || request.replyTo === mallory.replyTo) return;
      const body = { id: request.id, to: request.replyTo, ok: false, error: { code, message: "forged" } };
      const texts = [
        // v1's plain answer, unsigned.
        JSON.stringify({ v: 2, id: request.id, ok: false, error: body.error }),
        // A signed-looking answer with a garbage signature.
        JSON.stringify({ v: 2, id: request.id, signed: JSON.stringify(body), sig: "A".repeat(86) }),
        // Properly signed, by a key that is not the IQ's.
        JSON.stringify({ v: 2, id: request.id, ...signDocument({ secretKey: stranger.secretKey, kind: "answer", iqId: iq.iqId, body }) }),
        // A box that opens under no key.
        JSON.stringify({ v: 2, id: request.id, box: toB64(randomBytes(120)) }),
      ];
      forgeries.push({ id: request.id, replyTo: request.replyTo, texts });
      for (const text of texts) void mallory.publish(request.replyTo, text);
    });
    // The hub is busy (its queue held) until every forgery has reached Bob's reply topic.
    let release!: () => void;
    const held = iq.hub.requests.exclusive(() => new Promise<void>((resolve) => (release = resolve)));
    const opening = bob.app.open({ iqId: iq.iqId, pin: BOB_PIN });
    await until(() => forgeries.length === 1, 5_000, "Bob's request on the wire");
    const { id, replyTo } = forgeries[0]!;
    await until(() => mallory.seen.filter((m) => m.topic === replyTo && idOf(m.text) === id).length === 4, 5_000, "the forgeries delivered");
    expect(iq.gpio.level(RELAY_PIN)).toBe(0);
    release();
    await held;
    expect(await opening).toMatchObject({ lock: "door" });
    // The real answer came after the forgeries.
    const onBobsTopic = mallory.seen.filter((m) => m.topic === replyTo && idOf(m.text) === id);
    expect(onBobsTopic).toHaveLength(5);
    expect(onBobsTopic.slice(0, 4).map((m) => m.text)).toEqual(forgeries[0]!.texts);
    const activation = (await bob.profile.activation(iq.iqId))!;
    expect(activation.activated).toBe(true);
    expect(await bob.app.whoami({ iqId: iq.iqId, pin: BOB_PIN })).toMatchObject({ userId: bobId });
    expect((await eventsOf(iq, "opened")).map((e) => e.user)).toEqual([bobId]);
  });
});

describe("attack: a counter jump from a stolen key file", () => {
  it("device.invite with counter 2^53−1 (no PIN) is refused and stores nothing; with the PIN a far counter is invite_invalid; Bob's app and Codes work", async () => {
    const { iq, owner, bob, bobId } = await world.claimedWithBob();
    const web = await world.webRelay(iq, owner);
    // The thief copies Bob's key file into a profile of its own.
    const thiefFile = join(dirname(bob.profile.file), "thief.json");
    copyFileSync(bob.profile.file, thiefFile);
    const thief = await world.phones().phone("thief");
    const keys = (await thief.profile.activation(iq.iqId))!;
    const stored = async () => (await iq.hub.users.app(keys.appId))!.codeCounter;
    const before = await stored();
    const mallory = await attacker(world.broker().url, iq.iqId);

    const wrongPin = await sendSealed(mallory, keys, iq.iqId, { op: "device.invite", args: { counter: 2 ** 53 - 1 }, pin: "135790" });
    expect(wrongPin).toMatchObject({ ok: false, error: { code: "pin_wrong" } });
    expect(await stored()).toBe(before);
    // The thief's own companion, too (it cannot pick the counter, it makes a current one).
    expect(await refusal(thief.app.inviteDevice({ iqId: iq.iqId, pin: "135791" }))).toBe("pin_wrong");
    expect(await stored()).toBe(before);

    // Even with the PIN (shoulder-surfed), a counter far from now is refused and not stored.
    const refreshed = (await thief.profile.activation(iq.iqId))!;
    for (const counter of [2 ** 53 - 1, Math.floor(Date.now() / 1000) * 1000]) {
      const far = await sendSealed(mallory, refreshed, iq.iqId, { op: "device.invite", args: { counter }, pin: BOB_PIN });
      expect(far).toMatchObject({ ok: false, error: { code: "invite_invalid" } });
      expect(await stored()).toBe(before);
    }
    // Bob's app keeps working: it opens, and its Codes open through the relay.
    await bob.app.open({ iqId: iq.iqId, pin: BOB_PIN });
    const { code } = await bob.app.code({ iqId: iq.iqId, pin: BOB_PIN });
    await web.app.webOpen({ iqId: iq.iqId, userId: bobId, code });
    expect((await eventsOf(iq, "opened")).map((e) => [e.user, e.source])).toEqual([
      [bobId, "app"],
      [bobId, "web"],
    ]);
    expect((await bob.profile.activation(iq.iqId))!.activated).toBe(true);
  });
});

describe("attack: names that reach terminals and logs", () => {
  it.each([
    ["a NUL", "Eve\u0000Admin"],
    ["an ANSI escape", "Eve\u001b[31mRoot"],
    ["a newline", "Eve\nroot ALL=(ALL)"],
  ])("a user name with %s is request_malformed and the user is not added", async (_what, name) => {
    const { iq, owner } = await world.claimedWithBob();
    const users = async () => (await iq.hub.users.list()).map((u) => u.name).sort();
    const before = await users();
    // The app refuses it before sending.
    expect(await refusal(owner.app.addUser({ iqId: iq.iqId, pin: OWNER_PIN, name, role: "user" }))).toBe("request_malformed");
    // Sealed by hand with the Owner's keys, so the hub itself judges it.
    const mallory = await attacker(world.broker().url, iq.iqId);
    const keys = (await owner.profile.activation(iq.iqId))!;
    const answer = await sendSealed(mallory, keys, iq.iqId, { op: "user.add", args: { name, role: "user" }, pin: OWNER_PIN });
    expect(answer).toMatchObject({ ok: false, error: { code: "request_malformed" } });
    expect(await users()).toEqual(before);
    expect(await eventsOf(iq, "user_added")).toHaveLength(1);
    // A clean name still goes through.
    await owner.app.addUser({ iqId: iq.iqId, pin: OWNER_PIN, name: "Eve", role: "user" });
    expect(await users()).toEqual([...before, "Eve"].sort());
  });
});

function toB64(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString("base64url");
}
