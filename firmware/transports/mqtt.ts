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
import { topicProblem } from "../../provisioning/protocol/topic-check.js";
import { topicsFor, type IqTopics } from "../../provisioning/protocol/topics.js";
import type { Audit } from "../audit.js";
import type { HubConfig } from "../config.js";
import { ConfigError } from "../errors.js";
import { CountedWarning, untrusted, type Logger } from "../log.js";
import { ensureClientId } from "./client-id.js";
import type { EmbeddedBroker } from "./embedded-broker.js";
import { OutboxSender } from "./outbox-sender.js";
import { MAX_PACKET_BYTES } from "./packet-size-guard.js";
import { CUT_SHORT_MS, SESSION_TAKEN_OVER, SessionWatch } from "./session-watch.js";
import type { RequestSink } from "./transport.js";

export type MqttConfig = HubConfig["mqtt"];

export interface MqttTransportOptions {
  config: MqttConfig;
  iqId: string;
  /** Where the client id is kept (unless `mqtt.clientId` is set). */
  stateDir: string;
  log: Logger;
  audit: Audit;
  /** The JSON text of a document signed by the IQ's identity key: retained state and events. */
  sign: (kind: "state" | "event", body: object) => string;
  onRequest: RequestSink;
  /** Drives the LED (broker connected or unreachable). */
  onConnectionChange?: (connected: boolean) => void;
  /** Drives the LED (another client is using the hub's client id). */
  onSessionContested?: (contested: boolean) => void;
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
  /** Resets the reconnect backoff once a connection has lasted: one cut short right away counts as a failed attempt. */
  private settled: NodeJS.Timeout | undefined;
  /** The latest state, as published; sent again after every (re)connect, since a restarted broker may have lost it. */
  private state: string | undefined;
  private readonly session: SessionWatch;
  // Strangers choose reply topics and may retain requests at any rate: these are counted, not logged one line each.
  private readonly strayReplies: CountedWarning;
  private readonly undelivered: CountedWarning;
  private readonly retainedRequests: CountedWarning;

  constructor(private readonly options: MqttTransportOptions) {
    this.topics = topicsFor(options.iqId, options.config.topicPrefix);
    this.log = options.log.child({ transport: "mqtt" });
    this.session = new SessionWatch({
      audit: options.audit,
      log: this.log,
      onContested: (contested) => this.report(() => this.options.onSessionContested?.(contested)),
    });
    this.strayReplies = new CountedWarning(this.log, "responses dropped: reply topic outside this IQ's response tree, or not a valid topic");
    this.undelivered = new CountedWarning(this.log, "responses not delivered");
    this.retainedRequests = new CountedWarning(this.log, "dropped a retained request, and cleared it from the broker");
  }

  /** Starts connecting (and the embedded broker when no url is set); does not wait for the broker. */
  async start(): Promise<void> {
    const { config, iqId, audit } = this.options;
    const tls = readTlsFiles(config, this.log);
    const clientId = config.clientId ?? (await ensureClientId(this.options.stateDir, iqId));
    // A taken port stops the start (embedded_broker_port_in_use): the hub never adopts a broker it was not given.
    // aedes is loaded only when it runs: a hub given a broker (mqtt.url) starts faster and smaller without it.
    const url =
      config.url ??
      (this.broker = await (
        await import("./embedded-broker.js")
      ).startEmbeddedBroker({ host: config.embeddedHost, port: config.embeddedPort, topicPrefix: config.topicPrefix, log: this.log })).url;
    const protocolVersion = config.protocolVersion ?? (config.url === undefined ? 4 : 5);
    const options: IClientOptions = {
      ...tls,
      protocolVersion,
      // Unguessable (see client-id.ts): whoever knows it can take the hub's session.
      clientId,
      // A persistent session, as a convenience only: requests sent while the hub restarts wait for it at the
      // broker. Nothing depends on it: the hub subscribes on every connect and keeps no state at the broker.
      clean: false,
      // The broker must not hand the hub anything larger than a request: mqtt.js would buffer it whole.
      ...(protocolVersion === 5 ? { properties: { sessionExpiryInterval: SESSION_EXPIRY_S, maximumPacketSize: MAX_PACKET_BYTES } } : {}),
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
    client.on("disconnect", (packet) => packet.reasonCode === SESSION_TAKEN_OVER && this.session.takenOver());
    client.on("reconnect", () => {
      client.options.reconnectPeriod = this.nextReconnectDelay();
    });
    client.on("close", () => this.onClose(client));
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
    this.sender = new OutboxSender({ audit, log: this.log, publish: (event) => this.publish(this.topics.events, this.options.sign("event", event)) });
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
    clearTimeout(this.settled);
    this.session.stop();
    this.sender?.stop();
    this.sender = undefined;
    await this.client?.endAsync(true);
    this.client = undefined;
    await this.broker?.close();
    this.broker = undefined;
  }

  /** Publishes the hub's state (retained, QoS 1), now if connected and again after every reconnect. */
  publishState(state: object): void {
    this.state = this.options.sign("state", { ...state, at: new Date().toISOString() });
    if (this.connected) this.publishRetained(this.topics.state, this.state);
  }

  private onConnect(client: MqttClient, connack: IConnackPacket): void {
    this.session.connected();
    // Until the connection has lasted, the backoff goes on growing: a broker (or a rival for the
    // session) that closes it at once must not be met with reconnects at the shortest delay.
    client.options.reconnectPeriod = this.nextReconnectDelay();
    clearTimeout(this.settled);
    this.settled = setTimeout(() => {
      this.reconnectAttempt = 0;
      client.options.reconnectPeriod = this.nextReconnectDelay();
    }, CUT_SHORT_MS);
    this.settled.unref();
    this.log.info("connected to the MQTT broker", { sessionPresent: connack.sessionPresent });
    // Subscribed on every connect, whatever sessionPresent says: a broker restarted without
    // persistence has forgotten the session, and one that kept it may hold other subscription options.
    this.subscribeRequests(client);
    this.publishRetained(this.topics.availability, "online");
    if (this.state !== undefined) this.publishRetained(this.topics.state, this.state);
    const receiveMaximum = connack.properties?.receiveMaximum ?? MQTT_MAX_RECEIVE;
    this.sender?.resume(Math.min(EVENT_WINDOW, Math.floor(receiveMaximum / 2)));
    this.setConnected(true);
  }

  private onClose(client: MqttClient): void {
    clearTimeout(this.settled);
    // The outbox sender pauses first, so that the events dropped below do not count as refused.
    this.setConnected(false);
    this.session.closed();
    // mqtt.js would send whatever is unacknowledged again at the next connect, before anything
    // else; a publish that got the hub dropped would get it dropped again, for ever. None is worth
    // it: events go again from the outbox, state and availability at every connect, and an answer
    // is not redelivered (the app repeats its request id and gets the remembered answer).
    for (const messageId of Object.keys(client.outgoing)) client.removeOutgoingMessage(Number(messageId));
  }

  /**
   * A hub that cannot hear requests is not connected in any way that matters: the LED says so
   * (broker unreachable) and the subscription is tried again with the reconnect backoff.
   */
  private subscribeRequests(client: MqttClient): void {
    // MQTT 5 retain-as-published: a request retained while the hub listens keeps its flag and is dropped.
    const rap = client.options.protocolVersion === 5 ? { rap: true } : {};
    client.subscribe(this.topics.requests, { qos: 1, ...rap }, (error, granted) => {
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
    this.report(() => this.options.onConnectionChange?.(connected));
  }

  private report(call: () => void): void {
    try {
      call();
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
    // An empty message is no request: it is how a retained one is cleared (the hub's own clearing comes back to it).
    if (topic !== this.topics.requests || payload.length === 0) return;
    if (packet.retain) {
      // Requests are never retained: a retained one would run again on every reconnect, and
      // whoever retained it need not be there. Cleared, so that it cannot come back.
      this.retainedRequests.note();
      this.publish(topic, "", {}, true).catch((error: unknown) => this.log.debug("cannot clear a retained request", { error }));
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
        ...(properties?.responseTopic === undefined ? {} : { responseTopic: properties.responseTopic }),
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
      this.strayReplies.note({ replyTo: untrusted(replyTo) });
      return;
    }
    const correlationData = properties?.correlationData;
    this.publish(replyTo, Buffer.from(response.payload), correlationData === undefined ? {} : { correlationData }).catch(
      (error: unknown) => this.undelivered.note({ replyTo: untrusted(replyTo), error }),
    );
  }

  /** A request must not make the hub publish anywhere but under its own response tree, nor to a topic the broker refuses. */
  private isResponseTopic(topic: string): boolean {
    return topic.startsWith(`${this.topics.responses}/`) && topicProblem(topic) === undefined;
  }

  private publishRetained(topic: string, payload: string): void {
    this.publish(topic, payload, {}, true).catch((error: unknown) =>
      this.log.warn("retained message not delivered", { topic, error }),
    );
  }

  /**
   * QoS 1; resolves when the broker acknowledges. Only while connected (nothing is queued for a
   * later connection: see onClose) and only to a valid topic: one the broker finds malformed gets
   * the hub disconnected.
   */
  private publish(
    topic: string,
    payload: string | Buffer,
    properties: { correlationData?: Buffer } = {},
    retain = false,
  ): Promise<void> {
    const client = this.client;
    if (client === undefined) return Promise.reject(new Error("MQTT transport stopped"));
    if (!client.connected) return Promise.reject(new Error("not connected to the broker"));
    const problem = topicProblem(topic);
    if (problem !== undefined) return Promise.reject(new Error(`not a topic to publish to: ${problem}`));
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
