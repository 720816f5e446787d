/**
 * A real MQTT broker for tests, on a port of its own so that test files can run in parallel:
 * mosquitto (as on a Pi) where it is installed, else the hub's embedded aedes. In CI
 * (`CI=true`) mosquitto is required: a quiet fallback would test the wrong broker.
 */
import { once } from "node:events";
import { readFileSync } from "node:fs";
import { createServer as createTlsServer, type Server as TlsServer } from "node:tls";
import { Aedes } from "aedes";
import { findMosquitto, freePort } from "../../bench/net.js";
import { spawnMosquitto, type Watched } from "../../bench/processes.js";
import { startEmbeddedBroker, type EmbeddedBroker } from "../../firmware/transports/embedded-broker.js";
import { createLogger } from "../../firmware/log.js";
import { DEFAULT_TOPIC_PREFIX } from "../../provisioning/protocol/topics.js";

export interface TestBroker {
  url: string;
  port: number;
  /** The newest MQTT version it speaks: 5 for mosquitto, 4 (3.1.1) for aedes. */
  protocolVersion: 4 | 5;
  /** Kills the broker; sessions and retained messages are lost (mosquitto runs without persistence). */
  stop(): Promise<void>;
  /** Starts it again on the same port (after `stop`, or stopping it first): an outage. */
  restart(): Promise<void>;
}

export type TestBrokerKind = { kind: "mosquitto"; path: string } | { kind: "aedes"; why: string };

/** A free port can be taken by a parallel test between our probe and mosquitto's bind. */
const PORT_ATTEMPTS = 5;

/** Which broker the tests use (IQ_TEST_BROKER=aedes picks aedes explicitly); throws in CI when mosquitto is missing. */
export function testBrokerKind(): TestBrokerKind {
  if (process.env.IQ_TEST_BROKER === "aedes") return { kind: "aedes", why: "IQ_TEST_BROKER=aedes" };
  const path = findMosquitto();
  if (path !== undefined) return { kind: "mosquitto", path };
  if (process.env.CI === "true") {
    throw new Error("CI=true but mosquitto is not installed: apt-get install mosquitto (the tests never fall back quietly in CI)");
  }
  return { kind: "aedes", why: "mosquitto is not installed (apt-get install mosquitto)" };
}

export function describeTestBroker(kind: TestBrokerKind): string {
  return kind.kind === "mosquitto"
    ? `MQTT tests use mosquitto (${kind.path})`
    : `MQTT tests use the embedded aedes broker: ${kind.why}`;
}

/** PEM files of a TLS listener that requires a client certificate signed by `ca`. */
export interface TestBrokerTls {
  ca: string;
  cert: string;
  key: string;
}

export async function startTestBroker(options: { tls?: TestBrokerTls } = {}): Promise<TestBroker> {
  const kind = testBrokerKind();
  const runner = kind.kind === "mosquitto" ? mosquittoRunner(kind.path, options.tls) : aedesRunner(options.tls);
  let port = 0;
  for (let attempt = 1; ; attempt += 1) {
    port = await freePort();
    try {
      await runner.start(port);
      break;
    } catch (error) {
      await runner.stop();
      if (attempt === PORT_ATTEMPTS) throw error;
    }
  }
  return {
    url: `mqtt://127.0.0.1:${port}`,
    port,
    protocolVersion: kind.kind === "mosquitto" ? 5 : 4,
    stop: () => runner.stop(),
    async restart() {
      await runner.stop();
      await runner.start(port);
    },
  };
}


/** One broker on a given port; `stop` is harmless when it is not running. */
interface BrokerRunner {
  start(port: number): Promise<void>;
  stop(): Promise<void>;
}

function mosquittoRunner(path: string, tls: TestBrokerTls | undefined): BrokerRunner {
  const listenerOptions =
    tls === undefined ? [] : [`cafile ${tls.ca}`, `certfile ${tls.cert}`, `keyfile ${tls.key}`, "require_certificate true"];
  let broker: Watched | undefined;
  return {
    async start(port) {
      broker = await spawnMosquitto(path, port, listenerOptions);
    },
    async stop() {
      const current = broker;
      broker = undefined;
      await current?.stop();
    },
  };
}

function aedesRunner(tls: TestBrokerTls | undefined): BrokerRunner {
  if (tls !== undefined) return aedesTlsRunner(tls);
  const log = createLogger({ level: "warn" });
  let broker: EmbeddedBroker | undefined;
  return {
    async start(port) {
      broker = await startEmbeddedBroker({ host: "127.0.0.1", port, topicPrefix: DEFAULT_TOPIC_PREFIX, log });
    },
    async stop() {
      const current = broker;
      broker = undefined;
      await current?.close();
    },
  };
}

/** The embedded broker has no TLS listener (a hub serves only loopback): aedes behind node's TLS server here. */
function aedesTlsRunner(tls: TestBrokerTls): BrokerRunner {
  let running: { broker: Aedes; server: TlsServer } | undefined;
  return {
    async start(port) {
      const broker = await Aedes.createBroker({ maxClientsIdLength: 128 });
      const server = createTlsServer(
        { ca: readFileSync(tls.ca), cert: readFileSync(tls.cert), key: readFileSync(tls.key), requestCert: true, rejectUnauthorized: true },
        (socket) => broker.handle(socket),
      );
      server.listen(port, "127.0.0.1");
      await once(server, "listening");
      running = { broker, server };
    },
    async stop() {
      const current = running;
      running = undefined;
      if (current === undefined) return;
      await new Promise<void>((resolve) => current.broker.close(() => resolve()));
      await new Promise((resolve) => current.server.close(resolve));
    },
  };
}

export { freePort };
