/**
 * The nine stories end to end, as a person with the companion app lives them: the real Hub on
 * mock GPIO, a real broker, the Companion over IqClient. The stories build on each other (Bob
 * must exist before he activates), so the tests run in order and share one IQ.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { IqClient } from "../../../provisioning/app/client.js";
import { Companion, type NewUser } from "../../../provisioning/app/companion.js";
import { Profile } from "../../../provisioning/app/profile.js";
import { startTestBroker, type TestBroker } from "../../support/broker.js";
import { RELAY_PIN, startTestHub, type TestHub } from "../../support/hub.js";

let broker: TestBroker;
let iq: TestHub;
let client: IqClient;
let home: string;
let alice: Companion;
let bob: Companion;
let bobsTablet: Companion;
/** The web app: no keys, only what the person types. */
let web: Companion;
let bobUser: NewUser;
const ALICE_PIN = "2469";
const BOB_PIN = "8642";

beforeAll(async () => {
  broker = await startTestBroker();
  // A short pulse, so each story finds the door locked again.
  iq = await startTestHub({ brokerUrl: broker.url, config: { locks: [{ name: "door", pin: RELAY_PIN, pulseMs: 100 }] } });
  client = await IqClient.connect({ broker: broker.url });
  home = mkdtempSync(join(tmpdir(), "iq-home-"));
  const appFor = (name: string): Companion => new Companion({ profile: Profile.at({ home, name }), client });
  alice = appFor("alice");
  bob = appFor("bob");
  bobsTablet = appFor("bob-tablet");
  web = appFor("web");
});

afterAll(async () => {
  await client?.close();
  await iq?.stop();
  await broker?.stop();
  rmSync(home, { recursive: true, force: true });
});

/** Runs `act` on a locked door and tells whether it drove the relay open. */
async function opensDoor(act: () => Promise<unknown>): Promise<boolean> {
  await vi.waitFor(() => expect(iq.gpio.level(RELAY_PIN)).toBe(0));
  const from = iq.gpio.timeline.length;
  await act();
  return iq.gpio.timeline.slice(from).some((write) => write.bcm === RELAY_PIN && write.level === 1);
}

describe("the stories, end to end", () => {
  it("1. the owner claims the IQ with its setup secret", async () => {
    expect(await alice.status({ iqId: iq.iqId })).toMatchObject({ claimed: false, claimWindowOpen: true });

    const owner = await alice.claim({ iqId: iq.iqId, setupSecret: iq.setupSecret(), name: "Alice", pin: ALICE_PIN });

    expect(owner.role).toBe("owner");
    expect(await alice.status({ iqId: iq.iqId })).toMatchObject({ claimed: true });
  });

  it("2. the owner adds a user, who gets a random initial PIN", async () => {
    bobUser = await alice.addUser({ iqId: iq.iqId, pin: ALICE_PIN, name: "Bob", role: "superuser" });

    expect(bobUser.initialPin).toMatch(/^[0-9]{6}$/);
    const { users } = await alice.listUsers({ iqId: iq.iqId, pin: ALICE_PIN });
    expect(users.find((u) => u.userId === bobUser.userId)).toMatchObject({ name: "Bob", activated: false });
  });

  it("3. the user activates with the initial PIN, then chooses his own", async () => {
    await expect(bob.activate({ iqId: iq.iqId, userId: bobUser.userId, pin: "000000" })).rejects.toMatchObject({ code: "pair_failed" });
    // The failed run was ended by the app, so the retry is not refused as "in progress".
    await bob.activate({ iqId: iq.iqId, userId: bobUser.userId, pin: bobUser.initialPin });
    await bob.changePin({ iqId: iq.iqId, pin: bobUser.initialPin, newPin: BOB_PIN });

    expect(await bob.whoami({ iqId: iq.iqId, pin: BOB_PIN })).toMatchObject({ userId: bobUser.userId, role: "superuser" });
    await expect(bob.whoami({ iqId: iq.iqId, pin: bobUser.initialPin })).rejects.toMatchObject({ code: "pin_wrong" });
  });

  it("4 and 5. a Code from the app opens the door once through the web app", async () => {
    const made = await bob.code({ iqId: iq.iqId, pin: BOB_PIN });

    expect(await opensDoor(() => web.webOpen({ iqId: iq.iqId, userId: bobUser.userId, code: made.code }))).toBe(true);
    await expect(web.webOpen({ iqId: iq.iqId, userId: bobUser.userId, code: made.code })).rejects.toMatchObject({ code: "code_replay" });
  });

  it("6. the app opens and holds the door open with the PIN, sealed", async () => {
    expect(await opensDoor(() => bob.open({ iqId: iq.iqId, pin: BOB_PIN }))).toBe(true);

    expect(await bob.office({ iqId: iq.iqId, pin: BOB_PIN, on: true })).toEqual({ lock: "door", officeMode: true });
    expect((await bob.status({ iqId: iq.iqId })).locks).toEqual([{ name: "door", unlocked: true, officeMode: true }]);
    expect(await bob.office({ iqId: iq.iqId, pin: BOB_PIN, on: false })).toEqual({ lock: "door", officeMode: false });
  });

  it("9. the user duplicates the app on a second device with a Code and the PIN", async () => {
    const invite = await bob.inviteDevice({ iqId: iq.iqId, pin: BOB_PIN });

    await bobsTablet.joinAsDevice({ iqId: iq.iqId, userId: bobUser.userId, code: invite.code, pin: BOB_PIN });

    expect(await bobsTablet.whoami({ iqId: iq.iqId, pin: BOB_PIN })).toMatchObject({ userId: bobUser.userId });
  });

  it("7. the owner resets the user's PIN: his apps are no longer activated until he activates again", async () => {
    const reset = await alice.resetPin({ iqId: iq.iqId, pin: ALICE_PIN, userId: bobUser.userId });

    await expect(bob.open({ iqId: iq.iqId, pin: BOB_PIN })).rejects.toMatchObject({ code: "not_activated" });
    await expect(bobsTablet.open({ iqId: iq.iqId, pin: BOB_PIN })).rejects.toMatchObject({ code: "not_activated" });
    await bob.activate({ iqId: iq.iqId, userId: bobUser.userId, pin: reset.initialPin });
    await bob.changePin({ iqId: iq.iqId, pin: reset.initialPin, newPin: BOB_PIN });
    await bob.open({ iqId: iq.iqId, pin: BOB_PIN });
  });

  it("8. after a factory reset the owner claims again and restores users and roles", async () => {
    const backup = await alice.backup({ iqId: iq.iqId, pin: ALICE_PIN });
    expect(backup.users.map((u) => u.name).sort()).toEqual(["Alice", "Bob"]);

    await iq.hub.factoryReset("system");
    await expect(alice.open({ iqId: iq.iqId, pin: ALICE_PIN })).rejects.toMatchObject({ code: "not_claimed" });
    await alice.claim({ iqId: iq.iqId, setupSecret: iq.setupSecret(), name: "Alice", pin: ALICE_PIN });
    const restored = await alice.restore({ iqId: iq.iqId, pin: ALICE_PIN });

    expect(restored.users).toEqual([{ userId: bobUser.userId, name: "Bob", role: "superuser", initialPin: expect.stringMatching(/^[0-9]{6}$/) as string }]);
    await bob.activate({ iqId: iq.iqId, userId: bobUser.userId, pin: restored.users[0]!.initialPin });
    expect(await bob.whoami({ iqId: iq.iqId, pin: restored.users[0]!.initialPin })).toMatchObject({ role: "superuser" });
  });

  it("every decision is in the event log, in order and without gaps", async () => {
    const events = await alice.events({ iqId: iq.iqId, limit: 500 });

    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => (events[0]?.seq ?? 0) + i));
    expect(events.map((e) => e.type)).toEqual(expect.arrayContaining(["claimed", "opened", "pin_reset", "restored"]));
    expect(JSON.stringify(events)).not.toContain(BOB_PIN);
  });
});
