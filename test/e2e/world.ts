/**
 * The world of an end-to-end test file: one real broker, fresh phones per test, and hubs that are
 * stopped after each test. `claimedWithBob` runs stories 1–3 for the tests that build on them.
 */
import { afterAll, afterEach, beforeAll, beforeEach, vi } from "vitest";
import { startTestBroker, type TestBroker } from "../support/broker.js";
import { startTestHub, type TestHub } from "../support/hub.js";
import { Phones, type Phone } from "./phones.js";

export const OWNER_PIN = "482915";
export const BOB_PIN = "730264";

export interface ClaimedIq {
  iq: TestHub;
  owner: Phone;
  bob: Phone;
  bobId: string;
}

export interface World {
  broker(): TestBroker;
  phones(): Phones;
  newHub(config?: Record<string, unknown>): Promise<TestHub>;
  /** An IQ claimed by Alice (Owner), with Bob added, activated, and on a PIN of his own. */
  claimedWithBob(options?: { role?: "user" | "superuser"; config?: Record<string, unknown> }): Promise<ClaimedIq>;
  /** The web relay of story 5: paired by the Owner, activated in a profile of its own. */
  webRelay(iq: TestHub, owner: Phone, now?: () => number): Promise<Phone>;
}

/** Registers the hooks; call once at the top of a test file. */
export function e2eWorld(): World {
  let broker: TestBroker | undefined;
  let phones: Phones | undefined;
  const hubs: TestHub[] = [];
  beforeAll(async () => {
    broker = await startTestBroker();
  });
  afterAll(async () => {
    await broker?.stop();
  });
  beforeEach(() => {
    phones = new Phones(broker!.url);
  });
  afterEach(async () => {
    await phones?.close();
    await Promise.all(hubs.splice(0).map((h) => h.stop()));
  });
  const world: World = {
    broker: () => broker!,
    phones: () => phones!,
    async newHub(config) {
      const hub = await startTestHub({ broker: broker!, ...(config ? { config } : {}) });
      hubs.push(hub);
      return hub;
    },
    async claimedWithBob(options = {}) {
      const iq = await world.newHub(options.config);
      const owner = await phones!.phone("owner");
      await owner.app.claim({ iqId: iq.iqId, setupSecret: iq.setupSecret(), name: "Alice", pin: OWNER_PIN });
      const added = await owner.app.addUser({ iqId: iq.iqId, pin: OWNER_PIN, name: "Bob", role: options.role ?? "user" });
      const bob = await phones!.phone("bob");
      await bob.app.activate({ iqId: iq.iqId, userId: added.userId, pin: added.initialPin });
      await bob.app.changePin({ iqId: iq.iqId, pin: added.initialPin, newPin: BOB_PIN });
      return { iq, owner, bob, bobId: added.userId };
    },
    async webRelay(iq, owner, now) {
      const added = await owner.app.addRelay({ iqId: iq.iqId, pin: OWNER_PIN, name: "cloud" });
      const relay = await phones!.phone(`web-${added.userId}`, now);
      await relay.app.activate({ iqId: iq.iqId, userId: added.userId, pin: added.initialPin });
      return relay;
    },
  };
  return world;
}

/** Polls until `condition` holds (the hub acts asynchronously on what the broker delivers). */
export async function until(condition: () => boolean, ms = 5_000, what = "the condition"): Promise<void> {
  await vi.waitFor(
    () => {
      if (!condition()) throw new Error(`timed out waiting for ${what}`);
    },
    { timeout: ms, interval: 10 },
  );
}
