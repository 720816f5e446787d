/**
 * A broker that refuses the hub its request topic (an ACL on EMQX, HiveMQ …): the hub must not
 * look connected (its LED would say "ready" while nobody can reach it), and it keeps trying.
 */
import { once } from "node:events";
import { createServer, type AddressInfo } from "node:net";
import { Aedes } from "aedes";
import { describe, expect, it, onTestFinished } from "vitest";
import { eventually, startHubTransport } from "../../support/mqtt.js";

describe("a broker that refuses the request topic", () => {
  it("leaves the hub reported as not connected, and it keeps trying", async () => {
    let refusals = 0;
    const broker = await Aedes.createBroker({
      maxClientsIdLength: 128,
      authorizeSubscribe: (_client, subscription, done) => {
        if (subscription.topic.endsWith("/req")) {
          refusals += 1;
          done(null, null); // aedes: a null subscription is a refusal (SUBACK 0x80)
        } else done(null, subscription);
      },
    });
    const server = createServer({ noDelay: true }, (socket) => broker.handle(socket));
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    onTestFinished(async () => {
      await new Promise<void>((resolve) => broker.close(() => resolve()));
      await new Promise((resolve) => server.close(resolve));
    });
    const { port } = server.address() as AddressInfo;
    const hub = await startHubTransport({
      mqtt: { url: `mqtt://127.0.0.1:${port}`, protocolVersion: 4, reconnectMinMs: 100, reconnectMaxMs: 1_000 },
    });
    await eventually(() => expect(hub.connection).toEqual([true, false]));
    await eventually(() => expect(refusals).toBeGreaterThan(1));
  });
});
