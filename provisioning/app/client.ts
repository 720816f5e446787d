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
import { z } from "zod";

import { PROTOCOL_VERSION, type RequestEnvelope } from "../protocol/messages.js";
import { DEFAULT_TOPIC_PREFIX, responseTopic, topicsFor } from "../protocol/topics.js";
import { AppError } from "./errors.js";

/** How long a request may wait for its answer before the app gives up. */
export const DEFAULT_TIMEOUT_MS = 10_000;
/** A request's expiry: the IQ never executes it later than this after it was sent. */
export const REQUEST_LIFETIME_MS = 30_000;
/** After the first connection, a dropped one is retried this often (a following `events` lives long). */
const RECONNECT_MS = 1_000;

export type MessageHandler = (topic: string, payload: Buffer) => void;

/** An answer envelope with the request's id, not yet verified. */
export type RawAnswer = Record<string, unknown> & { v: number; id: string };

/**
 * Verifies an answer and turns it into the outcome: a value resolves the request, a thrown error
 * rejects it, `undefined` drops the answer (forged, or not for this request) and keeps waiting.
 */
export type AcceptAnswer<T> = (answer: RawAnswer, replyTo: string) => { outcome: T } | undefined;

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
}

const answerEnvelope = z.looseObject({ v: z.literal(PROTOCOL_VERSION), id: z.string() });

interface Pending {
  /** Settles the request if the answer is accepted; false drops it. */
  offer: (answer: RawAnswer) => boolean;
  /** Answers with this request's id that did not verify. */
  dropped: number;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout;
}

export class IqClient implements Requester {
  readonly topicPrefix: string;
  private readonly pending = new Map<string, Pending>();
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
    const clientId = `iq-app-${randomBytes(8).toString("hex")}`;
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
    try {
      await this.subscribeResponses(replyTo);
    } catch (error) {
      throw this.closed ? closedError() : new AppError("subscribe_failed", `could not subscribe to ${replyTo}: ${(error as Error).message}`);
    }
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
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        const dropped = this.pending.get(envelope.id)?.dropped ?? 0;
        this.pending.delete(envelope.id);
        reject(dropped > 0 ? unverified(iqId) : this.noAnswer(iqId, timeoutMs));
      }, timeoutMs);
      const offer = (answer: RawAnswer): boolean => {
        let accepted;
        try {
          accepted = accept(answer, replyTo);
        } catch (error) {
          reject(error instanceof Error ? error : new Error(String(error)));
          return true;
        }
        if (accepted === undefined) return false;
        resolve(accepted.outcome);
        return true;
      };
      this.pending.set(envelope.id, { offer, dropped: 0, reject, timer });
      this.mqtt.publish(topics.requests, JSON.stringify(envelope), { qos: 1, retain: false }, (error) => {
        // mqtt.js passes null, not undefined, when all went well.
        if (error) {
          this.settle(envelope.id, (p) =>
            p.reject(new AppError("publish_failed", `could not send ${request.op} to IQ ${iqId}: ${error.message}`)),
          );
        }
      });
    });
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
    for (const id of [...this.pending.keys()]) this.settle(id, (p) => p.reject(closedError()));
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
    if (this.responseTopics.has(topic)) this.answer(payload);
    for (const watcher of this.watchers) {
      if (topicMatches(watcher.filter, topic)) watcher.onMessage(topic, payload);
    }
  }

  /** A response: offered to the request with its id, which settles only if it verifies. */
  private answer(payload: Buffer): void {
    let json: unknown;
    try {
      json = JSON.parse(payload.toString("utf8"));
    } catch {
      return;
    }
    const parsed = answerEnvelope.safeParse(json);
    if (!parsed.success) return;
    const pending = this.pending.get(parsed.data.id);
    if (pending === undefined) return;
    if (!pending.offer(parsed.data)) {
      pending.dropped += 1;
      return;
    }
    this.pending.delete(parsed.data.id);
    clearTimeout(pending.timer);
  }

  private settle(id: string, outcome: (pending: Pending) => void): void {
    const pending = this.pending.get(id);
    if (pending === undefined) return;
    this.pending.delete(id);
    clearTimeout(pending.timer);
    outcome(pending);
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

/**
 * Something answered with this request's id, but nothing that verified: the IQ was reset (its
 * keys are new), or someone on the broker forges answers. Either way nothing is concluded from it.
 */
function unverified(iqId: string): AppError {
  return new AppError(
    "answer_unverified",
    `IQ ${iqId} did not answer with a signature this profile can check: it may have been factory reset (its owner then claims it again, and every app activates again), or someone on the broker is forging answers`,
  );
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
