/**
 * The apps of an end-to-end test: each phone is a companion-app profile of its own (its keys in
 * a 0600 file, as on a real phone) with its own MQTT connection to the test broker.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Hub } from "../../firmware/hub.js";
import { IqClient, type Requester } from "../../provisioning/app/client.js";
import { AppError } from "../../provisioning/app/errors.js";
import type { ResponseEnvelope } from "../../provisioning/protocol/messages.js";
import { DEFAULT_TOPIC_PREFIX } from "../../provisioning/protocol/topics.js";
import { Companion } from "../../provisioning/app/companion.js";
import { Profile } from "../../provisioning/app/profile.js";

export interface Phone {
  app: Companion;
  profile: Profile;
  client: IqClient;
}

export class Phones {
  private readonly home = mkdtempSync(join(tmpdir(), "iq-phones-"));
  private readonly clients: IqClient[] = [];

  constructor(private readonly brokerUrl: string) {}

  async phone(name: string, now?: () => number): Promise<Phone> {
    const client = await IqClient.connect({ broker: this.brokerUrl, timeoutMs: 5_000, ...(now ? { now } : {}) });
    this.clients.push(client);
    const profile = Profile.at({ home: this.home, name });
    return { app: new Companion({ profile, client, ...(now ? { now } : {}) }), profile, client };
  }

  /** The same person's app, talking to the hub directly instead of through the broker. */
  nearby(name: string, hub: Hub): Phone["app"] {
    return new Companion({ profile: Profile.at({ home: this.home, name }), client: new NearbyRequester(hub) });
  }

  async close(): Promise<void> {
    await Promise.all(this.clients.splice(0).map((c) => c.close()));
  }
}

/** The error code an app call was refused with (fails the test if it was not refused). */
export async function refusal(call: Promise<unknown>): Promise<string> {
  try {
    await call;
  } catch (error) {
    return (error as { code?: string }).code ?? String(error);
  }
  throw new Error("expected the IQ to refuse");
}

/**
 * An app next to the IQ: requests go straight into the hub's request handler, as BLE will carry
 * them, so the door keeps working (and producing events) while the broker is down.
 */
export class NearbyRequester implements Requester {
  readonly topicPrefix = DEFAULT_TOPIC_PREFIX;
  private next = 0;

  constructor(private readonly hub: Hub) {}

  async request(iqId: string, op: string, args: Record<string, unknown>): Promise<unknown> {
    const envelope = { v: 1, id: `nearby-${Date.now()}-${this.next++}`, op, expiresAt: Date.now() + 30_000, args };
    const response = await this.hub.requests.sink({ payload: Buffer.from(JSON.stringify(envelope)), via: "ble" });
    if (response === undefined) throw new AppError("no_answer", `IQ ${iqId} dropped the request`);
    const body = JSON.parse(Buffer.from(response.payload).toString("utf8")) as ResponseEnvelope;
    if (!body.ok) throw new AppError(body.error.code, body.error.message);
    return body.result;
  }

  watch(): Promise<() => Promise<void>> {
    return Promise.reject(new AppError("unsupported", "nearby apps do not watch topics"));
  }
}
