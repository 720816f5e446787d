/**
 * The one broker every section of a run goes through, so that the figures and their floors share
 * it: mosquitto (as on a Pi) when installed, else the hub's embedded aedes run in the bench
 * process — which then shares the bench's event loop, so the report names it.
 */
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { Socket } from "node:net";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { connect, type MqttClient } from "mqtt";
import { createLogger } from "../firmware/log.js";
import { startEmbeddedBroker } from "../firmware/transports/embedded-broker.js";
import { DEFAULT_TOPIC_PREFIX } from "../provisioning/protocol/topics.js";
import { findMosquitto, freePort } from "./net.js";
import { spawnMosquitto } from "./processes.js";

export interface BenchBroker {
  url: string;
  name: string;
  version: string;
  stop(): Promise<void>;
}

export async function startBroker(): Promise<BenchBroker> {
  const port = await freePort();
  const url = `mqtt://127.0.0.1:${port}`;
  const path = findMosquitto();
  if (path !== undefined) {
    const broker = await spawnMosquitto(path, port);
    return { url, name: "mosquitto", version: mosquittoVersion(path), stop: async () => void (await broker.stop()) };
  }
  const broker = await startEmbeddedBroker({ host: "127.0.0.1", port, topicPrefix: DEFAULT_TOPIC_PREFIX, log: createLogger({ level: "warn" }) });
  return { url, name: "aedes (mosquitto not installed; in the bench process)", version: aedesVersion(), stop: () => broker.close() };
}

/** `mosquitto -h` starts with "mosquitto version 2.0.11". */
function mosquittoVersion(path: string): string {
  const help = spawnSync(path, ["-h"], { encoding: "utf8" });
  return /version (\S+)/.exec(`${help.stdout}${help.stderr}`)?.[1] ?? "unknown";
}

/** aedes exports no package.json: found by walking up from its entry point. */
function aedesVersion(): string {
  for (let dir = dirname(fileURLToPath(import.meta.resolve("aedes"))); dir !== dirname(dir); dir = dirname(dir)) {
    const manifest = join(dir, "package.json");
    if (!existsSync(manifest)) continue;
    const { name, version } = JSON.parse(readFileSync(manifest, "utf8")) as { name?: string; version?: string };
    if (name === "aedes") return version ?? "unknown";
  }
  return "unknown";
}

/** A bare MQTT client for the bench's own traffic (echo, flood, watching the hub's state). */
export async function benchClient(url: string, name: string): Promise<MqttClient> {
  const client = connect(url, { clientId: `bench-${name}-${randomBytes(4).toString("hex")}`, reconnectPeriod: 0, connectTimeout: 5_000 });
  // mqtt.js never sets TCP_NODELAY; the hub and the app do on their side, the bench must on its own.
  client.on("connect", () => {
    if (client.stream instanceof Socket) client.stream.setNoDelay(true);
  });
  await new Promise<void>((resolve, reject) => {
    client.once("connect", () => resolve());
    client.once("error", reject);
  });
  return client;
}
