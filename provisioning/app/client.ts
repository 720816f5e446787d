/**
 * The app's side of the IQ's request/response protocol over MQTT (docs/protocol.md): one broker
 * connection, any number of requests to any number of IQs, and subscriptions to their retained
 * state and event streams.
 *
 * A request is a JSON envelope published QoS 1, never retained, on `<prefix>/<iqId>/req`, with a
 * unique id, an absolute expiry and `replyTo` = `<prefix>/<iqId>/res/<clientId>`. That topic is
 * subscribed before the first request to the IQ leaves, or a fast answer could arrive before
 * anyone listens. The answer is matched by the id in its payload, which works on MQTT 3.1.1
 * brokers (the hub's embedded aedes speaks nothing else), so the client speaks 3.1.1.
 *
 * Anyone on the broker can publish on a response topic (protocol v2 trusts no broker), so the
 * client hands each answer with the right id to the caller's `accept`, which verifies it (a
 * signature by the IQ's identity key, or a box sealed for this request) and turns it into the
 * outcome; an answer `accept` rejects is dropped and the request keeps waiting for the real one.
 */
import { randomBytes } from "node:crypto";
import type { Socket } from "node:net";
import { connect, type IClientOptions, type MqttClient } from "mqtt";

import { PROTOCOL_VERSION, type RequestEnvelope } from "../protocol/messages.js";
import { DEFAULT_TOPIC_PREFIX, responseTopic, topicsFor } from "../protocol/topics.js";
import { AppError } from "./errors.js";
import { PendingAnswers, type AcceptAnswer } from "./pending-answers.js";

/** How long a request may wait for its answer before the app gives up. */
export const DEFAULT_TIMEOUT_MS = 10_000;
/** A request's expiry: the IQ never executes it later than this after it was sent. */
export const REQUEST_LIFETIME_MS = 30_000;
/** After the first connection, a dropped one is retried this often (a following `events` lives long). */
const RECONNECT_MS = 1_000;

export type MessageHandler = (topic: string, payload: Buffer) => void;

export type { AcceptAnswer, RawAnswer } from "./pending-answers.js";

/** One request: its id is the caller's, since a sealed command binds it. */
export interface OutgoingRequest {
  id: string;
  op: string;
  args: Record<string, unknown>;
}

/** What the Companion needs of a client; tests may hand it a fake. */
export interface Requester {
  readonly topicPrefix: string;
  /** Sends a request to the IQ; resolves with what `accept` makes of the first answer it accepts. */
  request<T>(iqId: string, request: OutgoingRequest, accept: AcceptAnswer<T>): Promise<T>;
  /** Calls `onMessage` for every message on `filter` (MQTT wildcards allowed) until the returned function is called. */
  watch(filter: string, onMessage: MessageHandler): Promise<() => Promise<void>>;
}

export interface IqClientOptions {
  /** mqtt://, mqtts://, ws:// or wss:// URL. */
  broker: string;
  topicPrefix?: string;
  timeoutMs?: number;
  /** The clock that dates a request's expiry. */
  now?: () => number;
  /** Credentials and TLS material, passed to mqtt.js as they are. */
  mqtt?: Pick<IClientOptions, "username" | "password" | "ca" | "cert" | "key">;
  /**
   * The client id, which also names the response topic. Absent: `iq-app-<random>`, new each run.
   * A broker that binds client ids to user names (mosquitto's use_username_as_clientid, the LAN
   * broker's ACL) lets a party read only `res/<its user name>`: such a party passes its user name.
   */
  clientId?: string;
}

export class IqClient implements Requester {
  readonly topicPrefix: string;
  private readonly answers = new PendingAnswers();
  /** Response topics already subscribed (or being subscribed), one per IQ. */
  private readonly responseTopics = new Map<string, Promise<void>>();
  private readonly watchers = new Set<{ filter: string; onMessage: MessageHandler }>();
  private closed = false;

  private constructor(
    private readonly mqtt: MqttClient,
    readonly clientId: string,
    private readonly options: IqClientOptions,
  ) {
    this.topicPrefix = options.topicPrefix ?? DEFAULT_TOPIC_PREFIX;
    // Attached before the connection exists, so no message can arrive before a listener.
    mqtt.on("message", (topic, payload) => this.dispatch(topic, payload));
    // mqtt.js never sets TCP_NODELAY; without it every QoS 1 round trip waits 40 ms or more on
    // Nagle's algorithm. Every reconnect brings a new socket (a WebSocket stream has no such call).
    mqtt.on("connect", () => (mqtt.stream as Partial<Socket>).setNoDelay?.(true));
    // A later connection error is retried by mqtt.js; an unhandled 'error' event would end the process.
    mqtt.on("error", () => undefined);
  }

  /** Connects to the broker; fails with a clear message instead of retrying forever. */
  static async connect(options: IqClientOptions): Promise<IqClient> {
    const clientId = options.clientId ?? `iq-app-${randomBytes(8).toString("hex")}`;
    const mqtt = connect(options.broker, {
      ...options.mqtt,
      clientId,
      protocolVersion: 4,
      clean: true,
      connectTimeout: options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
      reconnectPeriod: 0,
    });
    const client = new IqClient(mqtt, clientId, options);
    try {
      await new Promise<void>((resolve, reject) => {
        mqtt.once("connect", () => resolve());
        mqtt.once("error", reject);
        mqtt.once("close", () => reject(new Error("the connection closed")));
      });
    } catch (error) {
      mqtt.end(true);
      throw new AppError("broker_unreachable", `cannot reach the broker at ${options.broker}: ${(error as Error).message}`);
    }
    mqtt.options.reconnectPeriod = RECONNECT_MS;
    return client;
  }

  async request<T>(iqId: string, request: OutgoingRequest, accept: AcceptAnswer<T>): Promise<T> {
    const topics = topicsFor(iqId, this.topicPrefix);
    const replyTo = responseTopic(topics, this.clientId);
    // Not awaited before the publish: a broker handles one connection's packets in order, so it
    // holds the subscription before it sees the request, and the answer cannot come unsubscribed.
    // Waiting for the SUBACK cost a client's first request (an activation's pair.start) one round
    // trip more.
    const subscribed = this.subscribeResponses(replyTo);
    if (this.closed) throw closedError();
    const now = this.options.now ?? Date.now;
    const envelope: RequestEnvelope = {
      v: PROTOCOL_VERSION,
      id: request.id,
      op: request.op,
      replyTo,
      expiresAt: now() + REQUEST_LIFETIME_MS,
      args: request.args,
    };
    const timeoutMs = this.options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const answered = this.answers.wait({ iqId, id: envelope.id, replyTo, accept, timeoutMs, noAnswer: () => this.noAnswer(iqId, timeoutMs) });
    this.mqtt.publish(topics.requests, JSON.stringify(envelope), { qos: 1, retain: false }, (error) => {
      // mqtt.js passes null, not undefined, when all went well.
      if (error) this.answers.fail(envelope.id, new AppError("publish_failed", `could not send ${request.op} to IQ ${iqId}: ${error.message}`));
    });
    subscribed.catch((error: unknown) => {
      this.answers.fail(envelope.id, this.closed ? closedError() : new AppError("subscribe_failed", `could not subscribe to ${replyTo}: ${(error as Error).message}`));
    });
    return answered;
  }

  async watch(filter: string, onMessage: MessageHandler): Promise<() => Promise<void>> {
    const watcher = { filter, onMessage };
    this.watchers.add(watcher);
    try {
      await this.mqtt.subscribeAsync(filter, { qos: 1 });
    } catch (error) {
      this.watchers.delete(watcher);
      throw new AppError("subscribe_failed", `could not subscribe to ${filter}: ${(error as Error).message}`);
    }
    return async () => {
      this.watchers.delete(watcher);
      if (![...this.watchers].some((w) => w.filter === filter)) await this.mqtt.unsubscribeAsync(filter);
    };
  }

  /**
   * Calls `listener` when the broker connection is lost (false) or back (true), once per change,
   * until the returned function is called: a long `events --follow` should say so.
   */
  onConnectionChange(listener: (connected: boolean) => void): () => void {
    let connected = this.mqtt.connected;
    const changed = (now: boolean) => () => {
      if (now === connected || this.closed) return;
      connected = now;
      listener(now);
    };
    const [up, down] = [changed(true), changed(false)];
    this.mqtt.on("connect", up);
    this.mqtt.on("close", down);
    return () => {
      this.mqtt.off("connect", up);
      this.mqtt.off("close", down);
    };
  }

  /** Fails every request still waiting and disconnects. */
  async close(): Promise<void> {
    this.closed = true;
    this.answers.failAll(closedError);
    await this.mqtt.endAsync();
  }

  private subscribeResponses(topic: string): Promise<void> {
    let subscribed = this.responseTopics.get(topic);
    if (subscribed === undefined) {
      subscribed = this.mqtt.subscribeAsync(topic, { qos: 1 }).then(() => undefined);
      // A failed subscription is tried again by the next request.
      subscribed.catch(() => this.responseTopics.delete(topic));
      this.responseTopics.set(topic, subscribed);
    }
    return subscribed;
  }

  private dispatch(topic: string, payload: Buffer): void {
    if (this.responseTopics.has(topic)) this.answers.answer(payload);
    for (const watcher of this.watchers) {
      if (topicMatches(watcher.filter, topic)) watcher.onMessage(topic, payload);
    }
  }

  private noAnswer(iqId: string, timeoutMs: number): AppError {
    const seconds = `${Math.round(timeoutMs / 100) / 10} s`;
    const { broker } = this.options;
    if (!this.mqtt.connected) {
      return new AppError("no_answer", `no answer from IQ ${iqId} within ${seconds}: lost the connection to ${broker}`);
    }
    return new AppError(
      "no_answer",
      `no answer from IQ ${iqId} within ${seconds}: is the hub running and connected to ${broker}?`,
    );
  }
}

function closedError(): AppError {
  return new AppError("client_closed", "the app closed its broker connection");
}

/** MQTT topic filter matching: `+` is one level, a trailing `#` any number (including none). */
export function topicMatches(filter: string, topic: string): boolean {
  const want = filter.split("/");
  const have = topic.split("/");
  for (let i = 0; i < want.length; i++) {
    if (want[i] === "#") return i === want.length - 1;
    if (i >= have.length || (want[i] !== "+" && want[i] !== have[i])) return false;
  }
  return want.length === have.length;
}
