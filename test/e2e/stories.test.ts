/**
 * The nine stories of DESIGN.md, end to end: companion apps and the web app talk to a real hub
 * (real store, keys, handler, MQTT transport) on mock GPIO through a real broker (mosquitto in
 * CI). Each test asserts what the door did (the relay pin), what the app got back, and the
 * audit events.
 */
import { describe, expect, it } from "vitest";
import type { AuditEvent } from "../../firmware/audit.js";
import { BUTTON_PIN, RELAY_PIN, type TestHub } from "../support/hub.js";
import { refusal } from "./phones.js";
import { BOB_PIN, e2eWorld, OWNER_PIN, until } from "./world.js";

const world = e2eWorld();
const phones = { phone: (name: string) => world.phones().phone(name) };
const newHub = (config?: Record<string, unknown>) => world.newHub(config);
const claimedWithBob = (config?: Record<string, unknown>) => world.claimedWithBob(config ? { config } : {});

async function events(iq: TestHub, type?: string): Promise<AuditEvent[]> {
  const all = await iq.hub.events.list({ limit: 500 });
  return type === undefined ? all : all.filter((e) => e.type === type);
}

function relayOpened(iq: TestHub): boolean {
  return iq.gpio.timeline.some((w) => w.bcm === RELAY_PIN && w.level === 1);
}

describe("story 1: claim the IQ", () => {
  it("the owner claims an unclaimed IQ with its setup secret inside the claim window", async () => {
    const iq = await newHub();
    const owner = await phones.phone("owner");
    expect((await owner.app.status({ iqId: iq.iqId })).claimWindowOpen).toBe(true);
    const claimed = await owner.app.claim({ iqId: iq.iqId, setupSecret: iq.setupSecret(), name: "Alice", pin: OWNER_PIN });
    expect(claimed.role).toBe("owner");
    const status = await owner.app.status({ iqId: iq.iqId });
    expect(status).toMatchObject({ claimed: true, phase: "activated" });
    expect(await events(iq, "claimed")).toHaveLength(1);
    expect(await owner.app.whoami({ iqId: iq.iqId, pin: OWNER_PIN })).toMatchObject({ name: "Alice", role: "owner" });
  });

  it("a wrong setup secret, a trivial PIN and a closed claim window are refused", async () => {
    const iq = await newHub({ claimWindowMs: 10_000 });
    const owner = await phones.phone("owner");
    expect(await refusal(owner.app.claim({ iqId: iq.iqId, setupSecret: "0000-0000-0000", name: "Eve", pin: OWNER_PIN }))).toBe(
      "pair_failed",
    );
    expect(await refusal(owner.app.claim({ iqId: iq.iqId, setupSecret: iq.setupSecret(), name: "Eve", pin: "1234" }))).toBe(
      "pin_trivial",
    );
    iq.hub.lifecycle.closeClaimWindow();
    expect(
      await refusal(owner.app.claim({ iqId: iq.iqId, setupSecret: iq.setupSecret(), name: "Alice", pin: OWNER_PIN })),
    ).toBe("claim_window_closed");
    expect((await events(iq, "refused")).map((e) => e.reason)).toEqual(["pair_failed", "claim_window_closed"]);
    // A short press opens the window again.
    iq.gpio.press(BUTTON_PIN);
    await new Promise((resolve) => setTimeout(resolve, 150));
    iq.gpio.release(BUTTON_PIN);
    await until(() => iq.hub.lifecycle.isClaimWindowOpen());
    await owner.app.claim({ iqId: iq.iqId, setupSecret: iq.setupSecret(), name: "Alice", pin: OWNER_PIN });
  });
});

describe("story 2: add users", () => {
  it("Owner and Admin add users with random initial PINs; a User may not", async () => {
    const iq = await newHub();
    const owner = await phones.phone("owner");
    await owner.app.claim({ iqId: iq.iqId, setupSecret: iq.setupSecret(), name: "Alice", pin: OWNER_PIN });
    const carol = await owner.app.addUser({ iqId: iq.iqId, pin: OWNER_PIN, name: "Carol", role: "admin" });
    expect(carol.initialPin).toMatch(/^[0-9]{6}$/);
    // Alice's phone keeps Alice's keys: it cannot be turned into Carol's by mistake.
    expect(await refusal(owner.app.activate({ iqId: iq.iqId, userId: carol.userId, pin: carol.initialPin }))).toBe(
      "profile_in_use",
    );
    const carolPhone = await phones.phone("carol");
    await carolPhone.app.activate({ iqId: iq.iqId, userId: carol.userId, pin: carol.initialPin });
    const dave = await carolPhone.app.addUser({ iqId: iq.iqId, pin: carol.initialPin, name: "Dave", role: "user" });
    expect(dave.initialPin).not.toBe(carol.initialPin);
    expect(
      await refusal(carolPhone.app.addUser({ iqId: iq.iqId, pin: carol.initialPin, name: "Mallory", role: "admin" })),
    ).toBe("forbidden");
    const davePhone = await phones.phone("dave");
    await davePhone.app.activate({ iqId: iq.iqId, userId: dave.userId, pin: dave.initialPin });
    expect(await refusal(davePhone.app.addUser({ iqId: iq.iqId, pin: dave.initialPin, name: "X", role: "user" }))).toBe(
      "forbidden",
    );
    const { users } = await owner.app.listUsers({ iqId: iq.iqId, pin: OWNER_PIN });
    expect(users.map((u) => [u.name, u.role, u.activated])).toEqual(
      expect.arrayContaining([
        ["Alice", "owner", true],
        ["Carol", "admin", true],
        ["Dave", "user", true],
      ]),
    );
    await owner.app.removeUser({ iqId: iq.iqId, pin: OWNER_PIN, userId: dave.userId });
    expect(await refusal(davePhone.app.open({ iqId: iq.iqId, pin: dave.initialPin }))).toBe("not_activated");
    expect((await events(iq)).map((e) => e.type)).toEqual(
      expect.arrayContaining(["user_added", "user_added", "refused", "user_removed"]),
    );
  });
});

describe("story 3: activate the app", () => {
  it("activates with the random PIN, changes it, and the initial PIN stops working", async () => {
    const { iq, bob } = await claimedWithBob();
    expect(await bob.app.whoami({ iqId: iq.iqId, pin: BOB_PIN })).toMatchObject({ name: "Bob", role: "user" });
    expect(await refusal(bob.app.changePin({ iqId: iq.iqId, pin: BOB_PIN, newPin: "1111" }))).toBe("pin_trivial");
    expect(await events(iq, "activated")).toHaveLength(1);
    expect(await events(iq, "pin_changed")).toHaveLength(1);
  });

  it("a wrong initial PIN fails the activation and counts against the user", async () => {
    const iq = await newHub();
    const owner = await phones.phone("owner");
    await owner.app.claim({ iqId: iq.iqId, setupSecret: iq.setupSecret(), name: "Alice", pin: OWNER_PIN });
    const bob = await owner.app.addUser({ iqId: iq.iqId, pin: OWNER_PIN, name: "Bob", role: "user" });
    const thief = await phones.phone("thief");
    const wrong = bob.initialPin === "246802" ? "246803" : "246802";
    expect(await refusal(thief.app.activate({ iqId: iq.iqId, userId: bob.userId, pin: wrong }))).toBe("pair_failed");
    const bobPhone = await phones.phone("bob");
    await bobPhone.app.activate({ iqId: iq.iqId, userId: bob.userId, pin: bob.initialPin });
  });

  it("the same PIN may be used on two IQs, each knowing only its own", async () => {
    const first = await claimedWithBob();
    const second = await newHub();
    const owner2 = await phones.phone("owner2");
    await owner2.app.claim({ iqId: second.iqId, setupSecret: second.setupSecret(), name: "Zoe", pin: OWNER_PIN });
    const bobThere = await owner2.app.addUser({ iqId: second.iqId, pin: OWNER_PIN, name: "Bob", role: "user" });
    const bob = await phones.phone("bob");
    await bob.app.activate({ iqId: second.iqId, userId: bobThere.userId, pin: bobThere.initialPin });
    await bob.app.changePin({ iqId: second.iqId, pin: bobThere.initialPin, newPin: BOB_PIN });
    await bob.app.open({ iqId: first.iq.iqId, pin: BOB_PIN });
    await bob.app.open({ iqId: second.iqId, pin: BOB_PIN });
    expect(relayOpened(first.iq) && relayOpened(second)).toBe(true);
  });
});

describe("stories 4 and 5: a Code, and the web app opens with it", () => {
  it("opens the door and switches Office Mode on and off with Codes passed on by the paired web relay", async () => {
    const { iq, bob, bobId, owner } = await claimedWithBob();
    const web = await world.webRelay(iq, owner);
    const { code } = await bob.app.code({ iqId: iq.iqId, pin: BOB_PIN });
    expect(code).toMatch(/^[0-9A-HJKMNP-TV-Z]{5}$/);
    await web.app.webOpen({ iqId: iq.iqId, userId: bobId, code });
    await until(() => relayOpened(iq));
    await until(() => iq.gpio.level(RELAY_PIN) === 0, 5_000);
    const opened = await events(iq, "opened");
    expect(opened).toMatchObject([{ source: "web", user: bobId, lock: "door" }]);
    expect(JSON.stringify(await events(iq))).not.toContain(code);

    // Office Mode needs a Super User: Bob (User) is refused, the Owner may.
    const bobOffice = await bob.app.code({ iqId: iq.iqId, pin: BOB_PIN, purpose: "office_on" });
    expect(await refusal(web.app.webOffice({ iqId: iq.iqId, userId: bobId, code: bobOffice.code, on: true }))).toBe(
      "forbidden",
    );
    const ownerId = (await owner.app.whoami({ iqId: iq.iqId, pin: OWNER_PIN })).userId;
    const on = await owner.app.code({ iqId: iq.iqId, pin: OWNER_PIN, purpose: "office_on" });
    await web.app.webOffice({ iqId: iq.iqId, userId: ownerId, code: on.code, on: true });
    expect(iq.gpio.level(RELAY_PIN)).toBe(1);
    await until(() => iq.hub.lifecycle.state === "officeMode");
    expect((await web.app.status({ iqId: iq.iqId })).locks).toEqual([{ name: "door", unlocked: true, officeMode: true }]);
    const off = await owner.app.code({ iqId: iq.iqId, pin: OWNER_PIN, purpose: "office_off" });
    await web.app.webOffice({ iqId: iq.iqId, userId: ownerId, code: off.code, on: false });
    expect(iq.gpio.level(RELAY_PIN)).toBe(0);
    expect((await events(iq)).map((e) => e.type)).toEqual(expect.arrayContaining(["office_on", "office_off"]));
  });
});

describe("story 6: the app opens with the PIN, no Code", () => {
  it("opens and holds Office Mode with sealed commands", async () => {
    const { iq, owner } = await claimedWithBob();
    await owner.app.open({ iqId: iq.iqId, pin: OWNER_PIN });
    await until(() => relayOpened(iq));
    const ownerId = (await owner.profile.activation(iq.iqId))!.userId;
    // The log says who opened: by name for a person, by id to match the events.
    expect(iq.logs.filter((l) => l.includes("door opened by Alice") && l.includes(ownerId) && l.includes("app"))).toHaveLength(1);
    await owner.app.office({ iqId: iq.iqId, pin: OWNER_PIN, on: true });
    expect(iq.gpio.level(RELAY_PIN)).toBe(1);
    await owner.app.office({ iqId: iq.iqId, pin: OWNER_PIN, on: false });
    expect(iq.gpio.level(RELAY_PIN)).toBe(0);
    expect((await events(iq)).filter((e) => e.source === "app").map((e) => e.type)).toEqual(
      expect.arrayContaining(["opened", "office_on", "office_off"]),
    );
    expect(await refusal(owner.app.open({ iqId: iq.iqId, pin: "999999" }))).toBe("pin_wrong");
  });
});

describe("story 7: the Owner resets a user's PIN", () => {
  it("deactivates the user's app and issues a new random PIN", async () => {
    const { iq, owner, bob, bobId } = await claimedWithBob();
    expect(await refusal(bob.app.resetPin({ iqId: iq.iqId, pin: BOB_PIN, userId: bobId }))).toBe("forbidden");
    const reset = await owner.app.resetPin({ iqId: iq.iqId, pin: OWNER_PIN, userId: bobId });
    expect(reset.initialPin).toMatch(/^[0-9]{6}$/);
    expect(await refusal(bob.app.open({ iqId: iq.iqId, pin: BOB_PIN }))).toBe("not_activated");
    expect((await bob.profile.activation(iq.iqId))?.activated ?? false).toBe(false);
    await bob.app.activate({ iqId: iq.iqId, userId: bobId, pin: reset.initialPin });
    await bob.app.changePin({ iqId: iq.iqId, pin: reset.initialPin, newPin: BOB_PIN });
    await bob.app.open({ iqId: iq.iqId, pin: BOB_PIN });
    expect(await events(iq, "pin_reset")).toMatchObject([{ details: { userId: bobId } }]);
  });
});

describe("story 8: the Owner forgot the PIN and resets the IQ", () => {
  it("holding reset wipes every secret; the re-claimed Owner restores users, roles and locks", { timeout: 40_000 }, async () => {
    const { iq, owner, bob, bobId } = await claimedWithBob({
      button: { shortPressMaxMs: 200, resetArmMs: 1_000, resetCancelMs: 3_000 },
    });
    await owner.app.backup({ iqId: iq.iqId, pin: OWNER_PIN });
    const oldSecret = iq.hub.deviceKeyFile;
    iq.gpio.press(BUTTON_PIN);
    await until(() => iq.hub.lifecycle.state === "resetArmed", 3_000);
    iq.gpio.release(BUTTON_PIN);
    await until(() => iq.hub.lifecycle.phase === "unclaimed", 5_000);
    expect(oldSecret).toBe(iq.hub.deviceKeyFile);
    // Every app must activate again; the old owner's PIN is gone with the keys. The reset IQ has new
    // keys too, so its refusal cannot be told from a forgery: the app says so and keeps its activation.
    expect(await refusal(owner.app.open({ iqId: iq.iqId, pin: OWNER_PIN }))).toBe("answer_unverified");
    expect((await owner.profile.activation(iq.iqId))?.activated).toBe(true);
    const newOwner = await phones.phone("owner");
    await newOwner.app.claim({ iqId: iq.iqId, setupSecret: iq.setupSecret(), name: "Alice", pin: "517394" });
    const restored = await newOwner.app.restore({ iqId: iq.iqId, pin: "517394" });
    expect(restored.users).toMatchObject([{ userId: bobId, name: "Bob", role: "user" }]);
    const bobAgain = restored.users[0]!;
    expect(await refusal(bob.app.open({ iqId: iq.iqId, pin: BOB_PIN }))).toBe("answer_unverified");
    await bob.app.activate({ iqId: iq.iqId, userId: bobId, pin: bobAgain.initialPin });
    await bob.app.open({ iqId: iq.iqId, pin: bobAgain.initialPin });
    await until(() => relayOpened(iq));
    expect((await events(iq)).map((e) => e.type)).toEqual(expect.arrayContaining(["factory_reset", "claimed", "restored"]));
  });
});

describe("story 9: a second device", () => {
  it("the second device activates with a Code from the first plus the PIN; the Code alone does not", async () => {
    const { iq, owner, bob, bobId } = await claimedWithBob();
    const invite = await bob.app.inviteDevice({ iqId: iq.iqId, pin: BOB_PIN });
    const tablet = await phones.phone("bob-tablet");
    expect(
      await refusal(tablet.app.joinAsDevice({ iqId: iq.iqId, userId: bobId, code: invite.code, pin: "902817" })),
    ).toBe("pair_failed");
    // A wrong try counts on Bob's pairing counter but does not spend the invitation.
    await tablet.app.joinAsDevice({ iqId: iq.iqId, userId: bobId, code: invite.code, pin: BOB_PIN });
    // Used once, it is gone.
    const third = await phones.phone("bob-third");
    expect(await refusal(third.app.joinAsDevice({ iqId: iq.iqId, userId: bobId, code: invite.code, pin: BOB_PIN }))).toBe("invite_invalid");
    await tablet.app.open({ iqId: iq.iqId, pin: BOB_PIN });
    await until(() => relayOpened(iq));
    // A Code from the tablet opens through the web app too: the IQ tries both devices.
    const web = await world.webRelay(iq, owner);
    const { code } = await tablet.app.code({ iqId: iq.iqId, pin: BOB_PIN });
    await web.app.webOpen({ iqId: iq.iqId, userId: bobId, code });
    expect(await events(iq, "device_added")).toHaveLength(1);
  });
});

