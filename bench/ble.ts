/**
 * A BLE opening as the person at the door waits for it, with no radio: the real companion app
 * (node-ble, a central, MTU 185) writes the sealed command chunk by chunk through a fake
 * bluetoothd (test/support/fake-bluez.ts) on a private system bus, the hub (`node
 * dist/firmware/main.js` on mock GPIO, BLE on) reassembles it, moves the relay, and its answer
 * comes back as notifications; the same stopwatch as the MQTT openings times it. Unjudged: real
 * radio links add connection intervals (7.5 ms and up per exchange) that no fake can stand for.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BleRequester } from "../provisioning/app/ble-client.js";
import { Companion } from "../provisioning/app/companion.js";
import { Profile } from "../provisioning/app/profile.js";
import { haveDbusDaemon, startDbusDaemon, type TestBus } from "../test/support/dbus-daemon.js";
import { FakeBluez } from "../test/support/fake-bluez.js";
import { durations, percentiles, Unavailable, type Results } from "./measure.js";
import { freePort } from "./net.js";
import { hubStateDir, spawnHub, type Watched } from "./processes.js";
import { IQ_ID, OWNER_PIN } from "./site.js";
import { TimedApp, WireStopwatch } from "./stopwatch.js";

const OPENS = 200;
const WARMUP = 10;
const START_TIMEOUT_MS = 10_000;
const CENTRAL = { name: "hci1", address: "C0:00:00:00:00:B9", mtu: 185 } as const;

export async function measureBle(results: Results): Promise<void> {
  if (!haveDbusDaemon()) throw new Unavailable("dbus-daemon is not installed (apt-get install dbus)");
  const home = mkdtempSync(join(tmpdir(), "iq-bench-ble-"));
  let bus: TestBus | undefined;
  let bluez: FakeBluez | undefined;
  let hub: Watched | undefined;
  let client: BleRequester | undefined;
  // node-ble reads the bus address from the environment when it connects.
  const previous = process.env.DBUS_SYSTEM_BUS_ADDRESS;
  try {
    bus = await startDbusDaemon();
    process.env.DBUS_SYSTEM_BUS_ADDRESS = bus.address;
    bluez = await FakeBluez.start(bus.address, [{ name: "hci0", address: "B8:27:EB:00:00:01" }, CENTRAL]);
    // No broker: BLE alone (the hub's embedded broker idles on a port of its own).
    hub = spawnHub({ embeddedPort: await freePort() }, { DBUS_SYSTEM_BUS_ADDRESS: bus.address, IQ_HUB_BLE__ENABLED: "true" });
    await hub.waitForLine(/BLE up/, START_TIMEOUT_MS);
    client = new BleRequester({ adapter: CENTRAL.name });
    const wire = new WireStopwatch(client);
    const owner = new TimedApp(new Companion({ profile: Profile.at({ home, name: "owner" }), client: wire }), wire);
    const setupSecret = readFileSync(join(hubStateDir(hub.dir!), "setup-secret"), "utf8").trim();
    await owner.app.claim({ iqId: IQ_ID, setupSecret, name: "Owner", pin: OWNER_PIN });
    const samples: number[] = [];
    await durations(async () => samples.push(await owner.open(IQ_ID, OWNER_PIN)), OPENS, WARMUP);
    results.set("ble_open_rtt_ms", { ...percentiles(samples.slice(WARMUP)), mtu: CENTRAL.mtu });
  } finally {
    await client?.close();
    await hub?.stop();
    bluez?.stop();
    await bus?.stop();
    process.env.DBUS_SYSTEM_BUS_ADDRESS = previous;
    rmSync(home, { recursive: true, force: true });
  }
}
