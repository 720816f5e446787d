/**
 * The apps of an end-to-end test: each phone is a companion-app profile of its own (its keys in
 * a 0600 file, as on a real phone) with its own MQTT connection to the test broker.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Hub } from "../../firmware/hub.js";
import { IqClient } from "../../provisioning/app/client.js";
import { HandlerRequester } from "../support/in-process.js";
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
    return new Companion({ profile: Profile.at({ home: this.home, name }), client: new HandlerRequester(hub) });
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
