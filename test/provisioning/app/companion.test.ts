/**
 * The companion app against a real IQ (the Hub on mock GPIO and a LevelDB on disk), its requests
 * handed straight to the hub's request handler: every check of protocol v2 runs on both sides.
 * The broker path is covered by test/e2e.
 */
import { afterEach, describe, expect, it } from "vitest";
import { Companion } from "../../../provisioning/app/companion.js";
import { BACKUPS_KEPT, Profile } from "../../../provisioning/app/profile.js";
import { validateCode } from "../../../provisioning/crypto/code.js";
import { fromB64u } from "../../../provisioning/pairing.js";
import { startTestHub, type TestHub } from "../../support/hub.js";
import { HandlerRequester } from "../../support/in-process.js";
import { AppError } from "../../../provisioning/app/errors.js";
import { tempHome } from "./temp-home.js";

const OWNER_PIN = "248613";
const BOB_PIN = "730264";

const hubs: TestHub[] = [];
afterEach(async () => {
  await Promise.all(hubs.splice(0).map((h) => h.stop()));
});

async function iq(): Promise<TestHub> {
  const hub = await startTestHub({});
  hubs.push(hub);
  return hub;
}

function phone(hub: TestHub, name: string) {
  const wire = new HandlerRequester(hub.hub, hub.now);
  const profile = Profile.at({ home: tempHome(), name });
  return { app: new Companion({ profile, client: wire, now: hub.now }), profile, wire };
}

async function claimed() {
  const hub = await iq();
  const alice = phone(hub, "alice");
  await alice.app.claim({ iqId: hub.iqId, setupSecret: hub.setupSecret(), name: "Alice", pin: OWNER_PIN });
  return { hub, alice, iqId: hub.iqId };
}

async function withBob() {
  const world = await claimed();
  const added = await world.alice.app.addUser({ iqId: world.iqId, pin: OWNER_PIN, name: "Bob", role: "user" });
  const bob = phone(world.hub, "bob");
  await bob.app.activate({ iqId: world.iqId, userId: added.userId, pin: added.initialPin });
  await bob.app.changePin({ iqId: world.iqId, pin: added.initialPin, newPin: BOB_PIN });
  return { ...world, bob, bobId: added.userId };
}

describe("Companion: pairing", () => {
  it("a claim makes the person Owner; the profile keeps the app keys, the IQ's public keys and a first challenge", async () => {
    const hub = await iq();
    const { app, profile } = phone(hub, "alice");

    const owner = await app.claim({ iqId: hub.iqId, setupSecret: hub.setupSecret().toLowerCase(), name: "Alice", pin: OWNER_PIN });

    expect(owner).toMatchObject({ role: "owner", name: "Alice" });
    const activation = (await profile.read()).iqs[hub.iqId]!;
    expect(activation).toMatchObject({ userId: owner.userId, role: "owner", codeCounter: 0, activated: true });
    expect(fromB64u(activation.identityKey)).toEqual(hub.hub.keys().identityPublic);
    expect(fromB64u(activation.staticKey)).toEqual(hub.hub.keys().staticPublic);
    expect(await profile.challenges.get(hub.iqId, activation.appId, hub.now(), 25_000)).toMatch(/^[A-Za-z0-9_-]{22}$/);
    const onIq = await hub.hub.users.app(activation.appId);
    expect(onIq).toMatchObject({ codeKey: activation.codeKey, messageKey: activation.messageKey, userId: owner.userId });
  });

  it("the setup secret and the PIN never travel in clear", async () => {
    const hub = await iq();
    const { app, wire } = phone(hub, "alice");
    const secret = hub.setupSecret();

    await app.claim({ iqId: hub.iqId, setupSecret: secret, name: "Alice", pin: OWNER_PIN });
    await app.open({ iqId: hub.iqId, pin: OWNER_PIN });

    const traffic = [...wire.sent, ...wire.answers].join("\n");
    expect(traffic).not.toContain(OWNER_PIN);
    expect(traffic).not.toContain(secret.replaceAll("-", ""));
  });

  it("a wrong setup secret is refused and nothing is stored on either side", async () => {
    const hub = await iq();
    const { app, profile } = phone(hub, "alice");
    const wrong = hub.setupSecret().replace(/.$/, (c) => (c === "0" ? "1" : "0"));

    await expect(app.claim({ iqId: hub.iqId, setupSecret: wrong, name: "Alice", pin: OWNER_PIN })).rejects.toMatchObject({
      code: "pair_failed",
      message: expect.stringContaining("wrong setup secret") as string,
    });
    expect((await profile.read()).iqs).toEqual({});
    expect(hub.hub.lifecycle.phase).toBe("unclaimed");
  });

  it("a trivial owner PIN is refused before anything is sent", async () => {
    const hub = await iq();
    const { app, wire } = phone(hub, "alice");

    await expect(app.claim({ iqId: hub.iqId, setupSecret: hub.setupSecret(), name: "Alice", pin: "1234" })).rejects.toMatchObject({ code: "pin_trivial" });
    expect(wire.sent).toEqual([]);
  });

  it("a user activates with the initial PIN and gets keys of their own", async () => {
    const { bob, iqId, bobId, alice } = await withBob();

    expect(await bob.app.whoami({ iqId, pin: BOB_PIN })).toEqual({ userId: bobId, role: "user", name: "Bob" });
    const [mine, owners] = [(await bob.profile.read()).iqs[iqId]!, (await alice.profile.read()).iqs[iqId]!];
    expect(mine.messageKey).not.toBe(owners.messageKey);
  });

  it("the Code alone is not enough: a second device needs the PIN too, and then is the same user", async () => {
    const { hub, bob, iqId, bobId } = await withBob();
    const invite = await bob.app.inviteDevice({ iqId, pin: BOB_PIN });
    expect(bob.wire.sent.join("\n")).not.toContain(invite.code);
    const tablet = phone(hub, "bob-tablet");

    await expect(tablet.app.joinAsDevice({ iqId, userId: bobId, code: invite.code, pin: "135799" })).rejects.toMatchObject({
      code: "pair_failed",
      message: expect.stringContaining("wrong Code or PIN, or the Code has expired. The invitation still stands for the right Code and PIN") as string,
    });
    // A wrong try does not use up the invitation: the right PIN still works within its validity.
    expect(await tablet.app.joinAsDevice({ iqId, userId: bobId, code: invite.code, pin: BOB_PIN })).toMatchObject({ userId: bobId, name: "Bob" });
    expect(await hub.hub.users.appIds(bobId)).toHaveLength(2);
  });
});

describe("Companion: sealed commands", () => {
  it("each answer hands over the next challenge; a stale one costs one extra round trip, never a failure", async () => {
    const { hub, alice, iqId } = await claimed();
    const { appId } = (await alice.profile.read()).iqs[iqId]!;
    const latest = () => alice.profile.challenges.get(iqId, appId, hub.now(), 25_000);
    const before = await latest();

    await alice.app.open({ iqId, pin: OWNER_PIN });
    const after = await latest();
    expect(after).not.toBe(before);
    expect(alice.wire.sent).toHaveLength(3); // pair.start, pair.finish, app

    hub.advanceMonotonic(31_000);
    await alice.app.open({ iqId, pin: OWNER_PIN });
    expect(alice.wire.sent).toHaveLength(5); // refused challenge_required, then sent again
  });

  it("a wrong PIN is refused, sealed, and counted", async () => {
    const { hub, alice, iqId } = await claimed();
    const ownerId = (await alice.profile.read()).iqs[iqId]!.userId;

    await expect(alice.app.open({ iqId, pin: "975311" })).rejects.toMatchObject({ code: "pin_wrong" });
    expect(hub.hub.locks.get("door")!.isUnlocked).toBe(false);
    await expect(hub.hub.lockout.check(ownerId)).resolves.toEqual({ allowed: true });
    expect(await alice.app.open({ iqId, pin: OWNER_PIN })).toMatchObject({ lock: "door" });
  });

  it("not_activated from the IQ marks the activation and says to activate again", async () => {
    const { alice, bob, iqId, bobId } = await withBob();
    await alice.app.resetPin({ iqId, pin: OWNER_PIN, userId: bobId });

    await expect(bob.app.open({ iqId, pin: BOB_PIN })).rejects.toMatchObject({
      code: "not_activated",
      message: expect.stringMatching(new RegExp(`^not activated on ${iqId}: .*new initial PIN`)) as unknown,
    });
    expect((await bob.profile.read()).iqs[iqId]?.activated).toBe(false);
    const sent = bob.wire.sent.length;
    await expect(bob.app.open({ iqId, pin: BOB_PIN })).rejects.toMatchObject({ code: "not_activated" });
    expect(bob.wire.sent).toHaveLength(sent);
  });

  it("an IQ this profile never paired with is refused without sending anything", async () => {
    const hub = await iq();
    const { app, wire } = phone(hub, "alice");

    await expect(app.open({ iqId: hub.iqId, pin: OWNER_PIN })).rejects.toMatchObject({
      code: "not_activated",
      message: expect.stringContaining(`profile alice is not activated on ${hub.iqId}`) as string,
    });
    expect(wire.sent).toEqual([]);
  });

  it("a bad lock name and a trivial new PIN are refused here, with the code the IQ would use", async () => {
    const { alice, iqId } = await claimed();
    const sent = alice.wire.sent.length;

    await expect(alice.app.open({ iqId, pin: OWNER_PIN, lock: "Front Door" })).rejects.toMatchObject({ code: "request_malformed" });
    await expect(alice.app.changePin({ iqId, pin: OWNER_PIN, newPin: "000000" })).rejects.toMatchObject({ code: "pin_trivial" });
    expect(alice.wire.sent).toHaveLength(sent);
  });
});

describe("Companion: Codes, the relay, resets and backups", () => {
  it("a Code is made offline, its counter saved first, and only this IQ accepts it, for this lock", async () => {
    const { hub, alice, iqId } = await claimed();
    const sent = alice.wire.sent.length;

    const made = await alice.app.code({ iqId, pin: OWNER_PIN });

    expect(alice.wire.sent).toHaveLength(sent);
    expect(made.code).toMatch(/^[0-9A-HJKMNP-TV-Z]{5}$/);
    const activation = (await alice.profile.read()).iqs[iqId]!;
    expect(activation.codeCounter).toBe(made.counter);
    const ours = { key: fromB64u(activation.codeKey), iqId, appId: activation.appId, code: made.code, now: hub.now(), expectedPin: OWNER_PIN, lastCounter: 0 };
    expect(validateCode({ ...ours, purpose: "open", lock: "door" })).toEqual({ ok: true, counter: made.counter });
    expect(validateCode({ ...ours, purpose: "open", lock: "gate" })).toMatchObject({ ok: false });
    expect(validateCode({ ...ours, iqId: "iq-other", purpose: "open", lock: "door" })).toMatchObject({ ok: false });
  });

  it("only a paired relay passes on a Code; a person's profile is told what to do", async () => {
    const { hub, alice, iqId } = await claimed();
    const ownerId = (await alice.profile.read()).iqs[iqId]!.userId;
    const relayAdded = await alice.app.addRelay({ iqId, pin: OWNER_PIN, name: "cloud" });
    const relay = phone(hub, "web");
    await relay.app.activate({ iqId, userId: relayAdded.userId, pin: relayAdded.initialPin });
    const made = await alice.app.code({ iqId, pin: OWNER_PIN });

    await expect(alice.app.webOpen({ iqId, userId: ownerId, code: made.code })).rejects.toMatchObject({ code: "not_relay" });
    expect(await relay.app.webOpen({ iqId, userId: ownerId, code: made.code })).toMatchObject({ lock: "door" });
    expect(hub.hub.locks.get("door")!.isUnlocked).toBe(true);
    await expect(relay.app.open({ iqId, pin: "123456" })).rejects.toMatchObject({ code: "forbidden" });
  });

  it("the Owner's PIN reset carries a fresh owner_reset Code and hands back the new initial PIN", async () => {
    const { alice, iqId, bobId } = await withBob();

    const reset = await alice.app.resetPin({ iqId, pin: OWNER_PIN, userId: bobId });

    expect(reset).toMatchObject({ userId: bobId, initialPin: expect.stringMatching(/^[0-9]{6}$/) as string });
  });

  it("a backup is kept in the profile and restore brings the users back after a reset and a new claim", async () => {
    const { hub, alice, iqId } = await withBob();
    const backup = await alice.app.backup({ iqId, pin: OWNER_PIN });
    expect((await alice.profile.read()).backups[iqId]).toEqual([{ backup, restored: false }]);

    await hub.hub.factoryReset("button");
    await alice.app.claim({ iqId, setupSecret: hub.setupSecret(), name: "Alice", pin: OWNER_PIN });
    const restored = await alice.app.restore({ iqId, pin: OWNER_PIN });

    expect(restored.users.map((u) => u.name)).toEqual(["Bob"]);
  });

  it("story 8: a backup made after the re-claim does not replace the one to restore", async () => {
    const { hub, alice, iqId } = await withBob();
    const before = await alice.app.backup({ iqId, pin: OWNER_PIN });
    await hub.hub.factoryReset("button");
    await alice.app.claim({ iqId, setupSecret: hub.setupSecret(), name: "Alice", pin: OWNER_PIN });

    await expect(alice.app.backup({ iqId, pin: OWNER_PIN })).rejects.toMatchObject({
      code: "backup_would_shrink",
      message: expect.stringMatching(/\(2 users, made .+\) was never restored, and the IQ now has 1\. After a factory reset and a new claim, restore first/) as string,
    });
    expect(await alice.app.keptBackups(iqId)).toEqual([{ backup: before, restored: false }]);
    // Forced, the new one is kept as well, not instead: both stay, newest last.
    const onlyAlice = await alice.app.backup({ iqId, pin: OWNER_PIN, force: true });
    expect((await alice.app.keptBackups(iqId)).map((k) => k.backup.users.length)).toEqual([2, 1]);
    expect(onlyAlice.users).toHaveLength(1);

    const restored = await alice.app.restore({ iqId, pin: OWNER_PIN, backup: before });
    expect(restored.users.map((u) => u.name)).toEqual(["Bob"]);
    expect((await alice.app.keptBackups(iqId)).map((k) => k.restored)).toEqual([true, false]);
  });

  it("keeps the last backups of an IQ, up to a cap", async () => {
    const { alice, iqId } = await withBob();
    for (let i = 0; i < BACKUPS_KEPT + 2; i++) await alice.app.backup({ iqId, pin: OWNER_PIN });
    expect(await alice.app.keptBackups(iqId)).toHaveLength(BACKUPS_KEPT);
  });

  it("restore without a backup says one has to be made first", async () => {
    const { alice, iqId } = await claimed();

    await expect(alice.app.restore({ iqId, pin: OWNER_PIN })).rejects.toMatchObject({ code: "backup_missing" });
  });
});

describe("Companion: what v2 adds around a command", () => {
  it("an Office Mode off that is not acknowledged is sent again; never acknowledged, the state is reported unknown", async () => {
    const { hub, alice, iqId } = await claimed();
    await alice.app.office({ iqId, pin: OWNER_PIN, on: true });
    // The answers are lost on the way twice (the command itself arrives): the third try is acknowledged.
    const lossy = new DroppingRequester(hub, 2);
    const app = new Companion({ profile: alice.profile, client: lossy, now: hub.now });
    expect(await app.office({ iqId, pin: OWNER_PIN, on: false })).toEqual({ lock: "door", officeMode: false });
    expect(lossy.tries).toBe(3);
    // Never acknowledged: the app says what it knows.
    await app.office({ iqId, pin: OWNER_PIN, on: true }).catch(() => undefined);
    const silent = new Companion({ profile: alice.profile, client: new DroppingRequester(hub, Infinity), now: hub.now });
    await expect(silent.office({ iqId, pin: OWNER_PIN, on: false })).rejects.toMatchObject({
      code: "office_state_unknown",
      message: expect.stringContaining("the door may be held open") as string,
    });
  });

  it("an initial PIN not used within initialPinValidDays no longer activates; a new one does", async () => {
    const { hub, alice, iqId } = await claimed();
    const added = await alice.app.addUser({ iqId, pin: OWNER_PIN, name: "Dave", role: "user" });
    hub.advance(7 * 24 * 60 * 60_000 + 60_000);
    const dave = phone(hub, "dave");
    await expect(dave.app.activate({ iqId, userId: added.userId, pin: added.initialPin })).rejects.toMatchObject({ code: "initial_pin_expired" });
    const renewed = await alice.app.resetPin({ iqId, pin: OWNER_PIN, userId: added.userId });
    expect(await dave.app.activate({ iqId, userId: added.userId, pin: renewed.initialPin })).toMatchObject({ name: "Dave" });
  });
});

/** Hands requests to the hub but loses the first `drop` answers (no_answer), as a lossy link would. */
class DroppingRequester extends HandlerRequester {
  tries = 0;

  constructor(
    hub: TestHub,
    private drop: number,
  ) {
    super(hub.hub, hub.now);
  }

  override async request<T>(...args: Parameters<HandlerRequester["request"]>): Promise<T> {
    this.tries += 1;
    const outcome = (await super.request(...args)) as T;
    if (this.drop-- > 0) throw new AppError("no_answer", "the answer was lost on the way");
    return outcome;
  }
}
