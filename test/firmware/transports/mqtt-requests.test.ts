import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { responseTopic, topicsFor } from "../../../provisioning/protocol/topics.js";
import { startTestBroker, type TestBroker } from "../../support/broker.js";
import { collect, connectClient, echoSink, eventually, type HubTransport, requestText, startHubTransport } from "../../support/mqtt.js";

let broker: TestBroker;
beforeAll(async () => {
  broker = await startTestBroker();
});
afterAll(() => broker.stop());

async function connectedHub(options: Parameters<typeof startHubTransport>[0] = {}): Promise<HubTransport> {
  const hub = await startHubTransport({ ...options, mqtt: { url: broker.url, ...options.mqtt } });
  await eventually(() => expect(hub.connection).toEqual([true]));
  return hub;
}

describe("MQTT requests", () => {
  it.each([4, 5] as const)("a request gets its response on its replyTo (hub on MQTT protocol %i)", async (protocolVersion) => {
    const sink = echoSink();
    const hub = await connectedHub({ onRequest: sink, mqtt: { protocolVersion } });
    const { topics } = hub.transport;
    const app = await connectClient(broker.url);
    const replyTo = responseTopic(topics, "app-1");
    const responses = await collect(app, replyTo);

    await app.publishAsync(topics.requests, requestText("r1", replyTo), { qos: 1 });

    await eventually(() => expect(responses.map((r) => JSON.parse(r.text) as unknown)).toEqual([{ id: "r1", ok: true }]));
    expect(responses[0]!.packet.retain).toBe(false);
    expect(responses[0]!.packet.qos).toBe(1);
    expect(sink.calls[0]).toMatchObject({ via: "mqtt" });
    expect(sink.calls[0]!.expiresAt).toBeUndefined();
  });

  it("MQTT 5 response topic and correlation data are honoured, and message expiry becomes expiresAt", async () => {
    const sink = echoSink();
    const hub = await connectedHub({ onRequest: sink });
    const { topics } = hub.transport;
    const app = await connectClient(broker.url, { protocolVersion: 5 });
    const responses = await collect(app, responseTopic(topics, "app-5"));
    const before = Date.now();

    await app.publishAsync(topics.requests, requestText("r5"), {
      qos: 1,
      properties: {
        responseTopic: responseTopic(topics, "app-5"),
        correlationData: Buffer.from("corr-42"),
        messageExpiryInterval: 30,
      },
    });

    await eventually(() => expect(responses).toHaveLength(1));
    expect(JSON.parse(responses[0]!.text)).toEqual({ id: "r5", ok: true });
    expect(responses[0]!.packet.properties?.correlationData?.toString()).toBe("corr-42");
    const expiresAt = sink.calls[0]!.expiresAt!;
    expect(expiresAt).toBeGreaterThanOrEqual(before + 29_000);
    expect(expiresAt).toBeLessThanOrEqual(Date.now() + 30_000);
  });

  it("a reply topic outside the IQ's response tree gets nothing published", async () => {
    const hub = await connectedHub();
    const { topics } = hub.transport;
    const app = await connectClient(broker.url, { protocolVersion: 5 });
    const otherIq = topicsFor("iq-someone-else");
    const outside = ["elsewhere/inbox", responseTopic(otherIq, "app"), topics.state, topics.responses];
    const misdirected = (await Promise.all(outside.map((topic) => collect(app, topic)))).flat();
    const replyTo = responseTopic(topics, "app-ok");
    const answered = await collect(app, replyTo);

    await app.publishAsync(topics.requests, requestText("bad-1", "elsewhere/inbox"), { qos: 1 });
    await app.publishAsync(topics.requests, requestText("bad-2", responseTopic(otherIq, "app")), { qos: 1 });
    await app.publishAsync(topics.requests, requestText("bad-3", topics.responses), { qos: 1 });
    await app.publishAsync(topics.requests, requestText("bad-4", `${topics.responses}/+`), { qos: 1 });
    await app.publishAsync(topics.requests, requestText("bad-5"), { qos: 1, properties: { responseTopic: topics.state } });
    // Requests are handled in order of arrival: once this one is answered, the others were refused.
    await app.publishAsync(topics.requests, requestText("ok", replyTo), { qos: 1 });

    await eventually(() => expect(answered).toHaveLength(1));
    expect(misdirected).toEqual([]);
    expect(hub.logs.filter((line) => line.includes("outside this IQ's response tree"))).toHaveLength(5);
  });

  it("a retained request is not executed", async () => {
    const topics = topicsFor("iq-retained-test");
    const app = await connectClient(broker.url);
    const replyTo = responseTopic(topics, "app-r");
    const responses = await collect(app, replyTo);
    await app.publishAsync(topics.requests, requestText("stale", replyTo), { qos: 1, retain: true });
    const sink = echoSink();

    const hub = await connectedHub({ onRequest: sink, iqId: "iq-retained-test" });
    await app.publishAsync(topics.requests, requestText("live", replyTo), { qos: 1 });

    await eventually(() => expect(responses.map((r) => JSON.parse(r.text) as unknown)).toEqual([{ id: "live", ok: true }]));
    expect(sink.calls).toHaveLength(1);
    expect(hub.logs.some((line) => line.includes("dropped a retained request"))).toBe(true);
  });

  it("a handler that throws is logged and the hub goes on answering", async () => {
    const echo = echoSink();
    let calls = 0;
    const hub = await connectedHub({
      onRequest: (request) => (++calls === 1 ? Promise.reject(new Error("handler bug")) : echo(request)),
    });
    const { topics } = hub.transport;
    const app = await connectClient(broker.url);
    const replyTo = responseTopic(topics, "app-t");
    const responses = await collect(app, replyTo);

    await app.publishAsync(topics.requests, requestText("first", replyTo), { qos: 1 });
    await app.publishAsync(topics.requests, requestText("second", replyTo), { qos: 1 });

    await eventually(() => expect(responses.map((r) => JSON.parse(r.text) as unknown)).toEqual([{ id: "second", ok: true }]));
    expect(hub.logs.some((line) => line.includes("request handler failed") && line.includes("handler bug"))).toBe(true);
  });
});
