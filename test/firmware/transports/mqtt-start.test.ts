import { once } from "node:events";
import { createServer } from "node:net";
import { describe, expect, it, onTestFinished } from "vitest";
import { validateConfig } from "../../../firmware/config.js";
import { createLogger } from "../../../firmware/log.js";
import { startEmbeddedBroker } from "../../../firmware/transports/embedded-broker.js";
import { reconnectDelayMs } from "../../../firmware/transports/mqtt.js";
import { DEFAULT_TOPIC_PREFIX, responseTopic } from "../../../provisioning/protocol/topics.js";
import { freePort, startTestBroker } from "../../support/broker.js";
import { collect, connectClient, echoSink, eventually, publishRetained, requestText, retainedOn, startHubTransport } from "../../support/mqtt.js";

/** A hub transport behind its embedded broker, and a 3.1.1 app listening on its reply topic. */
async function embeddedHubWithApp(clientId: string) {
  const port = await freePort();
  const sink = echoSink();
  const hub = await startHubTransport({ mqtt: { embeddedPort: port }, onRequest: sink });
  await eventually(() => expect(hub.connection).toEqual([true]));
  const url = `mqtt://127.0.0.1:${port}`;
  const app = await connectClient(url, { protocolVersion: 4 });
  const { topics } = hub.transport;
  const replyTo = responseTopic(topics, clientId);
  const responses = await collect(app, replyTo);
  return { app, topics, replyTo, responses, url, sink };
}

describe("starting the MQTT transport", () => {
  it("with no mqtt.url the hub runs an embedded broker on loopback that a 3.1.1 client can use", async () => {
    const { app, topics, replyTo, responses } = await embeddedHubWithApp("app-e");
    const availability = await collect(app, topics.availability);

    await app.publishAsync(topics.requests, requestText("e1", replyTo), { qos: 1 });

    await eventually(() => expect(responses.map((r) => JSON.parse(r.text) as unknown)).toEqual([{ id: "e1", ok: true }]));
    expect(availability.map((message) => [message.text, message.packet.retain])).toEqual([["online", true]]);
  });

  it("the embedded broker refuses a retained request (it would reach the hub as a live one) and closes its sender", async () => {
    const { app, topics, replyTo, responses, url, sink } = await embeddedHubWithApp("app-er");

    await publishRetained(url, topics.requests, requestText("retained", replyTo));
    await app.publishAsync(topics.requests, requestText("live", replyTo), { qos: 1 });

    await eventually(() => expect(responses.map((r) => (JSON.parse(r.text) as { id: string }).id)).toEqual(["live"]));
    expect(sink.calls).toHaveLength(1);
    expect(await retainedOn(url, topics.requests)).toBeUndefined();
  });

  it("a taken embedded port stops the start with a message naming the port and mqtt.url", async () => {
    const squatter = createServer().listen(0, "127.0.0.1");
    await once(squatter, "listening");
    onTestFinished(() => void squatter.close());
    const { port } = squatter.address() as { port: number };

    const error = await startEmbeddedBroker({ host: "127.0.0.1", port, topicPrefix: DEFAULT_TOPIC_PREFIX, log: createLogger({ level: "error" }) }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "embedded_broker_port_in_use", details: { host: "127.0.0.1", port } });
    expect((error as Error).message).toMatch(new RegExp(`^port ${port} on 127\\.0\\.0\\.1 is in use, so the embedded MQTT broker cannot start`));
    expect((error as Error).message).toContain(`set mqtt.url to use it (mqtt://127.0.0.1:${port})`);
    expect((error as Error).message).toContain("mqtt.embeddedPort");
  });

  it("with the embedded port taken by a real broker, the hub does not use it: the start fails", async () => {
    const local = await startTestBroker();
    onTestFinished(() => local.stop());
    await expect(startHubTransport({ mqtt: { embeddedPort: local.port, protocolVersion: 4 } })).rejects.toMatchObject({
      code: "embedded_broker_port_in_use",
    });
  });

  it("an unreadable TLS file stops the start, naming its key", async () => {
    await expect(startHubTransport({ mqtt: { url: "mqtts://127.0.0.1:8883", ca: "/nonexistent/ca.pem" } })).rejects.toThrow(
      /^config: mqtt\.ca: cannot read \/nonexistent\/ca\.pem/,
    );
  });

  it("MQTT 5 with the embedded broker is refused by the config, which says why", () => {
    expect(() => validateConfig({ mqtt: { protocolVersion: 5 } })).toThrow(/mqtt\.protocolVersion: the embedded broker speaks MQTT 3\.1\.1 only/);
    expect(validateConfig({ mqtt: { url: "mqtt://broker:1883", protocolVersion: 5 } }).mqtt.protocolVersion).toBe(5);
  });

  it("reconnect delays double from the minimum to the maximum, jittered within each step", () => {
    const low = () => 0;
    const high = () => 1;
    expect([0, 1, 2, 3, 4, 5, 10].map((attempt) => reconnectDelayMs(attempt, 1_000, 30_000, low))).toEqual([
      1_000, 2_000, 4_000, 8_000, 15_000, 15_000, 15_000,
    ]);
    expect([0, 1, 2, 3, 4, 5, 10].map((attempt) => reconnectDelayMs(attempt, 1_000, 30_000, high))).toEqual([
      2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000,
    ]);
  });
});
