/**
 * Issue 10: 10,000 malformed and hostile payloads on the request topic, through the real broker
 * to the real hub, some with MQTT 5 properties (response topics in and out of the tree,
 * correlation data, expiry). The hub reads every one, never logs an error or fails, answers only
 * with signed answers carrying documented error codes, loses nothing it stored, and right after
 * answers a status and opens the door for Bob.
 */
import { randomBytes } from "node:crypto";
import type { IClientPublishOptions } from "mqtt";
import { describe, expect, it, vi } from "vitest";
import { verifyDocument } from "../../provisioning/crypto/identity.js";
import type { AnswerBody } from "../../provisioning/protocol/messages.js";
import { fromB64u } from "../../provisioning/pairing.js";
import { MqttTransport } from "../../firmware/transports/mqtt.js";
import { MAX_PACKET_BYTES } from "../../firmware/transports/packet-size-guard.js";
import { connectClient } from "../support/mqtt.js";
import { attacker, eventsOf, sealAs, sleep } from "./attacker.js";
import { documentedErrorCodes, malformedPayloads } from "./malformed.js";
import { BOB_PIN, e2eWorld, OWNER_PIN, until } from "./world.js";

const world = e2eWorld();
const SEED = 10_010;
/** What must reach the handler; a few more are sent (empty ones, and ones too large for MQTT 5). */
const COUNT = 10_000;
const BATCH = 500;

/** MQTT 5 properties for every fourth payload: where the answer goes, and what comes back with it. */
function properties(i: number, responses: string): IClientPublishOptions["properties"] | undefined {
  switch (i % 16) {
    case 1:
      return { responseTopic: `${responses}/mallory-5`, correlationData: randomBytes(i % 40) };
    case 5:
      return { responseTopic: `elsewhere/${i}`, messageExpiryInterval: i % 3 === 0 ? 0 : 4_294_967_295 };
    case 9:
      return { responseTopic: `${responses}/${"x".repeat(300)}`, userProperties: { a: "b".repeat(i % 100) }, contentType: "application/json" };
    case 13:
      return { responseTopic: `${responses}//empty-level`, messageExpiryInterval: 1 };
    default:
      return undefined;
  }
}

describe("10,000 malformed requests over MQTT", () => {
  it(`seed ${SEED}: every one read, no error, only documented codes; then a status and Bob's open are answered`, async () => {
    const { iq, owner, bob, bobId } = await world.claimedWithBob();
    const identityKey = fromB64u((await bob.profile.activation(iq.iqId))!.identityKey);
    const received = vi.spyOn(MqttTransport.prototype as unknown as { handleRequest: () => Promise<void> }, "handleRequest");
    const mallory = await attacker(world.broker().url, iq.iqId);
    const v5 = world.broker().protocolVersion === 5;
    const sender = v5 ? await connectClient(world.broker().url, { protocolVersion: 5 }) : mallory.client;
    await mallory.subscribe(`${mallory.topics.responses}/#`);
    const bobKeys = (await bob.profile.activation(iq.iqId))!;
    const sealed = sealAs(bobKeys, iq.iqId, { op: "open", args: { lock: "door" }, pin: BOB_PIN }).args;
    const payloads = malformedPayloads({ replyTo: mallory.replyTo, sealed }, SEED, COUNT + 400);
    // What reaches the handler: an empty message on the request topic is not a request (it
    // clears a retained one), and over MQTT 5 the broker keeps what is larger than the maximum
    // packet size the hub announces.
    const reaches = (p: Uint8Array) => p.length > 0 && !(v5 && p.length + 1024 >= MAX_PACKET_BYTES);
    const started = performance.now();
    // QoS 0 in batches, each read by the hub before the next: mosquitto drops QoS 0 messages for a
    // subscriber with 1,000 queued, and a flood the broker dropped would prove nothing.
    for (let from = 0; from < payloads.length; from += BATCH) {
      for (const [i, payload] of payloads.slice(from, from + BATCH).entries()) {
        const props = v5 ? properties(from + i, mallory.topics.responses) : undefined;
        sender.publish(mallory.topics.requests, Buffer.from(payload), { qos: 0, ...(props && { properties: props }) });
      }
      const expected = payloads.slice(0, from + BATCH).filter(reaches).length;
      await until(() => received.mock.calls.length >= expected, 10_000, `the hub to read ${expected} requests`);
    }
    const drained = performance.now() - started;
    expect(received.mock.calls.length).toBe(payloads.filter(reaches).length);
    expect(received.mock.calls.length).toBeGreaterThanOrEqual(COUNT);

    // The hub is still itself: a verified status, Bob's sealed open, the users it had.
    const status = await retryDropped(() => owner.app.status({ iqId: iq.iqId }));
    expect(status).toMatchObject({ iqId: iq.iqId, claimed: true });
    expect(await bob.app.open({ iqId: iq.iqId, pin: BOB_PIN })).toMatchObject({ lock: "door" });
    const { users } = await owner.app.listUsers({ iqId: iq.iqId, pin: OWNER_PIN });
    expect(users.map((u) => u.name).sort()).toEqual(["Alice", "Bob"]);
    expect((await eventsOf(iq, "opened")).map((e) => e.user)).toEqual([bobId]);
    expect((await iq.hub.lockout.check(bobId)).allowed).toBe(true);

    // Every answer the flood got is signed by the IQ (none is sealed: no mutated box opened), and
    // a refusal carries a documented code. A few mutations are valid reads, answered as such.
    await sleep(200);
    const codes = documentedErrorCodes();
    const answers = mallory.seen.filter((m) => m.topic.startsWith(`${mallory.topics.responses}/mallory`));
    expect(answers.length).toBeGreaterThan(0);
    const seenCodes = new Set<string>();
    for (const answer of answers) {
      const { signed, sig } = JSON.parse(answer.text) as { signed: string; sig: string };
      const body = verifyDocument({ publicKey: identityKey, kind: "answer", iqId: iq.iqId, doc: { signed, sig } }) as AnswerBody;
      seenCodes.add(body.ok ? "(ok)" : body.error.code);
    }
    seenCodes.delete("(ok)");
    expect([...seenCodes].filter((code) => !codes.has(code))).toEqual([]);
    expect(seenCodes).toContain("request_malformed");
    expect(iq.logs.filter((line) => line.includes("level=error"))).toEqual([]);
    process.stderr.write(`${received.mock.calls.length} malformed requests read by the hub in ${Math.round(drained)} ms; ${answers.length} answered (${[...seenCodes].join(", ")})\n`);
  });
});

/** A read the hub may drop while its meter refills after the flood: asked again until answered. */
async function retryDropped<T>(read: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await read();
    } catch (error) {
      if ((error as { code?: string }).code !== "no_answer" || attempt === 3) throw error;
    }
  }
}
