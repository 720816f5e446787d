/**
 * BLE is never needed for the hub to run. With no system bus, no adapter, an unpowered
 * (rfkill-blocked) adapter, or bluetoothd restarting mid-run, the hub keeps serving MQTT (a real
 * broker), logs what happened once, and BLE comes back by itself once it can.
 */
import { describe, expect, it } from "vitest";
import type { TestHub } from "../support/hub.js";
import { BLE_TESTS_RUN, bleWorld, HUB_ADAPTER } from "./ble-world.js";
import { e2eWorld, until } from "./world.js";

const world = bleWorld();
// One real broker for the file, fresh phones per test: the e2e world's hooks (its hubs are unused here).
const e2e = e2eWorld();

const newHub = (ble: Record<string, unknown> = {}) => world.newHub({ ble }, { broker: e2e.broker() });

/** The hub answers over MQTT, through the broker. */
async function servesMqtt(iq: TestHub): Promise<void> {
  const app = (await e2e.phones().phone(`mqtt-${++apps}`)).app;
  expect((await app.status({ iqId: iq.iqId })).iqId).toBe(iq.iqId);
}

/** The hub answers a new app over BLE. */
async function servesBle(iq: TestHub): Promise<void> {
  await until(() => iq.hub.ble?.up === true, 5_000, "BLE up");
  const app = world.phone(`ble-${++apps}`, "hci2").app;
  expect((await app.status({ iqId: iq.iqId })).iqId).toBe(iq.iqId);
}

let apps = 0;
const logged = (iq: TestHub, text: string) => iq.logs.filter((line) => line.includes(text)).length;

describe.skipIf(!BLE_TESTS_RUN)("BLE resilience", () => {
  it("no adapter: the hub says so once, serves MQTT, and registers when the adapter appears", async () => {
    const iq = await newHub({ adapter: "hci5" });
    await servesMqtt(iq);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(logged(iq, "no Bluetooth adapter hci5")).toBe(1);
    expect(iq.hub.ble?.up).toBe(false);
    world.bluez().addAdapter({ name: "hci5", address: HUB_ADAPTER.address });
    await servesBle(iq);
    expect(logged(iq, "BLE up")).toBe(1);
  });

  it("the adapter unplugged mid-run: BlueZ releases the advertisement, MQTT goes on, and BLE comes back with the adapter", async () => {
    const iq = await newHub();
    await servesBle(iq);
    await world.bluez().removeAdapter("hci0");
    await until(() => logged(iq, "BlueZ released the advertisement") === 1 && logged(iq, "no Bluetooth adapter hci0") === 1);
    await servesMqtt(iq);
    world.bluez().addAdapter(HUB_ADAPTER);
    await until(() => logged(iq, "BLE up") === 2, 5_000, "the second registration");
    await servesBle(iq);
  });

  it("an rfkill-blocked (unpowered) adapter: the hub says so, serves MQTT, and registers when it is powered", async () => {
    world.bluez().setPowered("hci0", false);
    const iq = await newHub();
    await servesMqtt(iq);
    await until(() => logged(iq, "is off or rfkill-blocked") === 1);
    expect(iq.hub.ble?.up).toBe(false);
    world.bluez().setPowered("hci0", true);
    await servesBle(iq);
  });

  it("bluetoothd restarts mid-run: BLE goes down, MQTT goes on, and BLE comes back by itself", async () => {
    const iq = await newHub();
    await servesBle(iq);
    world.bluez().stop();
    await until(() => logged(iq, "bluetoothd left the system bus") === 1);
    expect(iq.hub.ble?.up).toBe(false);
    await servesMqtt(iq);
    await world.restartBluez();
    await until(() => logged(iq, "BLE up") === 2, 5_000, "the second registration");
    await servesBle(iq);
  });

  it("no system bus at all: the hub says so and serves MQTT", async () => {
    const address = process.env.DBUS_SYSTEM_BUS_ADDRESS;
    process.env.DBUS_SYSTEM_BUS_ADDRESS = "unix:path=/nonexistent/iq-hub-test-bus";
    try {
      const iq = await newHub();
      await until(() => logged(iq, "no D-Bus system bus: BLE is off") === 1);
      await servesMqtt(iq);
    } finally {
      process.env.DBUS_SYSTEM_BUS_ADDRESS = address;
    }
  });
});
