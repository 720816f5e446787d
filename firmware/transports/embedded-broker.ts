/**
 * The broker the hub runs itself when no `mqtt.url` is configured, so that a newcomer's first
 * run works with nothing installed. aedes speaks MQTT 3.1.1 only and keeps sessions and retained
 * messages in memory: enough for one site on a laptop, not a replacement for mosquitto on a Pi.
 */
import { once } from "node:events";
import { createServer, type AddressInfo } from "node:net";
import { Aedes } from "aedes";
import { IqError } from "../errors.js";
import type { Logger } from "../log.js";

export interface EmbeddedBrokerOptions {
  /** A loopback address: the config refuses any other, since this broker has no authentication. */
  host: string;
  /** 0 picks a free port (tests). */
  port: number;
  log: Logger;
}

export interface EmbeddedBroker {
  /** mqtt://host:port, ready to connect to. */
  url: string;
  close(): Promise<void>;
}

/** aedes refuses client ids over 23 characters by default (the 3.1.1 minimum); the hub's is `iq-<iqId>`, up to 43. */
const MAX_CLIENT_ID_LENGTH = 128;

export async function startEmbeddedBroker({ host, port, log }: EmbeddedBrokerOptions): Promise<EmbeddedBroker> {
  const broker = await Aedes.createBroker({ maxClientsIdLength: MAX_CLIENT_ID_LENGTH });
  broker.on("clientError", (client, error) => log.debug("embedded broker: client error", { client: client.id, error }));
  // Nagle's algorithm on the broker's side of the socket delays every PUBACK by up to 40 ms.
  const server = createServer({ noDelay: true }, (socket) => broker.handle(socket));
  try {
    server.listen(port, host);
    await once(server, "listening");
  } catch (error) {
    broker.close();
    throw listenError(error, host, port);
  }
  const bound = (server.address() as AddressInfo).port;
  const url = `mqtt://${urlHost(host)}:${bound}`;
  log.info("embedded MQTT broker listening (MQTT 3.1.1 only)", { url });
  return {
    url,
    async close() {
      // aedes disconnects its clients; only then can the server finish closing.
      await new Promise<void>((resolve) => broker.close(() => resolve()));
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function listenError(error: unknown, host: string, port: number): IqError {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === "EADDRINUSE") {
    // Never connect to whatever listens there instead: a broker nobody configured decides who
    // may send the hub requests. Whoever installed it must say so with mqtt.url.
    return new IqError(
      "embedded_broker_port_in_use",
      `port ${port} on ${host} is in use, so the embedded MQTT broker cannot start. If a broker of yours ` +
        `(mosquitto?) listens there, set mqtt.url to use it (mqtt://${urlHost(host)}:${port}); ` +
        "otherwise stop what holds the port or set mqtt.embeddedPort to a free one",
      { host, port },
    );
  }
  return new IqError(
    "embedded_broker_failed",
    `cannot start the embedded MQTT broker on ${host}:${port}: ${(error as Error).message}; check mqtt.embeddedHost and mqtt.embeddedPort`,
    { host, port },
  );
}

/** An IPv6 address goes in brackets in a URL. */
function urlHost(host: string): string {
  return host.includes(":") ? `[${host}]` : host;
}
