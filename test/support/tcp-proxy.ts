/**
 * A TCP relay between the hub and the broker, so that a test can cut the network under a live
 * connection (the broker then publishes the hub's will) or keep the hub away from a broker
 * that is back, until the test is ready for it.
 */
import { once } from "node:events";
import { connect, createServer, type AddressInfo, type Socket } from "node:net";
import { onTestFinished } from "vitest";

export interface TcpProxy {
  url: string;
  /** Drops every relayed connection at once, without a word to either side. */
  cut(): void;
  /** Turns new connections away until `release`. */
  hold(): void;
  release(): void;
}

/** A relay to 127.0.0.1:`targetPort`, closed when the current test ends. */
export async function startTcpProxy(targetPort: number): Promise<TcpProxy> {
  const sockets = new Set<Socket>();
  let held = false;
  const track = (socket: Socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  };
  const server = createServer({ noDelay: true }, (client) => {
    track(client);
    if (held) {
      client.destroy();
      return;
    }
    const upstream = connect({ port: targetPort, host: "127.0.0.1", noDelay: true });
    track(upstream);
    // Either side ending or failing ends both, as a broken network would.
    for (const [from, to] of [
      [client, upstream],
      [upstream, client],
    ] as const) {
      from.pipe(to);
      from.once("error", () => to.destroy());
      from.once("close", () => to.destroy());
    }
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  const cut = () => sockets.forEach((socket) => socket.destroy());
  onTestFinished(async () => {
    cut();
    await new Promise((resolve) => server.close(resolve));
  });
  return {
    url: `mqtt://127.0.0.1:${port}`,
    cut,
    hold: () => (held = true),
    release: () => (held = false),
  };
}
