import { Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { MAX_PACKET_BYTES } from "../../../firmware/transports/packet-size-guard.js";
import { responseTopic, topicsFor } from "../../../provisioning/protocol/topics.js";
import { startTestBroker, type TestBroker } from "../../support/broker.js";
import { startTcpProxy } from "../../support/tcp-proxy.js";
import {
  brokerConfig,
  collect,
  connectClient,
  echoSink,
  eventually,
  type HubTransport,
  type HubTransportOptions,
  publishRetained,
  requestText,
  retainedOn,
  startHubTransport,
} from "../../support/mqtt.js";

let broker: TestBroker;
beforeAll(async () => {
  broker = await startTestBroker();
});
afterAll(() => broker.stop());

async function connectedHub(options: HubTransportOptions = {}): Promise<HubTransport> {
  const hub = await startHubTransport({ ...options, mqtt: { ...brokerConfig(broker), ...options.mqtt } });
  await eventually(() => expect(hub.connection).toEqual([true]));
  return hub;
}

const ids = (responses: readonly { text: string }[]) => responses.map((r) => (JSON.parse(r.text) as { id: string }).id);

describe("MQTT requests", () => {
  it.for([4, 5] as const)("a request gets its response on its replyTo (hub on MQTT protocol %i)", async (protocolVersion, { skip }) => {
    skip(protocolVersion > broker.protocolVersion, "the test broker speaks MQTT 3.1.1 only");
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

  it("MQTT 5 response topic and correlation data are honoured, and message expiry becomes expiresAt", async ({ skip }) => {
    skip(broker.protocolVersion < 5, "the test broker speaks MQTT 3.1.1 only");
    const sink = echoSink();
    const hub = await connectedHub({ onRequest: sink });
    const { topics } = hub.transport;
    const app = await connectClient(broker.url, { protocolVersion: 5 });
    const responses = await collect(app, responseTopic(topics, "app-5"));
    const outside = await collect(app, topics.state);
    const before = Date.now();
    const properties = { correlationData: Buffer.from("corr-42"), messageExpiryInterval: 30 };

    await app.publishAsync(topics.requests, requestText("outside"), { qos: 1, properties: { ...properties, responseTopic: topics.state } });
    await app.publishAsync(topics.requests, requestText("r5"), {
      qos: 1,
      properties: { ...properties, responseTopic: responseTopic(topics, "app-5") },
    });

    await eventually(() => expect(ids(responses)).toEqual(["r5"]));
    expect(responses[0]!.packet.properties?.correlationData?.toString()).toBe("corr-42");
    const expiresAt = sink.calls[1]!.expiresAt!;
    expect(expiresAt).toBeGreaterThanOrEqual(before + 29_000);
    expect(expiresAt).toBeLessThanOrEqual(Date.now() + 30_000);
    expect(outside).toEqual([]);
  });

  it("MQTT 5: the broker does not hand the hub a request larger than the packet limit", async ({ skip }) => {
    skip(broker.protocolVersion < 5, "the test broker speaks MQTT 3.1.1 only");
    const sink = echoSink();
    const hub = await connectedHub({ onRequest: sink });
    const { topics } = hub.transport;
    const app = await connectClient(broker.url, { protocolVersion: 5 });
    const replyTo = responseTopic(topics, "app-big");
    const answers = await collect(app, replyTo);

    await app.publishAsync(topics.requests, JSON.stringify({ id: "big", replyTo, pad: "x".repeat(MAX_PACKET_BYTES) }), { qos: 1 });
    await app.publishAsync(topics.requests, requestText("small", replyTo), { qos: 1 });

    await eventually(() => expect(ids(answers)).toEqual(["small"]));
    expect(sink.calls).toHaveLength(1);
  });

  it("a replyTo outside the IQ's response tree gets nothing published", async () => {
    const hub = await connectedHub();
    const { topics } = hub.transport;
    const app = await connectClient(broker.url);
    const otherIq = topicsFor("iq-someone-else");
    const refused = ["elsewhere/inbox", responseTopic(otherIq, "app"), topics.responses, `${topics.responses}/+`];
    const misdirected = (await Promise.all(["elsewhere/inbox", responseTopic(otherIq, "app"), topics.responses].map((t) => collect(app, t)))).flat();
    const replyTo = responseTopic(topics, "app-ok");
    const answered = await collect(app, replyTo);

    for (const [i, topic] of refused.entries()) {
      await app.publishAsync(topics.requests, requestText(`bad-${i}`, topic), { qos: 1 });
    }
    // Requests are answered in order of arrival: once this one is, the others were refused.
    await app.publishAsync(topics.requests, requestText("ok", replyTo), { qos: 1 });

    await eventually(() => expect(ids(answered)).toEqual(["ok"]));
    expect(misdirected).toEqual([]);
    // Counted, not logged one line each: a stranger chooses them at any rate.
    expect(hub.logs.filter((line) => line.includes("outside this IQ's response tree"))).toHaveLength(1);
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

    await eventually(() => expect(ids(responses)).toEqual(["live"]));
    expect(sink.calls).toHaveLength(1);
    expect(hub.logs.some((line) => line.includes("dropped a retained request"))).toBe(true);
  });

  it("a request retained while the hub listens is not executed, and no retained request is left at the broker", async () => {
    const sink = echoSink();
    const hub = await connectedHub({ onRequest: sink });
    const { topics } = hub.transport;
    const app = await connectClient(broker.url);
    const replyTo = responseTopic(topics, "app-rl");
    const responses = await collect(app, replyTo);

    await publishRetained(broker.url, topics.requests, requestText("retained-live", replyTo));
    await app.publishAsync(topics.requests, requestText("live", replyTo), { qos: 1 });

    await eventually(() => expect(ids(responses)).toEqual(["live"]));
    expect(sink.calls).toHaveLength(1);
    await eventually(async () => expect(await retainedOn(broker.url, topics.requests)).toBeUndefined());
  });

  it("a response unacknowledged when the connection dies is not sent again after the reconnect", async () => {
    const proxy = await startTcpProxy(broker.port);
    const echo = echoSink();
    let release = () => undefined as void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const hub = await connectedHub({
      mqtt: { url: proxy.url },
      onRequest: async (request) => (JSON.parse(Buffer.from(request.payload).toString()) as { id: string }).id === "stalled" ? gate.then(() => echo(request)) : echo(request),
    });
    const { topics } = hub.transport;
    const app = await connectClient(broker.url);
    const replyTo = responseTopic(topics, "app-st");
    const answers = await collect(app, replyTo);
    const events = await collect(app, topics.events);
    await app.publishAsync(topics.requests, requestText("stalled", replyTo), { qos: 1 });
    // An event sent after the request's PUBACK, on the same connection: once it is through, so is the PUBACK.
    await eventually(async () => expect(await hub.audit.pending()).toEqual([]));
    await hub.audit.record({ type: "test.barrier", source: "system" });
    await eventually(() => expect(events).toHaveLength(1));

    proxy.stall();
    release();
    await new Promise((resolve) => setImmediate(resolve));
    proxy.hold();
    proxy.cut();
    await eventually(() => expect(hub.connection).toEqual([true, false]));
    proxy.release();
    await eventually(() => expect(hub.connection).toEqual([true, false, true]));
    await app.publishAsync(topics.requests, requestText("after", replyTo), { qos: 1 });

    await eventually(() => expect(ids(answers)).toEqual(["after"]));
  });

  it("a request sent while the hub restarts waits in its session and is answered once it is back", async () => {
    const first = await connectedHub();
    const { topics } = first.transport;
    await first.transport.stop();
    const app = await connectClient(broker.url);
    const replyTo = responseTopic(topics, "app-s");
    const responses = await collect(app, replyTo);
    await app.publishAsync(topics.requests, requestText("queued", replyTo), { qos: 1 });

    await connectedHub({ iqId: first.iqId, stateDir: first.stateDir, store: first.store, audit: first.audit });

    await eventually(() => expect(ids(responses)).toEqual(["queued"]));
  });

  it("the hub sets TCP_NODELAY on its broker socket (Nagle and delayed ACKs add 40-90 ms per QoS 1 round trip)", async () => {
    // The latency itself is measured by `npm run bench`; here, that the hub asks for it.
    const setNoDelay = vi.spyOn(Socket.prototype, "setNoDelay");
    try {
      const hub = await connectedHub();
      const stream = (hub.transport as unknown as { client: { stream: Socket } }).client.stream;
      const calls = setNoDelay.mock.contexts.map((socket, i) => [socket, setNoDelay.mock.calls[i]?.[0]]);
      expect(calls).toContainEqual([stream, true]);
    } finally {
      setNoDelay.mockRestore();
    }
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

    await eventually(() => expect(ids(responses)).toEqual(["second"]));
    expect(hub.logs.some((line) => line.includes("request handler failed") && line.includes("handler bug"))).toBe(true);
  });
});

describe("MQTT 5 response topics outside the tree", () => {
  it("a flood of long ones adds a few KB of log at most, not a line holding each topic", async ({ skip }) => {
    skip(broker.protocolVersion < 5, "the test broker speaks MQTT 3.1.1 only");
    const sink = echoSink();
    const hub = await connectedHub({ onRequest: sink });
    const { topics } = hub.transport;
    const app = await connectClient(broker.url, { protocolVersion: 5 });
    const replyTo = responseTopic(topics, "app-flood");
    const answers = await collect(app, replyTo);
    const logged = () => hub.logs.reduce((bytes, line) => bytes + line.length + 1, 0);
    const before = logged();

    for (let i = 0; i < 500; i += 1) {
      const responseTopic = `elsewhere/${i}/${"x".repeat(16_000)}`;
      await app.publishAsync(topics.requests, requestText(`flood-${i}`), { qos: 1, properties: { responseTopic } });
    }
    await app.publishAsync(topics.requests, requestText("last", replyTo), { qos: 1 });

    await eventually(() => expect(ids(answers)).toEqual(["last"]));
    expect(sink.calls).toHaveLength(501);
    console.info(`log grew by ${logged() - before} bytes for 500 stray response topics of 16 KB`);
    expect(logged() - before).toBeLessThan(2_048);
  });
});
