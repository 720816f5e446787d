/**
 * The broker the hub runs itself when no `mqtt.url` is configured, so that a newcomer's first
 * run works with nothing installed. aedes speaks MQTT 3.1.1 only and keeps sessions and retained
 * messages in memory: enough for one site on a laptop, not a replacement for mosquitto on a Pi.
 * Anyone on the machine can connect, so what one client can make it hold is capped: packets a
 * little above the largest request, connections, and retained requests not at all.
 */
import { once } from "node:events";
import { createServer, type AddressInfo } from "node:net";
import { Aedes, type AedesOptions } from "aedes";
import { topicsFor } from "../../provisioning/protocol/topics.js";
import { IqError } from "../errors.js";
import { CountedWarning, type Logger } from "../log.js";
import { guardPacketSize, MAX_PACKET_BYTES } from "./packet-size-guard.js";

export interface EmbeddedBrokerOptions {
  /** A loopback address: the config refuses any other, since this broker has no authentication. */
  host: string;
  /** 0 picks a free port (tests). */
  port: number;
  /** The IQ topic tree's prefix: retained messages on any IQ's request topic are refused. */
  topicPrefix: string;
  log: Logger;
}

export interface EmbeddedBroker {
  /** mqtt://host:port, ready to connect to. */
  url: string;
  close(): Promise<void>;
}

/** aedes refuses client ids over 23 characters by default (the 3.1.1 minimum); the hub's is `iq-<iqId>-<32 hex>`, up to 76. */
const MAX_CLIENT_ID_LENGTH = 128;

/**
 * Each connection may hold one packet being received (up to MAX_PACKET_BYTES) and its queues: a
 * site has a hub, a web relay and a few apps at a time, so this leaves room and caps the whole.
 */
const MAX_CONNECTIONS = 100;

export async function startEmbeddedBroker({ host, port, topicPrefix, log }: EmbeddedBrokerOptions): Promise<EmbeddedBroker> {
  const broker = await Aedes.createBroker({
    maxClientsIdLength: MAX_CLIENT_ID_LENGTH,
    authorizePublish: refuseRetainedRequests(topicPrefix),
  });
  broker.on("clientError", (client, error) => log.debug("embedded broker: client error", { client: client.id, error }));
  const oversized = new CountedWarning(log, `embedded broker: closed a connection that sent a packet over ${MAX_PACKET_BYTES} bytes`);
  // Nagle's algorithm on the broker's side of the socket delays every PUBACK by up to 40 ms.
  const server = createServer({ noDelay: true }, (socket) =>
    broker.handle(guardPacketSize(socket, MAX_PACKET_BYTES, () => oversized.note())),
  );
  server.maxConnections = MAX_CONNECTIONS;
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

/**
 * aedes hands a live retained message to subscribers with the retain flag cleared, as MQTT 3.1.1
 * says it must, so the hub cannot tell a retained request from a live one: it is refused here,
 * which in 3.1.1 means closing the publisher's connection. `$SYS/` stays the broker's, as with
 * aedes's default check, which this one replaces.
 */
function refuseRetainedRequests(topicPrefix: string): NonNullable<AedesOptions["authorizePublish"]> {
  const filter = topicsFor("+", topicPrefix).requests.split("/");
  const isRequestTopic = (topic: string) => {
    const levels = topic.split("/");
    return levels.length === filter.length && filter.every((level, i) => level === "+" || level === levels[i]);
  };
  return (_client, packet, done) => {
    // An empty retained message clears one: always allowed.
    if (packet.topic.startsWith("$SYS/")) return done(new Error("$SYS/ topics are reserved"));
    const refused = packet.retain && packet.payload.length > 0 && isRequestTopic(packet.topic);
    done(refused ? new Error("retained requests are refused") : null);
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
