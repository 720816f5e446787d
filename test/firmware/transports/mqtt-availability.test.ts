import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestBroker, type TestBroker } from "../../support/broker.js";
import { brokerConfig, eventually, retainedOn, signedBody, startHubTransport, type HubTransport } from "../../support/mqtt.js";
import { startTcpProxy } from "../../support/tcp-proxy.js";

let broker: TestBroker;
beforeAll(async () => {
  broker = await startTestBroker();
});
afterAll(() => broker.stop());

const retainedValue = (topic: string) => retainedOn(broker.url, topic);

/** The retained state's body, checked against the hub's identity key; its publication time left out. */
async function retainedState(hub: HubTransport): Promise<unknown> {
  const text = await retainedValue(hub.transport.topics.state);
  if (text === undefined) return undefined;
  const { at, ...state } = signedBody(text, "state", hub);
  expect(typeof at).toBe("string");
  return state;
}

describe("MQTT availability and state", () => {
  it("availability is online, retained, while the hub is up and offline (its will) once its connection dies", async () => {
    const proxy = await startTcpProxy(broker.port);
    const hub = await startHubTransport({ mqtt: brokerConfig(broker, proxy.url) });
    const { availability } = hub.transport.topics;
    await eventually(async () => expect(await retainedValue(availability)).toBe("online"));

    proxy.hold();
    proxy.cut();

    await eventually(async () => expect(await retainedValue(availability)).toBe("offline"));
    expect(hub.connection).toEqual([true, false]);

    proxy.release();
    await eventually(async () => expect(await retainedValue(availability)).toBe("online"));
    expect(hub.connection).toEqual([true, false, true]);
  });

  it("state is retained and published again after the broker restarts", async () => {
    const proxy = await startTcpProxy(broker.port);
    const hub = await startHubTransport({ mqtt: brokerConfig(broker, proxy.url) });
    hub.transport.publishState({ phase: "activated", officeMode: false });
    await eventually(async () => expect(await retainedState(hub)).toEqual({ phase: "activated", officeMode: false }));
    hub.transport.publishState({ phase: "activated", officeMode: true });
    await eventually(async () => expect(await retainedState(hub)).toEqual({ phase: "activated", officeMode: true }));

    // The test broker keeps nothing across a restart: only the hub can bring the state back.
    proxy.hold();
    await broker.restart();
    expect(await retainedState(hub)).toBeUndefined();
    proxy.release();

    await eventually(() => expect(hub.connection).toEqual([true, false, true]));
    await eventually(async () => expect(await retainedState(hub)).toEqual({ phase: "activated", officeMode: true }));
    expect(await retainedValue(hub.transport.topics.availability)).toBe("online");
  });
});
