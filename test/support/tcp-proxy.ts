/**
 * A TCP relay between the hub and the broker, so that a test can break the network under a live
 * connection: cut it (the broker then publishes the hub's will), stall it (bytes vanish, as on a
 * dead path, and nothing is acknowledged), or keep the hub away from a broker that is back until
 * the test is ready for it.
 */
import { once } from "node:events";
import { connect, createServer, type AddressInfo, type Socket } from "node:net";
import { onTestFinished } from "vitest";

export interface TcpProxy {
  url: string;
  /** Drops every relayed connection at once, without a word to either side. */
  cut(): void;
  /** The connections open now carry nothing more, in either direction; new ones work. */
  stall(): void;
  /** Turns new connections away until `release`. */
  hold(): void;
  release(): void;
}

interface Relay {
  sockets: [Socket, Socket];
  stalled: boolean;
}

/** A relay to 127.0.0.1:`targetPort`, closed when the current test ends. */
export async function startTcpProxy(targetPort: number): Promise<TcpProxy> {
  const relays = new Set<Relay>();
  let held = false;
  const server = createServer({ noDelay: true }, (client) => {
    if (held) {
      client.destroy();
      return;
    }
    const upstream = connect({ port: targetPort, host: "127.0.0.1", noDelay: true });
    const relay: Relay = { sockets: [client, upstream], stalled: false };
    relays.add(relay);
    const end = () => {
      client.destroy();
      upstream.destroy();
      relays.delete(relay);
    };
    // Either side ending or failing ends both, as a broken network would.
    for (const [from, to] of [
      [client, upstream],
      [upstream, client],
    ] as const) {
      from.on("data", (chunk) => relay.stalled || to.write(chunk));
      from.once("error", end);
      from.once("close", end);
    }
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  const cut = () => relays.forEach((relay) => relay.sockets.forEach((socket) => socket.destroy()));
  onTestFinished(async () => {
    cut();
    await new Promise((resolve) => server.close(resolve));
  });
  return {
    url: `mqtt://127.0.0.1:${port}`,
    cut,
    stall: () => relays.forEach((relay) => (relay.stalled = true)),
    hold: () => (held = true),
    release: () => (held = false),
  };
}
