/**
 * Whoever connects with the hub's client id takes its session: its subscription and the
 * requests queued in it. The id was `iq-<iqId>`, and the iqId is public. Through mosquitto.
 */
import { once } from "node:events";
import { readFileSync } from "node:fs";
import { createServer, type AddressInfo, type Socket } from "node:net";
import { generate, parser, type Packet } from "mqtt-packet";
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from "vitest";
import { describePattern, LED_TABLE } from "../../../firmware/led-table.js";
import { clientIdFile } from "../../../firmware/transports/client-id.js";
import { responseTopic } from "../../../provisioning/protocol/topics.js";
import { startTestBroker, type TestBroker } from "../../support/broker.js";
import { startTestHub } from "../../support/hub.js";
import { brokerConfig, collect, connectClient, eventually, type HubTransport, requestText, startHubTransport } from "../../support/mqtt.js";

let broker: TestBroker;
beforeAll(async () => {
  broker = await startTestBroker();
});
afterAll(() => broker.stop());

async function connectedHub(): Promise<HubTransport> {
  const hub = await startHubTransport({ mqtt: brokerConfig(broker) });
  await eventually(() => expect(hub.connection).toEqual([true]));
  return hub;
}

/** Sends a request as an app and waits for its answer. */
async function roundTrip(hub: HubTransport, id: string): Promise<void> {
  const { topics } = hub.transport;
  const app = await connectClient(broker.url);
  const replyTo = responseTopic(topics, `app-${id}`);
  const answers = await collect(app, replyTo);
  await app.publishAsync(topics.requests, requestText(id, replyTo), { qos: 1 });
  await eventually(() => expect(answers.map((a) => (JSON.parse(a.text) as { id: string }).id)).toContain(id));
}

const TAKEOVER_LOG = "another client is using the hub's MQTT client id";
/** mosquitto 2.0.11 and aedes close the old connection without a DISCONNECT 0x8E: the hub goes by closes right after CONNACK. */
const TAKEOVER_EVIDENCE = [
  "the broker closed the connection within 5 s of accepting it, 3 times in a row",
  "the broker said the session was taken over (MQTT 5 reason 0x8E)",
];

describe("the hub's MQTT session", () => {
  it("a client connecting with the hub's former id iq-<iqId> gets nothing and leaves the hub connected", async () => {
    const hub = await connectedHub();
    const attacker = await connectClient(broker.url, { clientId: `iq-${hub.iqId}`, clean: false, protocolVersion: broker.protocolVersion });
    const stolen: string[] = [];
    attacker.on("message", (topic) => stolen.push(topic));

    await roundTrip(hub, "first");
    await roundTrip(hub, "second");

    expect(stolen).toEqual([]);
    expect(hub.connection).toEqual([true]);
    expect(hub.contested).toEqual([]);
  });

  it("a client that has the hub's actual id: a session_takeover event, one log line, the LED, and the hub takes its session back", async () => {
    const hub = await connectedHub();
    const clientId = readFileSync(clientIdFile(hub.stateDir), "utf8").trim();
    expect(clientId).toMatch(new RegExp(`^iq-${hub.iqId}-[0-9a-f]{32}$`));
    // Reconnects whenever the hub takes the session back, as a thief who wants the requests must.
    const attacker = await connectClient(broker.url, { clientId, clean: false, protocolVersion: broker.protocolVersion, reconnectPeriod: 100 });

    await eventually(() => expect(hub.contested).toEqual([true]), 15_000);
    await eventually(async () => {
      const takeovers = (await hub.audit.list()).filter((event) => event.type === "session_takeover");
      expect(takeovers.map((event) => event.source)).toEqual(["system"]);
      expect(TAKEOVER_EVIDENCE).toContain(takeovers[0]?.details?.evidence);
    });

    await attacker.endAsync(true);
    await eventually(() => expect(hub.connection.at(-1)).toBe(true));
    await roundTrip(hub, "reclaimed");
    expect(hub.logs.filter((line) => line.includes(TAKEOVER_LOG))).toHaveLength(1);
  });

  it("on the real hub, a contested session shows on the LED: yellow, fast blink", async () => {
    const iq = await startTestHub({ broker });
    onTestFinished(() => iq.stop());
    await eventually(() => expect(iq.hub.lifecycle.state).toBe("claimWindow"));
    iq.hub.lifecycle.enter("activated");
    const clientId = readFileSync(clientIdFile(iq.stateDir), "utf8").trim();
    const attacker = await connectClient(broker.url, { clientId, clean: false, protocolVersion: broker.protocolVersion, reconnectPeriod: 100 });

    await eventually(() => expect(iq.hub.lifecycle.state).toBe("brokerContested"), 15_000);
    expect(describePattern(LED_TABLE[iq.hub.lifecycle.state])).toBe("yellow, fast blink");
    await attacker.endAsync(true);
  });

  it("an MQTT 5 broker that says the session was taken over (DISCONNECT 0x8E): contested at the first", async () => {
    const port = await fakeBrokerTakingOverOnce();
    const hub = await startHubTransport({ mqtt: { url: `mqtt://127.0.0.1:${port}`, protocolVersion: 5 } });

    await eventually(() => expect(hub.contested).toEqual([true]));
    await eventually(async () =>
      expect((await hub.audit.list()).map((event) => event.details?.evidence)).toEqual([
        "the broker said the session was taken over (MQTT 5 reason 0x8E)",
      ]),
    );
    await eventually(() => expect(hub.connection).toEqual([true, false, true]));
  });
});

/**
 * Just enough of an MQTT 5 broker (mosquitto 2.0.11 sends no 0x8E): it accepts the hub, and on
 * the first connection tells it, once subscribed, that another client took the session.
 */
async function fakeBrokerTakingOverOnce(): Promise<number> {
  let connections = 0;
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    const first = ++connections === 1;
    const send = (packet: Packet) => socket.write(generate(packet, { protocolVersion: 5 }));
    const packets = parser({ protocolVersion: 5 });
    packets.on("packet", (packet: Packet) => {
      if (packet.cmd === "connect") send({ cmd: "connack", reasonCode: 0, sessionPresent: false });
      if (packet.cmd === "publish" && packet.qos === 1) send({ cmd: "puback", messageId: packet.messageId, reasonCode: 0 });
      if (packet.cmd === "subscribe") {
        send({ cmd: "suback", messageId: packet.messageId, granted: [1] });
        if (first) {
          send({ cmd: "disconnect", reasonCode: 0x8e });
          socket.end();
        }
      }
    });
    socket.on("data", (chunk) => packets.parse(chunk));
    socket.on("error", () => undefined);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  onTestFinished(async () => {
    sockets.forEach((socket) => socket.destroy());
    await new Promise((resolve) => server.close(resolve));
  });
  return (server.address() as AddressInfo).port;
}
