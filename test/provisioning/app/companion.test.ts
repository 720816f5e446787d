import { readFile } from "node:fs/promises";
import { describe, expect, it } from "vitest";
import { Companion } from "../../../provisioning/app/companion.js";
import { AppError } from "../../../provisioning/app/errors.js";
import { Profile } from "../../../provisioning/app/profile.js";
import { validateCode } from "../../../provisioning/crypto/code.js";
import { fromB64u } from "../../../provisioning/pairing.js";
import { FakeIq } from "./fake-iq.js";
import { tempHome } from "./temp-home.js";

const IQ = "iq-test";
const SECRET = "7K3M-9QXD-2HRT";
const OWNER_PIN = "2468";
/** Noon, 1 January 2026: Codes depend on the time, so the tests fix it. */
const NOON = Date.UTC(2026, 0, 1, 12, 0, 0);

function setup(now = (): number => NOON) {
  const iq = new FakeIq(IQ, SECRET, now);
  const profile = Profile.at({ home: tempHome(), name: "alice" });
  const app = new Companion({ profile, client: iq, now });
  return { iq, profile, app };
}

/** The counter in a sealed box's clear header (version byte, then 8 bytes big-endian). */
function boxCounter(box: unknown): number {
  const bytes = fromB64u(box as string);
  return Number(new DataView(bytes.buffer, bytes.byteOffset + 1, 8).getBigUint64(0));
}

async function claimed() {
  const context = setup();
  await context.app.claim({ iqId: IQ, setupSecret: SECRET, name: "Alice", pin: OWNER_PIN });
  return context;
}

describe("Companion: pairing", () => {
  it("a claim makes the person Owner and keeps both keys, Code counter 0 and command counter 1", async () => {
    const { iq, profile, app } = setup();

    const owner = await app.claim({ iqId: IQ, setupSecret: SECRET.toLowerCase(), name: "Alice", pin: OWNER_PIN });

    expect(owner).toEqual({ userId: "u-1", role: "owner", name: "Alice" });
    const activation = (await profile.read()).iqs[IQ]!;
    expect(activation).toMatchObject({ userId: "u-1", role: "owner", codeCounter: 0, commandCounter: 1, activated: true });
    expect(fromB64u(activation.codeKey)).toEqual(iq.apps.get(activation.appId)?.codeKey);
    expect(fromB64u(activation.messageKey)).toEqual(iq.apps.get(activation.appId)?.messageKey);
    expect(iq.users.get("u-1")?.pin).toBe(OWNER_PIN);
    expect(iq.sent.map((r) => r.op)).toEqual(["pair.start", "pair.finish"]);
  });

  it("the setup secret and the PIN never travel in clear", async () => {
    const { iq, app } = setup();
    await app.claim({ iqId: IQ, setupSecret: SECRET, name: "Alice", pin: OWNER_PIN });

    const wire = JSON.stringify(iq.sent);
    expect(wire).not.toContain(OWNER_PIN);
    expect(wire).not.toContain(SECRET.replaceAll("-", ""));
  });

  it("a wrong setup secret is refused, nothing is stored, and the run is ended at once with an empty box", async () => {
    const { iq, profile, app } = setup();

    await expect(app.claim({ iqId: IQ, setupSecret: "7K3M-9QXD-2HRV", name: "Alice", pin: OWNER_PIN })).rejects.toMatchObject({
      code: "pair_failed",
      message: `claim on ${IQ} failed: wrong setup secret`,
    });
    expect((await profile.read()).iqs).toEqual({});
    expect(iq.sent.map((r) => [r.op, r.args.box])).toEqual([
      ["pair.start", undefined],
      ["pair.finish", ""],
    ]);
  });

  it("a trivial owner PIN is refused before anything is sent", async () => {
    const { iq, app } = setup();

    await expect(app.claim({ iqId: IQ, setupSecret: SECRET, name: "Alice", pin: "1234" })).rejects.toMatchObject({ code: "pin_trivial" });
    expect(iq.sent).toEqual([]);
  });

  it("a user activates with the initial PIN and gets keys of their own", async () => {
    const { iq, app } = await claimed();
    const bob = await app.addUser({ iqId: IQ, pin: OWNER_PIN, name: "Bob", role: "user" });
    const bobsPhone = new Companion({ profile: Profile.at({ home: tempHome(), name: "bob" }), client: iq, now: () => NOON });

    const paired = await bobsPhone.activate({ iqId: IQ, userId: bob.userId, pin: bob.initialPin });

    expect(paired).toEqual({ userId: bob.userId, role: "user", name: "Bob" });
    expect(await bobsPhone.whoami({ iqId: IQ, pin: bob.initialPin })).toEqual(paired);
  });

  it("inviting a device saves the Code counter and sends only the counter, never the Code", async () => {
    const { iq, profile, app } = await claimed();

    const invite = await app.inviteDevice({ iqId: IQ, pin: OWNER_PIN });

    expect((await profile.read()).iqs[IQ]?.codeCounter).toBe(invite.counter);
    expect(iq.commands.at(-1)).toMatchObject({ op: "device.invite", args: { counter: invite.counter } });
    expect(JSON.stringify(iq.sent)).not.toContain(invite.code);
  });

  it("the Code alone is not enough: a second device with a wrong PIN is refused", async () => {
    const { iq, app } = await claimed();
    const invite = await app.inviteDevice({ iqId: IQ, pin: OWNER_PIN });
    const tablet = new Companion({ profile: Profile.at({ home: tempHome(), name: "tablet" }), client: iq, now: () => NOON });

    await expect(tablet.joinAsDevice({ iqId: IQ, userId: "u-1", code: invite.code, pin: "1357" })).rejects.toMatchObject({
      code: "pair_failed",
      message: expect.stringContaining("wrong Code or PIN") as string,
    });
  });

  it("a second device with the right Code and PIN is activated as the same user", async () => {
    const { iq, app } = await claimed();
    const invite = await app.inviteDevice({ iqId: IQ, pin: OWNER_PIN });
    const tablet = new Companion({ profile: Profile.at({ home: tempHome(), name: "tablet" }), client: iq, now: () => NOON });

    const paired = await tablet.joinAsDevice({ iqId: IQ, userId: "u-1", code: invite.code.toLowerCase(), pin: OWNER_PIN });

    expect(paired).toEqual({ userId: "u-1", role: "owner", name: "Alice" });
    expect([...iq.apps.values()].filter((a) => a.userId === "u-1")).toHaveLength(2);
  });
});

describe("Companion: sealed commands", () => {
  it("the command counter is on disk before the command leaves", async () => {
    const { iq, profile, app } = await claimed();
    const onDisk: number[] = [];
    const inBox: number[] = [];
    iq.onRequest = async ({ args }) => {
      const saved = JSON.parse(await readFile(profile.file, "utf8")) as { iqs: Record<string, { commandCounter: number }> };
      onDisk.push(saved.iqs[IQ]!.commandCounter);
      inBox.push(boxCounter(args.box));
    };

    await app.open({ iqId: IQ, pin: OWNER_PIN });
    await app.open({ iqId: IQ, pin: OWNER_PIN, lock: "gate" });

    expect(inBox).toEqual([2, 3]);
    expect(onDisk).toEqual(inBox);
    // The expiry travels inside the seal too: a relay that holds a command back cannot extend it.
    expect(iq.commands.map(({ op, args, pin, expiresAt }) => ({ op, args, pin, expiresAt }))).toEqual([
      { op: "open", args: { lock: "door" }, pin: OWNER_PIN, expiresAt: NOON + 30_000 },
      { op: "open", args: { lock: "gate" }, pin: OWNER_PIN, expiresAt: NOON + 30_000 },
    ]);
  });

  it("a refused command still spends its counter, so the next one is never a replay", async () => {
    const { iq, profile, app } = await claimed();

    await expect(app.open({ iqId: IQ, pin: "9753" })).rejects.toMatchObject({ code: "pin_wrong" });
    await app.open({ iqId: IQ, pin: OWNER_PIN });

    expect(iq.commands.map((c) => c.counter)).toEqual([2, 3]);
    expect((await profile.read()).iqs[IQ]?.commandCounter).toBe(3);
  });

  it("an answer sealed for another request is refused", async () => {
    const { iq, app } = await claimed();
    const answers: unknown[] = [];
    const request = iq.request.bind(iq);
    // A relay that replays the IQ's first answer in place of the second.
    iq.request = async (iqId, op, args) => {
      const answer = await request(iqId, op, args);
      answers.push(answer);
      return answers[0];
    };

    await app.whoami({ iqId: IQ, pin: OWNER_PIN });
    await expect(app.whoami({ iqId: IQ, pin: OWNER_PIN })).rejects.toMatchObject({ code: "seal_invalid" });
  });

  it("not_activated from the IQ marks the activation and says to activate again", async () => {
    const { iq, profile, app } = await claimed();
    iq.apps.clear();

    await expect(app.open({ iqId: IQ, pin: OWNER_PIN })).rejects.toMatchObject({
      code: "not_activated",
      message: expect.stringMatching(new RegExp(`^not activated on ${IQ}: .*new initial PIN`)) as unknown,
    });
    expect((await profile.read()).iqs[IQ]?.activated).toBe(false);

    const sent = iq.sent.length;
    await expect(app.open({ iqId: IQ, pin: OWNER_PIN })).rejects.toMatchObject({ code: "not_activated" });
    expect(iq.sent).toHaveLength(sent);
  });

  it("not_claimed after a factory reset also ends the activation, and says what comes next", async () => {
    const { iq, profile, app } = await claimed();
    iq.onRequest = () => {
      throw new AppError("not_claimed", "this IQ is not claimed yet: claim it first (story 1)");
    };

    await expect(app.open({ iqId: IQ, pin: OWNER_PIN })).rejects.toMatchObject({
      code: "not_claimed",
      message: expect.stringContaining("its owner claims it again (iq claim), then every app activates again") as string,
    });
    expect((await profile.read()).iqs[IQ]?.activated).toBe(false);
  });

  it("an IQ this profile never paired with is refused without sending anything", async () => {
    const { iq, app } = setup();

    await expect(app.open({ iqId: IQ, pin: OWNER_PIN })).rejects.toMatchObject({
      code: "not_activated",
      message: expect.stringContaining("profile alice is not activated on iq-test") as string,
    });
    expect(iq.sent).toEqual([]);
  });

  it("a bad lock name is refused here with the code the IQ would use", async () => {
    const { iq, app } = await claimed();
    const sent = iq.sent.length;

    await expect(app.open({ iqId: IQ, pin: OWNER_PIN, lock: "Front Door" })).rejects.toMatchObject({ code: "request_malformed" });
    expect(iq.sent).toHaveLength(sent);
  });

  it("a new PIN goes through the policy before anything is sent", async () => {
    const { iq, app } = await claimed();
    const sent = iq.sent.length;

    await expect(app.changePin({ iqId: IQ, pin: OWNER_PIN, newPin: "0000" })).rejects.toMatchObject({ code: "pin_trivial" });
    expect(iq.sent).toHaveLength(sent);
  });
});

describe("Companion: Codes", () => {
  it("a Code is made offline, its counter saved before it is returned, and only this IQ accepts it, for this lock", async () => {
    const { iq, profile, app } = await claimed();
    const sent = iq.sent.length;

    const made = await app.code({ iqId: IQ, pin: OWNER_PIN });

    expect(iq.sent).toHaveLength(sent);
    expect(made.code).toMatch(/^[0-9A-HJKMNP-TV-Z]{5}$/);
    expect(made.counter).toBe(Math.floor(NOON / 60_000) * 2);
    expect(made.validUntil).toBe(NOON + 3 * 60_000);
    const activation = (await profile.read()).iqs[IQ]!;
    expect(activation.codeCounter).toBe(made.counter);
    const ours = { key: fromB64u(activation.codeKey), iqId: IQ, appId: activation.appId, code: made.code, now: NOON + 60_000, expectedPin: OWNER_PIN, lastCounter: 0 };
    expect(validateCode({ ...ours, purpose: "open", lock: "door" })).toEqual({ ok: true, counter: made.counter });
    expect(validateCode({ ...ours, purpose: "open", lock: "gate" })).toMatchObject({ ok: false });
    expect(validateCode({ ...ours, purpose: "office_on", lock: "door" })).toMatchObject({ ok: false });
    expect(validateCode({ ...ours, iqId: "iq-other", purpose: "open", lock: "door" })).toMatchObject({ ok: false });
  });

  it("the second Code of a minute uses the next counter; a third waits for the next minute", async () => {
    let now = NOON;
    const { app } = setup(() => now);
    await app.claim({ iqId: IQ, setupSecret: SECRET, name: "Alice", pin: OWNER_PIN });

    const first = await app.code({ iqId: IQ, pin: OWNER_PIN });
    const second = await app.code({ iqId: IQ, pin: OWNER_PIN, purpose: "office_on" });
    await expect(app.code({ iqId: IQ, pin: OWNER_PIN })).rejects.toMatchObject({ code: "code_rate_limited" });
    now += 60_000;
    const third = await app.code({ iqId: IQ, pin: OWNER_PIN });

    expect([second.counter - first.counter, third.counter - first.counter]).toEqual([1, 2]);
  });

  it("the Owner's PIN reset carries a fresh owner_reset Code and hands back the new initial PIN", async () => {
    const { iq, profile, app } = await claimed();
    const bob = await app.addUser({ iqId: IQ, pin: OWNER_PIN, name: "Bob", role: "user" });

    const reset = await app.resetPin({ iqId: IQ, pin: OWNER_PIN, userId: bob.userId });

    expect(reset).toEqual({ userId: bob.userId, initialPin: "730419" });
    const sent = iq.commands.at(-1)!;
    expect(sent.op).toBe("pin.reset");
    expect(sent.args.code).toMatch(/^[0-9A-HJKMNP-TV-Z]{5}$/);
    expect((await profile.read()).iqs[IQ]?.codeCounter).toBe(iq.apps.get((await profile.read()).iqs[IQ]!.appId)?.codeCounter);
  });
});

describe("Companion: backup and restore", () => {
  it("a backup is kept in the profile and restore sends it back after a new claim", async () => {
    const { iq, profile, app } = await claimed();
    await app.addUser({ iqId: IQ, pin: OWNER_PIN, name: "Bob", role: "user" });

    const backup = await app.backup({ iqId: IQ, pin: OWNER_PIN });
    expect((await profile.read()).backups[IQ]).toEqual(backup);

    // Factory reset: the IQ forgets every app; the owner claims again with the same profile.
    iq.apps.clear();
    iq.users.clear();
    await app.claim({ iqId: IQ, setupSecret: SECRET, name: "Alice", pin: OWNER_PIN });
    await app.restore({ iqId: IQ, pin: OWNER_PIN });

    expect(iq.commands.at(-1)).toMatchObject({ op: "restore", args: { backup } });
    expect((await profile.read()).backups[IQ]).toEqual(backup);
  });

  it("restore without a backup says one has to be made first", async () => {
    const { app } = await claimed();

    await expect(app.restore({ iqId: IQ, pin: OWNER_PIN })).rejects.toMatchObject({ code: "backup_missing" });
  });
});
