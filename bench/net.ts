/**
 * Loopback helpers shared by the benchmark and the tests (which import them from here): a free
 * port to start a broker or hub on, whether something already listens on one, and the local
 * mosquitto (where it is, and the config both run it with).
 */
import { accessSync, constants } from "node:fs";
import { connect, createServer, type AddressInfo } from "node:net";
import { delimiter, join } from "node:path";

export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** True once `port` on 127.0.0.1 accepts a connection. */
export function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

/** mosquitto where Debian installs it, else on PATH; undefined when it is not installed. */
export function findMosquitto(): string | undefined {
  const candidates = ["/usr/sbin/mosquitto", ...(process.env.PATH ?? "").split(delimiter).map((dir) => join(dir, "mosquitto"))];
  return candidates.find((path) => {
    try {
      accessSync(path, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/**
 * mosquitto on loopback, anonymous, in memory, with TCP_NODELAY (DESIGN: Nagle adds 40–90 ms per
 * QoS 1 exchange). `listenerOptions` go with the listener (TLS files, say).
 */
export function mosquittoConfig(port: number, listenerOptions: readonly string[] = []): string {
  const lines = [
    `listener ${port} 127.0.0.1`,
    ...listenerOptions,
    "allow_anonymous true",
    "set_tcp_nodelay true",
    "persistence false",
    "log_dest stderr",
  ];
  return `${lines.join("\n")}\n`;
}
