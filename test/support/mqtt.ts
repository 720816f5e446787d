/**
 * The pieces MQTT transport tests share: plain mqtt.js clients standing in for the apps and the
 * cloud, a hub transport on a real LevelDB, and an echo handler. Everything started here is
 * stopped when the current test ends.
 */
import { randomUUID } from "node:crypto";
import { connectAsync, type IClientOptions, type IPublishPacket, type MqttClient } from "mqtt";
import { expect, onTestFinished, vi } from "vitest";
import { Audit } from "../../firmware/audit.js";
import { validateConfig, type HubConfig } from "../../firmware/config.js";
import { createLogger } from "../../firmware/log.js";
import type { Store } from "../../firmware/store.js";
import { MqttTransport } from "../../firmware/transports/mqtt.js";
import { createSigner, generateIdentity, verifyDocument, type DocumentKind } from "../../provisioning/crypto/identity.js";
import type { InboundRequest, RequestSink } from "../../firmware/transports/transport.js";
import { openStore, tempStateDir } from "../firmware/temp-state.js";
import type { TestBroker } from "./broker.js";

export interface Received {
  topic: string;
  text: string;
  packet: IPublishPacket;
}

/** A connected client (MQTT 3.1.1 unless `protocolVersion` says otherwise), ended after the test. */
export async function connectClient(url: string, options: IClientOptions = {}): Promise<MqttClient> {
  const client = await connectAsync(url, { reconnectPeriod: 100, connectTimeout: 5_000, ...options });
  onTestFinished(async () => {
    await client.endAsync(true);
  });
  return client;
}

/** Subscribes (QoS 1) and collects every message on `topic` from now on, retained ones included. */
export async function collect(client: MqttClient, topic: string): Promise<Received[]> {
  const received: Received[] = [];
  client.on("message", (t, payload, packet) => {
    if (t === topic) received.push({ topic: t, text: payload.toString(), packet });
  });
  await client.subscribeAsync(topic, { qos: 1 });
  return received;
}

/** What a client subscribing now is told, retained: the broker's current value of `topic`. */
export async function retainedOn(url: string, topic: string): Promise<string | undefined> {
  const client = await connectClient(url);
  const received = await collect(client, topic);
  // The broker queues the retained message at subscribe time, so it arrives before this echo of ours.
  const barrier = `test/barrier/${randomUUID()}`;
  const echoed = await collect(client, barrier);
  await client.publishAsync(barrier, "", { qos: 1 });
  await eventually(() => expect(echoed).toHaveLength(1));
  await client.endAsync();
  return received.find((message) => message.packet.retain)?.text;
}

/** Publishes a request retained, as a stranger might; resolves once the broker has acknowledged it or closed the connection. */
export async function publishRetained(url: string, topic: string, text: string): Promise<void> {
  const stranger = await connectClient(url, { reconnectPeriod: 0 });
  await Promise.race([stranger.publishAsync(topic, text, { qos: 1, retain: true }), new Promise<void>((resolve) => stranger.once("close", () => resolve()))]);
}

/** A handler that answers `{ id }` to the request's `replyTo`, and remembers what it was given. */
export function echoSink(): RequestSink & { calls: InboundRequest[] } {
  const calls: InboundRequest[] = [];
  const sink = (request: InboundRequest) => {
    calls.push(request);
    const body = JSON.parse(Buffer.from(request.payload).toString()) as { id: string; replyTo?: string };
    return Promise.resolve({ payload: Buffer.from(JSON.stringify({ id: body.id, ok: true })), replyTo: body.replyTo });
  };
  return Object.assign(sink, { calls });
}

export interface HubTransport {
  transport: MqttTransport;
  audit: Audit;
  store: Store;
  iqId: string;
  /** Holds the hub's client id: pass it again for a hub restarting on the same disk. */
  stateDir: string;
  /** Every onConnectionChange call, in order. */
  connection: boolean[];
  /** Every onSessionContested call, in order. */
  contested: boolean[];
  /** Log lines at warn and above. */
  logs: string[];
  /** The Ed25519 key the transport signs state and events with. */
  identityKey: Uint8Array;
}

export interface HubTransportOptions {
  /** The `mqtt` config section; reconnect delays default to test-sized ones. */
  mqtt?: Partial<HubConfig["mqtt"]>;
  onRequest?: RequestSink;
  /** Reuse a state directory, store and audit trail: a hub restarting on the same disk. */
  audit?: Audit;
  store?: Store;
  stateDir?: string;
  iqId?: string;
}

/** The hub's `mqtt` config for a test broker, reached at `url` (the broker's own, or a relay's). */
export function brokerConfig(broker: TestBroker, url = broker.url): Partial<HubConfig["mqtt"]> {
  return { url, protocolVersion: broker.protocolVersion };
}

/** Starts a hub's MQTT transport (not waiting for the broker) and stops it after the test. */
export async function startHubTransport(options: HubTransportOptions = {}): Promise<HubTransport> {
  const stateDir = options.stateDir ?? tempStateDir();
  const store = options.store ?? (await openStore(stateDir));
  const audit = options.audit ?? (await Audit.open(store, 10_000));
  const iqId = options.iqId ?? `iq-test-${randomUUID().slice(0, 8)}`;
  const connection: boolean[] = [];
  const contested: boolean[] = [];
  const logs: string[] = [];
  const identity = generateIdentity();
  const signer = createSigner(identity.secretKey, iqId);
  const transport = new MqttTransport({
    config: validateConfig({ mqtt: { reconnectMinMs: 100, reconnectMaxMs: 1_000, ...options.mqtt } }).mqtt,
    iqId,
    stateDir,
    log: createLogger({ level: "warn", write: (line) => logs.push(line) }),
    audit,
    sign: (kind, body) => JSON.stringify(signer(kind, body)),
    onRequest: options.onRequest ?? echoSink(),
    onConnectionChange: (connected) => connection.push(connected),
    onSessionContested: (value) => contested.push(value),
  });
  await transport.start();
  onTestFinished(() => transport.stop());
  return { transport, audit, store, iqId, stateDir, connection, contested, logs, identityKey: identity.publicKey };
}

/** The body of a document the hub signed, checked against its identity key (fails the test otherwise). */
export function signedBody<T = Record<string, unknown>>(text: string, kind: DocumentKind, hub: Pick<HubTransport, "iqId" | "identityKey">): T {
  return verifyDocument({ publicKey: hub.identityKey, kind, iqId: hub.iqId, doc: JSON.parse(text) }) as T;
}

/** JSON request text as the apps send it. */
export function requestText(id: string, replyTo?: string): string {
  return JSON.stringify({ id, replyTo });
}

/** Retries `check` until it passes: long enough for a reconnect with test-sized backoff (at most 1 s). */
export function eventually<T>(check: () => T | Promise<T>, timeoutMs = 5_000): Promise<T> {
  return vi.waitFor(check, { timeout: timeoutMs, interval: 20 });
}
