import type { MqttClient } from "mqtt";
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from "vitest";
import { IqClient, REQUEST_LIFETIME_MS, topicMatches, type AcceptAnswer, type IqClientOptions } from "../../../provisioning/app/client.js";
import { AppError } from "../../../provisioning/app/errors.js";
import { topicsFor } from "../../../provisioning/protocol/topics.js";
import { freePort, startTestBroker, type TestBroker } from "../../support/broker.js";
import { connectClient } from "../../support/mqtt.js";

let broker: TestBroker;
beforeAll(async () => {
  broker = await startTestBroker();
});
afterAll(() => broker.stop());

interface Seen {
  topic: string;
  qos: number;
  retain: boolean;
  request: { v: number; id: string; op: string; replyTo: string; expiresAt: number; args: Record<string, unknown> };
}

type Answer = (request: Seen["request"]) => unknown;

/**
 * A tiny IQ: subscribed to the requests topic, it answers each request with `answer(request)`
 * (a whole response envelope, or undefined for no answer) on the request's replyTo.
 */
async function fakeResponder(iqId: string, answer: Answer): Promise<{ seen: Seen[]; mqtt: MqttClient }> {
  const mqtt = await connectClient(broker.url);
  const seen: Seen[] = [];
  mqtt.on("message", (topic, payload, packet) => {
    const request = JSON.parse(payload.toString()) as Seen["request"];
    seen.push({ topic, qos: packet.qos, retain: packet.retain, request });
    const response = answer(request);
    if (response !== undefined) mqtt.publish(request.replyTo, JSON.stringify(response), { qos: 1 });
  });
  await mqtt.subscribeAsync(topicsFor(iqId).requests, { qos: 1 });
  return { seen, mqtt };
}

const ok = (result: unknown): Answer => (request) => ({ v: 2, id: request.id, result });

/** What the companion's verifier does, reduced to its contract: take `result`, drop anything marked forged. */
const takeResult: AcceptAnswer<unknown> = (answer) => (answer.forged === true ? undefined : { outcome: answer.result });

let next = 0;
const req = (op: string, args: Record<string, unknown> = {}) => ({ id: `req-${next++}`, op, args });

async function client(options: Partial<IqClientOptions> = {}): Promise<IqClient> {
  const connected = await IqClient.connect({ broker: broker.url, ...options });
  onTestFinished(() => connected.close());
  return connected;
}

describe("IqClient over a real broker", () => {
  it("a request gets the response with its id", async () => {
    await fakeResponder("iq-a", ok({ phase: "activated" }));
    const app = await client();

    expect(await app.request("iq-a", req("status"), takeResult)).toEqual({ phase: "activated" });
  });

  it("the request is QoS 1, not retained, with the caller's id, an expiry 30 s ahead and replyTo under the IQ's response tree", async () => {
    const { seen } = await fakeResponder("iq-b", ok({}));
    const app = await client({ now: () => 1_000_000 });

    await app.request("iq-b", { id: "first", op: "status", args: {} }, takeResult);
    await app.request("iq-b", { id: "second", op: "events.list", args: { limit: 5 } }, takeResult);

    const [first, second] = seen;
    expect(first).toMatchObject({ topic: "iq/v2/iq-b/req", qos: 1, retain: false });
    expect(first?.request).toMatchObject({ v: 2, id: "first", op: "status", expiresAt: 1_000_000 + REQUEST_LIFETIME_MS, args: {} });
    expect(first?.request.replyTo).toBe(`iq/v2/iq-b/res/${app.clientId}`);
    expect(second?.request).toMatchObject({ id: "second", args: { limit: 5 } });
  });

  it("answers are matched by id, whatever order they come in; strangers' answers, and answers the verifier drops, are ignored", async () => {
    const held: Seen["request"][] = [];
    const { mqtt } = await fakeResponder("iq-c", (request) => {
      held.push(request);
      return undefined;
    });
    const app = await client();

    const answers = Promise.all([1, 2, 3].map((n) => app.request("iq-c", req("status", { n }), takeResult)));
    await expect.poll(() => held.length).toBe(3);
    const replyTo = held[0]!.replyTo;
    mqtt.publish(replyTo, JSON.stringify({ v: 2, id: "someone-else", result: "not yours" }));
    mqtt.publish(replyTo, "not json at all");
    for (const request of [...held].reverse()) {
      // A forgery with the right id comes first: the verifier drops it and the real answer still counts.
      mqtt.publish(replyTo, JSON.stringify({ v: 2, id: request.id, result: "forged", forged: true }));
      mqtt.publish(replyTo, JSON.stringify({ v: 2, id: request.id, result: request.args.n }));
    }

    expect(await answers).toEqual([1, 2, 3]);
  });

  it("a refusal the verifier throws rejects the request with it", async () => {
    await fakeResponder("iq-d", ok("refused"));
    const app = await client();
    const refuse: AcceptAnswer<unknown> = () => {
      throw new AppError("pin_wrong", "wrong PIN");
    };

    await expect(app.request("iq-d", req("app"), refuse)).rejects.toMatchObject({ name: "AppError", code: "pin_wrong", message: "wrong PIN" });
  });

  it("no answer ends in a clear message naming the IQ and the broker", async () => {
    const app = await client({ timeoutMs: 300 });

    await expect(app.request("iq-silent", req("status"), takeResult)).rejects.toMatchObject({
      code: "no_answer",
      message: `no answer from IQ iq-silent within 0.3 s: is the hub running and connected to ${broker.url}?`,
    });
  });

  it("an unreachable broker is a clear error, not an endless retry", async () => {
    const url = `mqtt://127.0.0.1:${await freePort()}`;

    await expect(IqClient.connect({ broker: url })).rejects.toMatchObject({
      code: "broker_unreachable",
      message: expect.stringContaining(`cannot reach the broker at ${url}`) as string,
    });
  });

  it("watch delivers retained and live messages on a filter until stopped", async () => {
    const hub = await connectClient(broker.url);
    await hub.publishAsync("iq/v2/iq-e/state", '{"phase":"unclaimed"}', { qos: 1, retain: true });
    onTestFinished(async () => {
      await hub.publishAsync("iq/v2/iq-e/state", "", { qos: 1, retain: true });
    });
    const app = await client();
    const got: string[] = [];

    const stop = await app.watch("iq/v2/+/state", (topic, payload) => got.push(`${topic} ${payload.toString()}`));
    await expect.poll(() => got).toContain('iq/v2/iq-e/state {"phase":"unclaimed"}');
    await stop();
    await hub.publishAsync("iq/v2/iq-e/state", '{"phase":"activated"}', { qos: 1, retain: true });
    await new Promise((resolve) => setTimeout(resolve, 100));

    expect(got.filter((line) => line.includes("activated"))).toEqual([]);
  });

  it("close fails requests still waiting", async () => {
    const app = await IqClient.connect({ broker: broker.url });
    const waiting = expect(app.request("iq-silent", req("status"), takeResult)).rejects.toMatchObject({ code: "client_closed" });

    await app.close();
    await waiting;
  });
});

describe("topic filters", () => {
  it("match as MQTT does: + is one level, # the rest", () => {
    expect(topicMatches("iq/v2/+/state", "iq/v2/iq-1/state")).toBe(true);
    expect(topicMatches("iq/v2/+/state", "iq/v2/iq-1/events")).toBe(false);
    expect(topicMatches("iq/v2/+/state", "iq/v2/iq-1/state/x")).toBe(false);
    expect(topicMatches("iq/v2/#", "iq/v2")).toBe(true);
    expect(topicMatches("iq/v2/#", "iq/v2/a/b")).toBe(true);
    expect(topicMatches("iq/v2/iq-1/events", "iq/v2/iq-1/events")).toBe(true);
  });
});
