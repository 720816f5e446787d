import type { MqttClient } from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Audit } from "../../../firmware/audit.js";
import { startTestBroker, type TestBroker } from "../../support/broker.js";
import { brokerConfig, collect, connectClient, eventually, type Received, startHubTransport } from "../../support/mqtt.js";
import { startTcpProxy } from "../../support/tcp-proxy.js";

let broker: TestBroker;
beforeAll(async () => {
  broker = await startTestBroker();
});
afterAll(() => broker.stop());

const OUTAGE_MS = 10_000;

function recordOpenings(audit: Audit, count: number): Promise<unknown> {
  return Promise.all(Array.from({ length: count }, () => audit.record({ type: "door.opened", source: "system", lock: "door" })));
}

/** The seq of each event the first time it was seen, in order of arrival: duplicates are allowed, gaps are not. */
function firstSightings(received: readonly Received[]): number[] {
  const seen = new Set<number>();
  // Each event is a signed document; its seq is in the signed text (signatures: test/e2e, identity tests).
  for (const message of received) seen.add((JSON.parse((JSON.parse(message.text) as { signed: string }).signed) as { seq: number }).seq);
  return [...seen];
}

const oneTo = (n: number) => Array.from({ length: n }, (_, i) => i + 1);

/** Subscribes again after a broker restart (which forgot every subscription) and waits for the SUBACK. */
async function resubscribe(client: MqttClient, topic: string): Promise<void> {
  await eventually(() => expect(client.connected).toBe(true), 10_000);
  await client.subscribeAsync(topic, { qos: 1 });
}

describe("MQTT events", () => {
  it("every event recorded while the broker is down for 10 s arrives, in order, once it is back", { timeout: 40_000 }, async () => {
    // The hub reaches the broker through a relay held shut until the subscriber is back, so that no event can
    // reach a restarted broker that has nobody subscribed yet.
    const proxy = await startTcpProxy(broker.port);
    const hub = await startHubTransport({ mqtt: brokerConfig(broker, proxy.url) });
    const cloud = await connectClient(broker.url);
    const events = await collect(cloud, hub.transport.topics.events);
    await eventually(() => expect(hub.connection).toEqual([true]));
    await recordOpenings(hub.audit, 20);
    await eventually(() => expect(firstSightings(events)).toEqual(oneTo(20)));

    // Some of this burst is still in flight when the broker goes.
    const burst = recordOpenings(hub.audit, 200);
    await broker.stop();
    await burst;
    const until = Date.now() + OUTAGE_MS;
    while (Date.now() < until) {
      await recordOpenings(hub.audit, 5);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(hub.connection).toEqual([true, false]);
    expect((await hub.audit.pending(1_000)).length).toBeGreaterThan(100);
    proxy.hold();
    await broker.restart();
    await resubscribe(cloud, hub.transport.topics.events);
    proxy.release();
    await recordOpenings(hub.audit, 20);

    const total = hub.audit.lastSequence;
    await eventually(() => expect(firstSightings(events)).toEqual(oneTo(total)), 10_000);
    await eventually(async () => expect(await hub.audit.pending()).toEqual([]));
    expect(events.every((message) => !message.packet.retain && message.packet.qos === 1)).toBe(true);
  });

  it("events in flight or recorded while the hub is stopped are sent by the next start", async () => {
    const proxy = await startTcpProxy(broker.port);
    const first = await startHubTransport({ mqtt: brokerConfig(broker, proxy.url) });
    const cloud = await connectClient(broker.url);
    const events = await collect(cloud, first.transport.topics.events);
    await recordOpenings(first.audit, 3);
    await eventually(() => expect(firstSightings(events)).toEqual(oneTo(3)));

    // Published into a dead path, never acknowledged: only the outbox still has them when the hub stops.
    proxy.stall();
    await recordOpenings(first.audit, 5);
    await first.transport.stop();
    await recordOpenings(first.audit, 200);
    const second = await startHubTransport({
      mqtt: brokerConfig(broker, proxy.url),
      store: first.store,
      audit: first.audit,
      stateDir: first.stateDir,
      iqId: first.iqId,
    });
    await recordOpenings(second.audit, 2);

    await eventually(() => expect(firstSightings(events)).toEqual(oneTo(210)));
    await eventually(async () => expect(await second.audit.pending()).toEqual([]));
  });
});
