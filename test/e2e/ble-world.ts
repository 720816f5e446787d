/**
 * The world of a BLE end-to-end test file: one private system bus (dbus-daemon), a fresh fake
 * bluetoothd per test with the hub's adapter and four centrals (each a phone of its own, with its
 * own link MTU), hubs that serve on hci0, and phones that are the real companion app over
 * node-ble. In CI a missing dbus-daemon fails the file instead of skipping it.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, beforeEach } from "vitest";
import { BleRequester } from "../../provisioning/app/ble-client.js";
import { Companion } from "../../provisioning/app/companion.js";
import { Profile } from "../../provisioning/app/profile.js";
import { haveDbusDaemon, startDbusDaemon, type TestBus } from "../support/dbus-daemon.js";
import { FakeBluez, type FakeAdapter } from "../support/fake-bluez.js";
import { startTestHub, type TestHub } from "../support/hub.js";
import { BOB_PIN, OWNER_PIN } from "./world.js";

/** Without dbus-daemon outside CI the BLE files are skipped; in CI they run and fail. */
export const BLE_TESTS_RUN = haveDbusDaemon() || process.env.CI === "true";

export const HUB_ADAPTER: FakeAdapter = { name: "hci0", address: "B8:27:EB:00:00:01" };
/** The phones' adapters: hci1 at the smallest MTU, hci2 a common one, hci3 the largest, hci4 common. */
export const CENTRALS = {
  hci1: { name: "hci1", address: "C0:00:00:00:00:17", mtu: 23 },
  hci2: { name: "hci2", address: "C0:00:00:00:00:B9", mtu: 185 },
  hci3: { name: "hci3", address: "C0:00:00:00:02:05", mtu: 517 },
  hci4: { name: "hci4", address: "C0:00:00:00:00:BA", mtu: 185 },
} as const satisfies Record<string, FakeAdapter>;
export type CentralName = keyof typeof CENTRALS;

export interface BlePhone {
  app: Companion;
  profile: Profile;
  client: BleRequester;
}

export interface BleWorld {
  bus(): TestBus;
  bluez(): FakeBluez;
  /** Starts a fake bluetoothd again on the bus (after `bluez().stop()`): a restart. */
  restartBluez(adapters?: FakeAdapter[]): Promise<FakeBluez>;
  newHub(config?: Record<string, unknown>, options?: { broker?: Parameters<typeof startTestHub>[0]["broker"] }): Promise<TestHub>;
  phone(name: string, central: CentralName): BlePhone;
  /** Alice (Owner, on hci1) claims the IQ, adds Bob, and Bob (on hci2) activates and picks his PIN: stories 1–3, all over BLE. */
  claimedWithBob(iq: TestHub): Promise<{ owner: BlePhone; bob: BlePhone; bobId: string }>;
}

export function bleWorld(adapters: FakeAdapter[] = [HUB_ADAPTER, ...Object.values(CENTRALS)]): BleWorld {
  let bus: TestBus | undefined;
  let bluez: FakeBluez | undefined;
  let home = "";
  const hubs: TestHub[] = [];
  const clients: BleRequester[] = [];
  beforeAll(async () => {
    bus = await startDbusDaemon();
    // Both the hub (dbus-next) and node-ble read it when they connect.
    process.env.DBUS_SYSTEM_BUS_ADDRESS = bus.address;
  });
  afterAll(async () => {
    await bus?.stop();
  });
  beforeEach(async () => {
    home = mkdtempSync(join(tmpdir(), "iq-ble-phones-"));
    bluez = await FakeBluez.start(bus!.address, adapters);
  });
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
    await Promise.all(hubs.splice(0).map((h) => h.stop()));
    bluez?.stop();
  });
  const world: BleWorld = {
    bus: () => bus!,
    bluez: () => bluez!,
    async restartBluez(specs = adapters) {
      bluez = await FakeBluez.start(bus!.address, specs);
      return bluez;
    },
    async newHub(config = {}, options = {}) {
      const ble = { retryMs: 100, ...(config.ble as object | undefined) };
      const hub = await startTestHub({ ...options, config: { ...config, ble } });
      hubs.push(hub);
      return hub;
    },
    phone(name, central) {
      const client = new BleRequester({ adapter: central, timeoutMs: 5_000, scanTimeoutMs: 5_000 });
      clients.push(client);
      const profile = Profile.at({ home, name });
      return { app: new Companion({ profile, client }), profile, client };
    },
    async claimedWithBob(iq) {
      const owner = world.phone("owner", "hci1");
      await owner.app.claim({ iqId: iq.iqId, setupSecret: iq.setupSecret(), name: "Alice", pin: OWNER_PIN });
      const added = await owner.app.addUser({ iqId: iq.iqId, pin: OWNER_PIN, name: "Bob", role: "superuser" });
      const bob = world.phone("bob", "hci2");
      await bob.app.activate({ iqId: iq.iqId, userId: added.userId, pin: added.initialPin });
      await bob.app.changePin({ iqId: iq.iqId, pin: added.initialPin, newPin: BOB_PIN });
      return { owner, bob, bobId: added.userId };
    },
  };
  return world;
}
