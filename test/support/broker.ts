/**
 * A real MQTT broker for tests, on a port of its own so that test files can run in parallel:
 * mosquitto (as on a Pi) where it is installed, else the hub's embedded aedes. In CI
 * (`CI=true`) mosquitto is required: a quiet fallback would test the wrong broker.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { accessSync, constants, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { accepts, freePort } from "../../bench/net.js";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { startEmbeddedBroker, type EmbeddedBroker } from "../../firmware/transports/embedded-broker.js";
import { createLogger } from "../../firmware/log.js";

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

const MOSQUITTO_PATHS = ["/usr/sbin/mosquitto", ...(process.env.PATH ?? "").split(delimiter).map((dir) => join(dir, "mosquitto"))];
const START_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 3_000;
/** A free port can be taken by a parallel test between our probe and mosquitto's bind. */
const PORT_ATTEMPTS = 5;

/** Which broker the tests use (IQ_TEST_BROKER=aedes picks aedes explicitly); throws in CI when mosquitto is missing. */
export function testBrokerKind(): TestBrokerKind {
  if (process.env.IQ_TEST_BROKER === "aedes") return { kind: "aedes", why: "IQ_TEST_BROKER=aedes" };
  for (const path of MOSQUITTO_PATHS) {
    try {
      accessSync(path, constants.X_OK);
      return { kind: "mosquitto", path };
    } catch {
      // not here; try the next place
    }
  }
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

/**
 * `listenerOptions`: mosquitto lines for the test listener (TLS files, say); only mosquitto
 * takes them, so such a test runs where mosquitto is installed (always in CI).
 */
export async function startTestBroker(options: { listenerOptions?: string[] } = {}): Promise<TestBroker> {
  const kind = testBrokerKind();
  const runner = kind.kind === "mosquitto" ? mosquittoRunner(kind.path, options.listenerOptions ?? []) : aedesRunner();
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

/** Brokers still running when the worker exits (a failed test, an interrupted run) are killed with it. */
const running = new Set<ChildProcess>();
process.once("exit", () => running.forEach((child) => child.kill("SIGKILL")));

function mosquittoRunner(path: string, listenerOptions: readonly string[]): BrokerRunner {
  let child: ChildProcess | undefined;
  return {
    async start(port) {
      // mosquitto reads its config once at start, so the file can go as soon as it listens.
      const dir = mkdtempSync(join(tmpdir(), "iq-mosquitto-"));
      try {
        const conf = join(dir, "mosquitto.conf");
        const lines = [
          `listener ${port} 127.0.0.1`,
          ...listenerOptions,
          "allow_anonymous true",
          "set_tcp_nodelay true",
          "persistence false",
          "log_dest stderr",
        ];
        writeFileSync(conf, lines.join("\n") + "\n");
        const started = spawn(path, ["-c", conf], { stdio: ["ignore", "ignore", "pipe"] });
        child = started;
        running.add(started);
        started.once("exit", () => running.delete(started));
        await waitUntilListening(started, port);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
    async stop() {
      const current = child;
      child = undefined;
      if (current === undefined || current.exitCode !== null || current.signalCode !== null) return;
      const exited = once(current, "exit");
      current.kill("SIGTERM");
      const timer = setTimeout(() => current.kill("SIGKILL"), STOP_TIMEOUT_MS);
      await exited;
      clearTimeout(timer);
    },
  };
}

function aedesRunner(): BrokerRunner {
  const log = createLogger({ level: "warn" });
  let broker: EmbeddedBroker | undefined;
  return {
    async start(port) {
      broker = await startEmbeddedBroker({ host: "127.0.0.1", port, log });
    },
    async stop() {
      const current = broker;
      broker = undefined;
      await current?.close();
    },
  };
}

/** Resolves once the broker accepts connections; rejects with its own words if it exits first. */
async function waitUntilListening(child: ChildProcess, port: number): Promise<void> {
  let output = "";
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
    // Keep draining stderr so that a chatty broker never blocks on a full pipe; keep the tail for errors.
    output = (output + chunk).slice(-2_000);
  });
  let exited = false;
  child.once("exit", () => (exited = true));
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (exited) throw new Error(`mosquitto exited on start (port ${port}): ${output.trim()}`);
    if (await accepts(port)) return;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`mosquitto did not listen on port ${port} within ${START_TIMEOUT_MS} ms: ${output.trim()}`);
}

export { freePort };
