import type { MqttClient } from "mqtt";
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from "vitest";
import { IqClient, REQUEST_LIFETIME_MS, topicMatches, type IqClientOptions } from "../../../provisioning/app/client.js";
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

const ok = (result: unknown): Answer => (request) => ({ v: 1, id: request.id, ok: true, result });

async function client(options: Partial<IqClientOptions> = {}): Promise<IqClient> {
  const connected = await IqClient.connect({ broker: broker.url, ...options });
  onTestFinished(() => connected.close());
  return connected;
}

describe("IqClient over a real broker", () => {
  it("a request gets the response with its id", async () => {
    await fakeResponder("iq-a", ok({ phase: "activated" }));
    const app = await client();

    expect(await app.request("iq-a", "status", {})).toEqual({ phase: "activated" });
  });

  it("the request is QoS 1, not retained, with a fresh id, an expiry 30 s ahead and replyTo under the IQ's response tree", async () => {
    const { seen } = await fakeResponder("iq-b", ok({}));
    const app = await client({ now: () => 1_000_000 });

    await app.request("iq-b", "status", {});
    await app.request("iq-b", "events.list", { limit: 5 });

    const [first, second] = seen;
    expect(first).toMatchObject({ topic: "iq/v1/iq-b/req", qos: 1, retain: false });
    expect(first?.request).toMatchObject({ v: 1, op: "status", expiresAt: 1_000_000 + REQUEST_LIFETIME_MS, args: {} });
    expect(first?.request.replyTo).toBe(`iq/v1/iq-b/res/${app.clientId}`);
    expect(second?.request.args).toEqual({ limit: 5 });
    expect(second?.request.id).not.toBe(first?.request.id);
  });

  it("answers are matched by id, whatever order they come in, and strangers' answers are ignored", async () => {
    const held: Seen["request"][] = [];
    const { mqtt } = await fakeResponder("iq-c", (request) => {
      held.push(request);
      return undefined;
    });
    const app = await client();

    const answers = Promise.all([1, 2, 3].map((n) => app.request("iq-c", "status", { n })));
    await expect.poll(() => held.length).toBe(3);
    const replyTo = held[0]!.replyTo;
    mqtt.publish(replyTo, JSON.stringify({ v: 1, id: "someone-else", ok: true, result: "not yours" }));
    mqtt.publish(replyTo, "not json at all");
    for (const request of [...held].reverse()) {
      mqtt.publish(replyTo, JSON.stringify({ v: 1, id: request.id, ok: true, result: request.args.n }));
    }

    expect(await answers).toEqual([1, 2, 3]);
  });

  it("an error response becomes an AppError with the IQ's code and message", async () => {
    await fakeResponder("iq-d", (request) => ({ v: 1, id: request.id, ok: false, error: { code: "pin_wrong", message: "wrong PIN" } }));
    const app = await client();

    await expect(app.request("iq-d", "app", {})).rejects.toMatchObject({ name: "AppError", code: "pin_wrong", message: "wrong PIN" });
  });

  it("no answer ends in a clear message naming the IQ and the broker", async () => {
    const app = await client({ timeoutMs: 300 });

    await expect(app.request("iq-silent", "status", {})).rejects.toMatchObject({
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
    await hub.publishAsync("iq/v1/iq-e/state", '{"phase":"unclaimed"}', { qos: 1, retain: true });
    onTestFinished(async () => {
      await hub.publishAsync("iq/v1/iq-e/state", "", { qos: 1, retain: true });
    });
    const app = await client();
    const got: string[] = [];

    const stop = await app.watch("iq/v1/+/state", (topic, payload) => got.push(`${topic} ${payload.toString()}`));
    await expect.poll(() => got).toContain('iq/v1/iq-e/state {"phase":"unclaimed"}');
    await stop();
    await hub.publishAsync("iq/v1/iq-e/state", '{"phase":"activated"}', { qos: 1, retain: true });
    await new Promise((resolve) => setTimeout(resolve, 100));

    expect(got.filter((line) => line.includes("activated"))).toEqual([]);
  });

  it("close fails requests still waiting", async () => {
    const app = await IqClient.connect({ broker: broker.url });
    const waiting = expect(app.request("iq-silent", "status", {})).rejects.toMatchObject({ code: "client_closed" });

    await app.close();
    await waiting;
  });
});

describe("topic filters", () => {
  it("match as MQTT does: + is one level, # the rest", () => {
    expect(topicMatches("iq/v1/+/state", "iq/v1/iq-1/state")).toBe(true);
    expect(topicMatches("iq/v1/+/state", "iq/v1/iq-1/events")).toBe(false);
    expect(topicMatches("iq/v1/+/state", "iq/v1/iq-1/state/x")).toBe(false);
    expect(topicMatches("iq/v1/#", "iq/v1")).toBe(true);
    expect(topicMatches("iq/v1/#", "iq/v1/a/b")).toBe(true);
    expect(topicMatches("iq/v1/iq-1/events", "iq/v1/iq-1/events")).toBe(true);
  });
});
