/**
 * The hub's one connection to the MQTT broker (zigbee2mqtt's `mqtt.ts` is the model). It moves
 * bytes only: requests from the IQ's request topic go to the handler and its answers go back
 * to the requester; audit events go out from the LevelDB outbox; the retained state and the
 * `online`/`offline` availability say how the hub is. With no `mqtt.url`, it starts the
 * embedded broker and talks MQTT 3.1.1 to it.
 */
import { readFileSync } from "node:fs";
import { Socket } from "node:net";
import { connect, type IClientOptions, type IConnackPacket, type IPublishPacket, type MqttClient } from "mqtt";
import { topicsFor, type IqTopics } from "../../provisioning/protocol/topics.js";
import type { Audit } from "../audit.js";
import type { HubConfig } from "../config.js";
import { ConfigError } from "../errors.js";
import type { Logger } from "../log.js";
import { startEmbeddedBroker, type EmbeddedBroker } from "./embedded-broker.js";
import { OutboxSender } from "./outbox-sender.js";
import type { RequestSink } from "./transport.js";

export type MqttConfig = HubConfig["mqtt"];

export interface MqttTransportOptions {
  config: MqttConfig;
  iqId: string;
  log: Logger;
  audit: Audit;
  onRequest: RequestSink;
  /** Drives the LED (broker connected or unreachable). */
  onConnectionChange?: (connected: boolean) => void;
}

/** How long the broker keeps the hub's session (subscription, queued requests) while it is away. */
const SESSION_EXPIRY_S = 3_600;
/** Events unacknowledged at a time, at most; half the broker's receive maximum leaves room for responses. */
const EVENT_WINDOW = 16;
/** MQTT 5's default receive maximum, which applies when the broker does not announce one. */
const MQTT_MAX_RECEIVE = 65_535;

/** CONNACK codes for "I do not speak this MQTT version" (a 3.1.1 broker's return code, MQTT 5's reason code). */
const PROTOCOL_REFUSED = new Set<unknown>([1, 132]);

export class MqttTransport {
  readonly topics: IqTopics;
  private client: MqttClient | undefined;
  private broker: EmbeddedBroker | undefined;
  private sender: OutboxSender | undefined;
  private readonly log: Logger;
  private connected = false;
  /** Connected, but the broker refused the subscription to requests. */
  private deaf = false;
  private resubscribe: NodeJS.Timeout | undefined;
  private reconnectAttempt = 0;
  /** The latest state, as published; sent again after every (re)connect, since a restarted broker may have lost it. */
  private state: string | undefined;

  constructor(private readonly options: MqttTransportOptions) {
    this.topics = topicsFor(options.iqId, options.config.topicPrefix);
    this.log = options.log.child({ transport: "mqtt" });
  }

  /** Starts connecting (and the embedded broker when no url is set); does not wait for the broker. */
  async start(): Promise<void> {
    const { config, iqId, audit } = this.options;
    const tls = readTlsFiles(config, this.log);
    // A taken port stops the start (embedded_broker_port_in_use): the hub never adopts a broker it was not given.
    const url =
      config.url ?? (this.broker = await startEmbeddedBroker({ host: config.embeddedHost, port: config.embeddedPort, log: this.log })).url;
    const protocolVersion = config.protocolVersion ?? (config.url === undefined ? 4 : 5);
    const clientId = config.clientId ?? `iq-${iqId}`;
    const options: IClientOptions = {
      ...tls,
      protocolVersion,
      clientId,
      // A persistent session: requests sent while the hub restarts wait for it at the broker.
      clean: false,
      ...(protocolVersion === 5 ? { properties: { sessionExpiryInterval: SESSION_EXPIRY_S } } : {}),
      username: config.username,
      password: config.password,
      keepalive: config.keepaliveS,
      will: { topic: this.topics.availability, payload: Buffer.from("offline"), qos: 1, retain: true },
      reconnectPeriod: this.nextReconnectDelay(),
      // Wrong credentials may be fixed on the broker's side: keep trying, with backoff.
      reconnectOnConnackError: true,
      // The hub subscribes itself on every connect (see onConnect).
      resubscribe: false,
      // Handlers first: a persistent session delivers queued requests right after CONNACK.
      manualConnect: true,
    };
    const client = connect(url, options);
    this.client = client;
    client.on("message", (topic, payload, packet) => this.onMessage(topic, payload, packet));
    client.on("packetsend", (packet) => {
      // mqtt.js never sets TCP_NODELAY: without it Nagle and delayed ACKs add 40–90 ms to every QoS 1 exchange.
      // Each (re)connect opens a new socket, and CONNECT is the first thing written to it.
      if (packet.cmd === "connect" && client.stream instanceof Socket) client.stream.setNoDelay(true);
    });
    client.on("connect", (connack) => this.onConnect(client, connack));
    client.on("reconnect", () => {
      client.options.reconnectPeriod = this.nextReconnectDelay();
    });
    client.on("close", () => this.setConnected(false));
    client.on("offline", () => this.log.warn("broker unreachable; reconnecting with backoff", { url }));
    client.on("error", (error) =>
      this.log.warn("broker connection failed", {
        url,
        error,
        hint:
          protocolVersion === 5 && PROTOCOL_REFUSED.has((error as { code?: unknown }).code)
            ? "the broker does not speak MQTT 5: set mqtt.protocolVersion to 4"
            : undefined,
        retryInS: (client.options.reconnectPeriod ?? 0) / 1000,
      }),
    );
    this.sender = new OutboxSender({ audit, log: this.log, publish: (event) => this.publish(this.topics.events, JSON.stringify(event)) });
    this.sender.start();
    this.log.info("connecting to the MQTT broker", { url, clientId, protocolVersion });
    client.connect();
  }

  /**
   * Ends the connection without a DISCONNECT: a graceful end waits for every in-flight publish
   * and can hang on a dead broker, and the broker then publishes the will, `offline`, as it should.
   * Unacknowledged events stay in the outbox for the next start.
   */
  async stop(): Promise<void> {
    clearTimeout(this.resubscribe);
    this.sender?.stop();
    this.sender = undefined;
    await this.client?.endAsync(true);
    this.client = undefined;
    await this.broker?.close();
    this.broker = undefined;
  }

  /** Publishes the hub's state (retained, QoS 1), now if connected and again after every reconnect. */
  publishState(state: object): void {
    this.state = JSON.stringify(state);
    if (this.connected) this.publishRetained(this.topics.state, this.state);
  }

  private onConnect(client: MqttClient, connack: IConnackPacket): void {
    this.reconnectAttempt = 0;
    client.options.reconnectPeriod = this.nextReconnectDelay();
    this.log.info("connected to the MQTT broker", { sessionPresent: connack.sessionPresent });
    // Subscribed on every connect: a broker restarted without persistence has forgotten the session.
    this.subscribeRequests(client);
    this.publishRetained(this.topics.availability, "online");
    if (this.state !== undefined) this.publishRetained(this.topics.state, this.state);
    const receiveMaximum = connack.properties?.receiveMaximum ?? MQTT_MAX_RECEIVE;
    this.sender?.resume(Math.min(EVENT_WINDOW, Math.floor(receiveMaximum / 2)));
    this.setConnected(true);
  }

  /**
   * A hub that cannot hear requests is not connected in any way that matters: the LED says so
   * (broker unreachable) and the subscription is tried again with the reconnect backoff.
   */
  private subscribeRequests(client: MqttClient): void {
    client.subscribe(this.topics.requests, { qos: 1 }, (error, granted) => {
      const refused = error !== null || granted?.some((grant) => grant.qos > 2) === true;
      if (!refused) {
        if (this.deaf) this.reportConnection(true);
        this.deaf = false;
        return;
      }
      this.log.error("the broker refused the subscription to requests (check its ACL); retrying", {
        topic: this.topics.requests,
        error: error?.message,
      });
      this.deaf = true;
      this.reportConnection(false);
      clearTimeout(this.resubscribe);
      this.resubscribe = setTimeout(() => client.connected && this.subscribeRequests(client), this.nextReconnectDelay());
      this.resubscribe.unref();
    });
  }

  private reportConnection(connected: boolean): void {
    try {
      this.options.onConnectionChange?.(connected);
    } catch (error) {
      this.log.error("connection listener failed", { error });
    }
  }

  private setConnected(connected: boolean): void {
    if (!connected) this.sender?.pause();
    if (connected === this.connected) return;
    this.connected = connected;
    this.reportConnection(connected && !this.deaf);
  }

  private nextReconnectDelay(): number {
    const { reconnectMinMs, reconnectMaxMs } = this.options.config;
    return reconnectDelayMs(this.reconnectAttempt++, reconnectMinMs, reconnectMaxMs);
  }

  private onMessage(topic: string, payload: Buffer, packet: IPublishPacket): void {
    if (topic !== this.topics.requests) return;
    if (packet.retain) {
      // Commands are never retained: a retained one would run again on every reconnect.
      this.log.warn("dropped a retained request", { topic });
      return;
    }
    void this.handleRequest(payload, packet);
  }

  private async handleRequest(payload: Buffer, packet: IPublishPacket): Promise<void> {
    const properties = packet.properties;
    const expiryS = properties?.messageExpiryInterval;
    let response;
    try {
      response = await this.options.onRequest({
        payload,
        via: "mqtt",
        ...(expiryS === undefined ? {} : { expiresAt: Date.now() + expiryS * 1000 }),
      });
    } catch (error) {
      this.log.error("request handler failed; the request gets no response", { error });
      return;
    }
    if (response === undefined) return;
    const replyTo = properties?.responseTopic ?? response.replyTo;
    if (replyTo === undefined) {
      this.log.debug("response dropped: the request named no reply topic");
      return;
    }
    if (!this.isResponseTopic(replyTo)) {
      this.log.warn("response dropped: its reply topic is outside this IQ's response tree", { replyTo });
      return;
    }
    const correlationData = properties?.correlationData;
    this.publish(replyTo, Buffer.from(response.payload), correlationData === undefined ? {} : { correlationData }).catch(
      (error: unknown) => this.log.warn("response not delivered", { replyTo, error }),
    );
  }

  /** A request must not make the hub publish anywhere but under its own response tree. */
  private isResponseTopic(topic: string): boolean {
    const root = `${this.topics.responses}/`;
    return topic.startsWith(root) && topic.length > root.length && !/[+#\0]/.test(topic);
  }

  private publishRetained(topic: string, payload: string): void {
    this.publish(topic, payload, {}, true).catch((error: unknown) =>
      this.log.warn("retained message not delivered", { topic, error }),
    );
  }

  /** QoS 1; resolves when the broker acknowledges. */
  private publish(
    topic: string,
    payload: string | Buffer,
    properties: { correlationData?: Buffer } = {},
    retain = false,
  ): Promise<void> {
    const client = this.client;
    if (client === undefined) return Promise.reject(new Error("MQTT transport stopped"));
    return new Promise((resolve, reject) => {
      client.publish(topic, payload, { qos: 1, retain, properties }, (error) => (error ? reject(error) : resolve()));
    });
  }
}

/**
 * The wait before reconnect attempt `attempt` (0-based): doubling from [min, 2·min] up to
 * [max/2, max], drawn at random within its step so that a fleet does not come back in step.
 */
export function reconnectDelayMs(attempt: number, minMs: number, maxMs: number, random: () => number = Math.random): number {
  const ceiling = Math.min(maxMs, 2 * minMs * 2 ** attempt);
  const floor = Math.max(minMs, ceiling / 2);
  return Math.round(floor + random() * (ceiling - floor));
}

/** Reads the TLS files for mqtts:// and wss://; an unreadable one stops the start, naming its key. */
function readTlsFiles(config: MqttConfig, log: Logger): Pick<IClientOptions, "ca" | "cert" | "key"> {
  const keys = (["ca", "cert", "key"] as const).filter((key) => config[key] !== undefined);
  if (keys.length === 0) return {};
  if (config.url === undefined || !/^(mqtts|wss):/.test(config.url)) {
    log.warn("TLS files ignored: mqtt.url is not mqtts:// or wss://", { keys: keys.map((key) => `mqtt.${key}`) });
    return {};
  }
  if ((config.cert === undefined) !== (config.key === undefined)) {
    throw new ConfigError(config.cert === undefined ? "mqtt.cert" : "mqtt.key", "a client certificate needs its key: set both mqtt.cert and mqtt.key");
  }
  return Object.fromEntries(
    keys.map((key) => {
      const file = config[key]!;
      try {
        return [key, readFileSync(file)];
      } catch (error) {
        throw new ConfigError(`mqtt.${key}`, `cannot read ${file}: ${(error as Error).message}`);
      }
    }),
  );
}
