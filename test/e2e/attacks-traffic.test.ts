/**
 * Issue 7's attacks on the traffic itself, end to end through mosquitto: floods, answers asked for
 * by someone else's request id, forged retained state and events, and a full recording of the
 * broker read with a stolen key file. The stranger gains nothing, and the real users' apps work.
 */
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { lvCat, utf8 } from "../../provisioning/crypto/bytes.js";
import { checkCommandMac, openCommand, openWithKey } from "../../provisioning/crypto/command-seal.js";
import { generateIdentity, signDocument, staticPublicKey } from "../../provisioning/crypto/identity.js";
import type { IqEvent } from "../../provisioning/app/companion.js";
import { fromB64u } from "../../provisioning/pairing.js";
import { connectClient } from "../support/mqtt.js";
import { attacker, eventsOf, idOf, parseJson, signedBody, sleep, type Message } from "./attacker.js";
import { BOB_PIN, e2eWorld, OWNER_PIN, until } from "./world.js";

const world = e2eWorld();
const b64 = (n: number): string => randomBytes(n).toString("base64url");

describe("attack: starving the IQ", () => {
  it("3 junk web.open a second and a status flood: every sealed command and every relayed web Code is answered", async () => {
    const { iq, owner, bob, bobId } = await world.claimedWithBob();
    const web = await world.webRelay(iq, owner);
    const mallory = await attacker(world.broker().url, iq.iqId);
    let flooding = true;
    let sent = 0;
    let lastJunk = 0;
    const flood = (async () => {
      while (flooding) {
        // Hundreds of status a second.
        for (let i = 0; i < 5; i++) void mallory.send({ op: "status" }).then(() => (sent += 1));
        // 3 junk web Codes a second: v1's plain web.open, and one sealed-looking from an unpaired "relay".
        if (Date.now() - lastJunk >= 333) {
          lastJunk = Date.now();
          void mallory.send({ op: "web.open", args: { userId: bobId, lock: "door", code: b64(4).slice(0, 5).toUpperCase() } });
          void mallory.send({ op: "app", expiresAt: Date.now() + 30_000, args: { appId: "web", epk: b64(32), mac: b64(16), box: b64(80) } });
        }
        await sleep(10);
      }
    })();
    const started = Date.now();
    await sleep(300);
    const bobs = (async () => {
      for (let i = 0; i < 4; i++) {
        await bob.app.open({ iqId: iq.iqId, pin: BOB_PIN });
        await sleep(500);
      }
    })();
    // A device makes at most 2 Codes a minute: Bob's two and the Owner's two.
    const ownerId = (await owner.profile.activation(iq.iqId))!.userId;
    const relayed = (async () => {
      for (const [phone, userId, pin] of [[bob, bobId, BOB_PIN], [owner, ownerId, OWNER_PIN], [bob, bobId, BOB_PIN], [owner, ownerId, OWNER_PIN]] as const) {
        const { code } = await phone.app.code({ iqId: iq.iqId, pin });
        await web.app.webOpen({ iqId: iq.iqId, userId, code });
        await sleep(500);
      }
    })();
    const outcome = await Promise.allSettled([bobs, relayed]);
    await sleep(Math.max(0, 3_000 - (Date.now() - started)));
    const seconds = (Date.now() - started) / 1000;
    flooding = false;
    await flood;
    expect(outcome.map((o) => (o.status === "rejected" ? String((o.reason as { code?: string }).code ?? o.reason) : "ok"))).toEqual(["ok", "ok"]);
    expect(sent / seconds).toBeGreaterThan(200);
    const opened = await eventsOf(iq, "opened");
    expect(opened.filter((e) => e.source === "app")).toHaveLength(4);
    expect(opened.filter((e) => e.source === "web")).toHaveLength(4);
    expect((await iq.hub.lockout.check(bobId)).allowed).toBe(true);
  });
});

describe("attack: asking for someone else's answer by its request id", () => {
  it("status, pair.start and exact copies naming the victims' ids, from the attacker's route, get their own answers only", async () => {
    const { iq, owner, bob } = await world.claimedWithBob();
    const mallory = await attacker(world.broker().url, iq.iqId);
    await mallory.subscribe(mallory.topics.requests, `${mallory.topics.responses}/#`);
    const carol = await owner.app.addUser({ iqId: iq.iqId, pin: OWNER_PIN, name: "Carol", role: "user" });
    const phone = await world.phones().phone("carol");
    await phone.app.activate({ iqId: iq.iqId, userId: carol.userId, pin: carol.initialPin });
    await bob.app.open({ iqId: iq.iqId, pin: BOB_PIN });
    const theirs = (m: Message) => m.topic !== mallory.replyTo && m.topic !== mallory.topics.requests;
    await until(() => mallory.seen.filter(theirs).length >= 4, 5_000, "the victims' answers");
    const victims = mallory.seen
      .filter((m) => m.topic === mallory.topics.requests)
      .map((m) => JSON.parse(m.text) as { id: string; op: string; replyTo: string; args: Record<string, unknown> })
      .filter((r) => ["pair.start", "pair.finish", "app"].includes(r.op));
    expect(victims.map((r) => r.op)).toEqual(expect.arrayContaining(["pair.start", "pair.finish", "app"]));
    const victimAnswers = mallory.seen.filter(theirs).map((m) => m.text);
    const ticket = victimAnswers.map((text) => (parseJson(text) as { signed?: string }).signed).flatMap((s) => (s ? [JSON.parse(s) as { result?: { ticket?: string } }] : []))
      .find((b) => typeof b.result?.ticket === "string")!.result!.ticket!;
    for (const victim of victims) {
      const asked = [
        await mallory.send({ id: victim.id, op: "status" }),
        await mallory.send({ id: victim.id, op: "pair.start", args: { kind: "claim", appId: "app-mallory", sid: b64(16), share: b64(32), commit: b64(32) } }),
        await mallory.send({ id: victim.id, op: victim.op, args: victim.args, expiresAt: Date.now() + 30_000 }),
      ];
      expect(new Set(asked)).toEqual(new Set([victim.id]));
      await until(() => (mallory.answers.get(victim.id)?.length ?? 0) === 3, 5_000, `three answers naming ${victim.id}`);
    }
    for (const victim of victims) {
      const answers = mallory.answers.get(victim.id)!;
      for (const text of answers) {
        expect(victimAnswers).not.toContain(text);
        expect(text).not.toContain(ticket);
        if ((parseJson(text) as { signed?: string }).signed !== undefined) {
          expect(signedBody(text)).toMatchObject({ id: victim.id, to: mallory.replyTo });
        }
      }
      // The status asked for under the victim's id is a status, not what the victim was told.
      expect(signedBody(answers[0]!)).toMatchObject({ ok: true, result: { iqId: iq.iqId, claimed: true } });
      expect(signedBody(answers[1]!)).toMatchObject({ ok: false, error: { code: "already_claimed" } });
    }
    // Nothing ran twice: one activation, one opening.
    expect(await eventsOf(iq, "activated")).toHaveLength(2);
    expect(await eventsOf(iq, "opened")).toHaveLength(1);
    expect(await phone.app.whoami({ iqId: iq.iqId, pin: carol.initialPin })).toMatchObject({ name: "Carol" });
  });
});

describe("attack: forged retained state and forged events", () => {
  it("a retained fake state (door locked while Office Mode is on) is not shown as the IQ's; a fake next event does not displace the real opened", async () => {
    const { iq, owner, bob, bobId } = await world.claimedWithBob();
    const mallory = await attacker(world.broker().url, iq.iqId);
    await owner.app.office({ iqId: iq.iqId, pin: OWNER_PIN, on: true });
    const lie = { ...iq.hub.status(), locks: [{ name: "door", unlocked: false, officeMode: false }] };
    const stranger = generateIdentity();
    const forgedStates = [
      JSON.stringify({ signed: JSON.stringify(lie), sig: "A".repeat(86) }),
      JSON.stringify(signDocument({ secretKey: stranger.secretKey, kind: "state", iqId: iq.iqId, body: lie })),
      JSON.stringify(lie),
    ];
    for (const forged of forgedStates) {
      await mallory.publish(mallory.topics.state, forged, { retain: true });
      const found = (await bob.app.discover({ waitMs: 300 })).find((d) => d.iqId === iq.iqId);
      // Bob's app knows the IQ's identity key: the forgery is not shown at all.
      expect(found?.state).toBeUndefined();
    }
    // A profile that never paired with this IQ has no key to check with: it shows the state, unverified.
    const passerby = await world.phones().phone("passerby");
    expect((await passerby.app.discover({ waitMs: 300 })).find((d) => d.iqId === iq.iqId)?.verified).not.toBe(true);
    // The hub's next state (Office Mode off) is shown, verified.
    await owner.app.office({ iqId: iq.iqId, pin: OWNER_PIN, on: false });
    await until(() => iq.hub.status().locks[0]!.officeMode === false);
    const real = (await bob.app.discover({ waitMs: 300 })).find((d) => d.iqId === iq.iqId);
    expect(real).toMatchObject({ verified: true, state: { locks: [{ name: "door", officeMode: false }] } });

    // Events: Bob follows; the attacker publishes the next seq first.
    const last = Math.max(...(await eventsOf(iq)).map((e) => e.seq));
    const delivered: IqEvent[] = [];
    const errors: Error[] = [];
    const stop = await bob.app.followEvents({ iqId: iq.iqId, afterSeq: last, onEvent: (e) => delivered.push(e), onError: (e) => errors.push(e) });
    const fake = { seq: last + 1, at: new Date().toISOString(), type: "opened", source: "app", user: "mallory", lock: "door" };
    await mallory.subscribe(mallory.topics.events);
    for (const forged of [
      JSON.stringify({ signed: JSON.stringify(fake), sig: "A".repeat(86) }),
      JSON.stringify(signDocument({ secretKey: stranger.secretKey, kind: "event", iqId: iq.iqId, body: fake })),
      JSON.stringify(fake),
    ]) {
      await mallory.publish(mallory.topics.events, forged);
    }
    await until(() => mallory.seen.filter((m) => m.topic === mallory.topics.events).length >= 3);
    await sleep(100);
    await bob.app.open({ iqId: iq.iqId, pin: BOB_PIN });
    await until(() => delivered.some((e) => e.type === "opened"), 5_000, "the real opened event");
    await stop();
    expect(errors).toEqual([]);
    expect(delivered.every((e) => e.user !== "mallory")).toBe(true);
    expect(delivered.map((e) => e.seq)).toEqual(delivered.map((_e, i) => last + 1 + i));
    expect(delivered.find((e) => e.type === "opened")).toMatchObject({ user: bobId, source: "app" });
  });
});

describe("attack: a recording of the broker plus a stolen key file", () => {
  it("holds no PIN, no initial PIN, no command content, and no box opens under any key of the file (forward secrecy)", async () => {
    const iq = await world.newHub();
    const recorder = await connectClient(world.broker().url, { protocolVersion: 4 });
    const recording: Message[] = [];
    recorder.on("message", (topic, payload, packet) => recording.push({ topic, text: payload.toString("utf8"), retain: packet.retain }));
    await recorder.subscribeAsync("#", { qos: 1 });
    const setupSecret = iq.setupSecret();

    const owner = await world.phones().phone("owner");
    await owner.app.claim({ iqId: iq.iqId, setupSecret, name: "Alice", pin: OWNER_PIN });
    const added = await owner.app.addUser({ iqId: iq.iqId, pin: OWNER_PIN, name: "Bob", role: "user" });
    const bob = await world.phones().phone("bob");
    await bob.app.activate({ iqId: iq.iqId, userId: added.userId, pin: added.initialPin });
    await bob.app.changePin({ iqId: iq.iqId, pin: added.initialPin, newPin: BOB_PIN });
    await bob.app.open({ iqId: iq.iqId, pin: BOB_PIN });
    await bob.app.open({ iqId: iq.iqId, pin: BOB_PIN });
    await owner.app.office({ iqId: iq.iqId, pin: OWNER_PIN, on: true });
    await owner.app.office({ iqId: iq.iqId, pin: OWNER_PIN, on: false });
    const lastSeq = Math.max(...(await eventsOf(iq)).map((e) => e.seq));
    await until(() => recording.some((m) => m.topic.endsWith("/events") && (parseJson((parseJson(m.text) as { signed: string }).signed) as { seq: number }).seq === lastSeq), 5_000, "the last event");
    await sleep(200);

    // The thief's haul: Bob's key file.
    const file = JSON.parse(readFileSync(bob.profile.file, "utf8")) as { iqs: Record<string, Record<string, string>> };
    const stolen = file.iqs[iq.iqId]!;
    const keys = ["codeKey", "messageKey", "identityKey", "staticKey"].map((k) => fromB64u(stolen[k]!));
    expect(keys.every((k) => k.length === 32)).toBe(true);

    // 1. Nothing secret in any text, decoded as deep as it goes (signed documents opened up).
    const texts = recording.flatMap((m) => decodedTexts(m.text));
    expect(texts.some((t) => t.includes('"op":"app"'))).toBe(true);
    expect(texts.some((t) => t.startsWith("{") && t.includes('"type":"opened"'))).toBe(true);
    const secrets = [OWNER_PIN, BOB_PIN, added.initialPin, setupSecret.replace(/[^0-9A-Za-z]/g, "")];
    for (const secret of secrets) {
      const pattern = new RegExp(`(?<![0-9])${secret}(?![0-9])`);
      expect(texts.filter((t) => pattern.test(t))).toEqual([]);
    }
    for (const content of ['"pin"', "newPin", "initialPin", "user.add", "pin.change", '"op":"open"', '"op":"office"', "Alice\",\"pin"]) {
      expect(texts.filter((t) => t.includes(content))).toEqual([]);
    }

    // 2. Every box in the recording, under every key of the file and every AD the thief can build.
    const requests = recording.filter((m) => m.topic.endsWith("/req")).map((m) => JSON.parse(m.text) as { id: string; op: string; args: Record<string, string> });
    const appIds = [...new Set(requests.flatMap((r) => (typeof r.args.appId === "string" ? [r.args.appId] : [])))];
    const requestIds = [...new Set(recording.flatMap((m) => idOf(m.text) ?? []))];
    expect(appIds).toContain(stolen.appId);
    const id = (s: string) => utf8(s);
    const ads: Uint8Array[] = [lvCat(id("iq-hub/v2/pair-ticket"), id(iq.iqId))];
    for (const appId of appIds) {
      for (const purpose of ["pair.finish", "pair.result"]) ads.push(lvCat(id("iq-hub/v2/pair-box"), id(iq.iqId), id(appId), id(purpose)));
      for (const requestId of requestIds) {
        for (const label of ["iq-hub/v2/command", "iq-hub/v2/answer"]) ads.push(lvCat(id(label), id(iq.iqId), id(appId), id(requestId)));
      }
    }
    const boxes = recording.flatMap((m) => boxesIn(parseJson(m.text)));
    expect(boxes.length).toBeGreaterThan(10);
    let tries = 0;
    for (const box of boxes) {
      for (const key of keys) {
        for (const ad of ads) {
          tries += 1;
          expect(() => openWithKey({ key, ad, box })).toThrow();
        }
      }
    }
    expect(tries).toBeGreaterThan(1000);
    // Bob's sealed commands: the stolen message key is the right one (their MACs check out), yet
    // without the ephemeral secret (discarded) or the IQ's static secret no box opens.
    const bobs = requests.filter((r) => r.op === "app" && r.args.appId === stolen.appId);
    expect(bobs.length).toBeGreaterThanOrEqual(3);
    const messageKey = fromB64u(stolen.messageKey!);
    for (const r of bobs) {
      const sealed = { iqId: iq.iqId, appId: stolen.appId!, requestId: r.id, epk: fromB64u(r.args.epk!), box: fromB64u(r.args.box!) };
      expect(checkCommandMac({ ...sealed, appKey: messageKey, mac: fromB64u(r.args.mac!) })).toBe(true);
      for (const guess of [randomBytes(32), ...keys]) {
        expect(() => openCommand({ ...sealed, appKey: messageKey, iqStatic: { secretKey: new Uint8Array(guess), publicKey: staticPublicKey(new Uint8Array(guess)) } })).toThrow();
      }
    }
  });
});

/** A message's text and every text inside it: nested signed JSON, and base64url fields decoded. */
function decodedTexts(text: string): string[] {
  const out = [text];
  const walk = (value: unknown): void => {
    if (typeof value === "string") {
      const nested = parseJson(value);
      if (nested !== undefined && typeof nested === "object") {
        out.push(value);
        walk(nested);
      } else if (/^[A-Za-z0-9_-]{8,}$/.test(value)) {
        const bytes = Buffer.from(value, "base64url");
        out.push(bytes.toString("latin1"), bytes.toString("utf8"));
      }
    } else if (Array.isArray(value)) value.forEach(walk);
    else if (value !== null && typeof value === "object") Object.values(value).forEach(walk);
  };
  walk(parseJson(text));
  return out;
}

/** Every sealed box in a message (command and answer boxes, pairing boxes, tickets), nested signed JSON included. */
function boxesIn(value: unknown): Uint8Array[] {
  if (typeof value === "string") {
    const nested = parseJson(value);
    return nested !== undefined && typeof nested === "object" ? boxesIn(nested) : [];
  }
  if (Array.isArray(value)) return value.flatMap(boxesIn);
  if (value === null || typeof value !== "object") return [];
  return Object.entries(value).flatMap(([key, field]) =>
    (key === "box" || key === "ticket") && typeof field === "string" ? [new Uint8Array(Buffer.from(field, "base64url"))] : boxesIn(field),
  );
}
