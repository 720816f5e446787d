/**
 * The attacker of the attack tests (issue 7): a plain mqtt.js client on the same broker as the
 * hub, with no PIN and no key unless a test hands it one it stole. It records what it sees, sends
 * requests of its own (answers come to a reply topic of its own), and — given a stolen key file —
 * seals commands the way an app does.
 */
import { randomBytes } from "node:crypto";
import type { MqttClient } from "mqtt";
import { openAnswer, sealCommand } from "../../provisioning/crypto/command-seal.js";
import { fromB64u, toB64u } from "../../provisioning/pairing.js";
import type { Activation } from "../../provisioning/app/profile.js";
import { PROTOCOL_VERSION, type ErrorBody } from "../../provisioning/protocol/messages.js";
import { topicsFor, type IqTopics } from "../../provisioning/protocol/topics.js";
import type { AuditEvent } from "../../firmware/audit.js";
import { RELAY_PIN, type TestHub } from "../support/hub.js";
import { connectClient } from "../support/mqtt.js";
import { until } from "./world.js";

export interface Message {
  topic: string;
  text: string;
  retain: boolean;
}

export interface Attacker {
  client: MqttClient;
  topics: IqTopics;
  /** Where the IQ answers the attacker's own requests. */
  replyTo: string;
  /** Everything received on the attacker's subscriptions, in order. */
  seen: Message[];
  /** Answers on the attacker's own reply topic, by request id. */
  answers: Map<string, string[]>;
  /** Calls `handler` for every later message (the attacker reacting as fast as it can). */
  onMessage(handler: (message: Message) => void): void;
  subscribe(...filters: string[]): Promise<void>;
  /** Publishes a request envelope (QoS 1); `replyTo` defaults to the attacker's own. */
  send(request: { id?: string; op: string; args?: Record<string, unknown>; replyTo?: string; expiresAt?: number }): Promise<string>;
  publish(topic: string, text: string, options?: { retain?: boolean; qos?: 0 | 1 }): Promise<void>;
  /** The first answer to request `id` on the attacker's reply topic. */
  answer(id: string, ms?: number): Promise<string>;
}

/** A stranger on the broker, ended after the test. It listens on its own reply topic from the start. */
export async function attacker(brokerUrl: string, iqId: string): Promise<Attacker> {
  const client = await connectClient(brokerUrl, { protocolVersion: 4 });
  const topics = topicsFor(iqId);
  const replyTo = `${topics.responses}/mallory-${randomBytes(4).toString("hex")}`;
  const seen: Message[] = [];
  const answers = new Map<string, string[]>();
  const handlers: ((message: Message) => void)[] = [];
  client.on("message", (topic, payload, packet) => {
    const message = { topic, text: payload.toString("utf8"), retain: packet.retain };
    seen.push(message);
    if (topic === replyTo) {
      const id = idOf(message.text);
      if (id !== undefined) answers.set(id, [...(answers.get(id) ?? []), message.text]);
    }
    for (const handler of handlers) handler(message);
  });
  await client.subscribeAsync(replyTo, { qos: 1 });
  const self: Attacker = {
    client,
    topics,
    replyTo,
    seen,
    answers,
    onMessage: (handler) => void handlers.push(handler),
    async subscribe(...filters) {
      await client.subscribeAsync(filters, { qos: 1 });
    },
    async send(request) {
      const id = request.id ?? randomBytes(9).toString("base64url");
      const envelope = {
        v: PROTOCOL_VERSION,
        id,
        op: request.op,
        replyTo: request.replyTo ?? replyTo,
        ...(request.expiresAt !== undefined && { expiresAt: request.expiresAt }),
        args: request.args ?? {},
      };
      await client.publishAsync(topics.requests, JSON.stringify(envelope), { qos: 1 });
      return id;
    },
    async publish(topic, text, options = {}) {
      await client.publishAsync(topic, text, { qos: options.qos ?? 1, retain: options.retain ?? false });
    },
    async answer(id, ms = 5_000) {
      await until(() => (answers.get(id)?.length ?? 0) > 0, ms, `an answer to ${id}`);
      return answers.get(id)![0]!;
    },
  };
  return self;
}

export function idOf(text: string): string | undefined {
  const json = parseJson(text) as { id?: unknown } | undefined;
  return typeof json?.id === "string" ? json.id : undefined;
}

export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/** The body of a signed answer, read without checking the signature (what a stranger sees). */
export function signedBody(text: string): { id: string; to: string; ok: boolean; result?: Record<string, unknown>; error?: ErrorBody } {
  const envelope = JSON.parse(text) as { signed?: string };
  if (typeof envelope.signed !== "string") throw new Error(`not a signed answer: ${text.slice(0, 200)}`);
  return JSON.parse(envelope.signed) as ReturnType<typeof signedBody>;
}

/** A command sealed with a (stolen) app's keys, as the app would seal it, ready to send. */
export interface SealedCommand {
  id: string;
  args: { appId: string; epk: string; mac: string; box: string };
  /** Opens the IQ's sealed answer to it. */
  open(answerText: string): { ok: boolean; result?: unknown; error?: ErrorBody; challenge: string };
}

export function sealAs(
  keys: Pick<Activation, "appId" | "messageKey" | "staticKey">,
  iqId: string,
  command: { op: string; args: Record<string, unknown>; pin?: string; challenge?: string },
): SealedCommand {
  const id = randomBytes(12).toString("base64url");
  const sealed = sealCommand({
    iqId,
    appId: keys.appId,
    appKey: fromB64u(keys.messageKey),
    iqStaticKey: fromB64u(keys.staticKey),
    requestId: id,
    payload: new TextEncoder().encode(JSON.stringify(command)),
  });
  return {
    id,
    args: { appId: keys.appId, epk: toB64u(sealed.epk), mac: toB64u(sealed.mac), box: toB64u(sealed.box) },
    open(answerText) {
      const { box } = JSON.parse(answerText) as { box?: string };
      if (typeof box !== "string") throw new Error(`not a sealed answer: ${answerText.slice(0, 200)}`);
      const opened = openAnswer({ iqId, appId: keys.appId, requestId: id, answerKey: sealed.answerKey, box: fromB64u(box) });
      return JSON.parse(Buffer.from(opened).toString("utf8")) as ReturnType<SealedCommand["open"]>;
    },
  };
}

/**
 * A sealed command from a stolen key file, sent by the attacker and answered on its own reply
 * topic. A stale challenge is answered with a fresh one, which the command is sent again with
 * (as the app does): returns the second answer then.
 */
export async function sendSealed(
  mallory: Attacker,
  keys: Pick<Activation, "appId" | "messageKey" | "staticKey"> & { challenge?: string },
  iqId: string,
  command: { op: string; args: Record<string, unknown>; pin?: string },
): Promise<ReturnType<SealedCommand["open"]>> {
  let challenge = keys.challenge;
  for (let attempt = 1; ; attempt++) {
    const sealed = sealAs(keys, iqId, { ...command, ...(challenge !== undefined && { challenge }) });
    await mallory.send({ id: sealed.id, op: "app", args: sealed.args });
    const answer = sealed.open(await mallory.answer(sealed.id));
    const code = answer.error?.code;
    if (attempt === 1 && (code === "challenge_stale" || code === "challenge_required")) {
      challenge = answer.challenge;
      continue;
    }
    return answer;
  }
}

export async function eventsOf(iq: TestHub, type?: string): Promise<AuditEvent[]> {
  const all = await iq.hub.events.list({ limit: 1000 });
  return type === undefined ? all : all.filter((e) => e.type === type);
}

/** True if the door relay was ever energised. */
export function doorEverOpened(iq: TestHub): boolean {
  return iq.gpio.timeline.some((w) => w.bcm === RELAY_PIN && w.level === 1);
}

/** What the lockout sublevel holds for a counter key (undefined: never touched). */
export function lockoutRecord(iq: TestHub, key: string): Promise<unknown> {
  return iq.hub.store.get("lockout", key);
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
