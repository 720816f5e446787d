/**
 * The hub must not rely on its session at the broker: it subscribes on every connect, even when
 * the broker says it kept the session (sessionPresent), whose subscription may be missing or
 * carry other options.
 */
import { once } from "node:events";
import { createServer, type AddressInfo } from "node:net";
import { Aedes } from "aedes";
import { describe, expect, it, onTestFinished } from "vitest";
import { eventually, startHubTransport } from "../../support/mqtt.js";

describe("the hub's subscription", () => {
  it("is made again at a connect that finds its session kept", async () => {
    const subscribed: string[] = [];
    const sessionPresent: boolean[] = [];
    const broker = await Aedes.createBroker({ maxClientsIdLength: 128 });
    broker.on("subscribe", (subscriptions) => subscribed.push(...subscriptions.map((s) => s.topic)));
    broker.on("connackSent", (packet) => sessionPresent.push(packet.sessionPresent));
    const server = createServer((socket) => broker.handle(socket));
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    onTestFinished(async () => {
      await new Promise<void>((resolve) => broker.close(() => resolve()));
      await new Promise((resolve) => server.close(resolve));
    });
    const mqtt = { url: `mqtt://127.0.0.1:${(server.address() as AddressInfo).port}`, protocolVersion: 4 as const };
    const first = await startHubTransport({ mqtt });
    await eventually(() => expect(subscribed).toEqual([first.transport.topics.requests]));
    await first.transport.stop();

    await startHubTransport({ mqtt, iqId: first.iqId, stateDir: first.stateDir, store: first.store, audit: first.audit });

    await eventually(() => expect(sessionPresent).toEqual([false, true]));
    await eventually(() => expect(subscribed).toEqual([first.transport.topics.requests, first.transport.topics.requests]));
  });
});
