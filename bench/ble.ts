/**
 * A BLE opening as the person at the door waits for it, with no radio: the real companion app
 * (node-ble, a central) writes the sealed command chunk by chunk through a fake bluetoothd
 * (test/support/fake-bluez.ts) on a private system bus, the hub (`node dist/firmware/main.js` on
 * mock GPIO, BLE on) reassembles it, moves the relay, and its answer comes back as notifications.
 * Measured at the smallest MTU and a common one. A reference, not a target: real radio links add
 * connection intervals (7.5 ms and up per exchange) that no fake can stand for.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BleRequester } from "../provisioning/app/ble-client.js";
import { Companion } from "../provisioning/app/companion.js";
import { Profile } from "../provisioning/app/profile.js";
import { startDbusDaemon, type TestBus } from "../test/support/dbus-daemon.js";
import { FakeBluez } from "../test/support/fake-bluez.js";
import { distribution, durations, measureGroup, type Row } from "./measure.js";
import { freePort } from "./net.js";
import { BENCH_IQ_ID, spawnHub, type Watched } from "./processes.js";

const OWNER_PIN = "482915";
const OPENS = 100;
const WARMUP = 10;
const START_TIMEOUT_MS = 10_000;
const CENTRALS = [
  { name: "hci1", address: "C0:00:00:00:00:17", mtu: 23 },
  { name: "hci2", address: "C0:00:00:00:00:B9", mtu: 185 },
] as const;
const rowName = (mtu: number) => `BLE open with the PIN, sealed [fake BlueZ, MTU ${mtu}]`;

export function bleRows(): Promise<Row[]> {
  return measureGroup(CENTRALS.map((c) => rowName(c.mtu)), {}, async (add) => {
    const home = mkdtempSync(join(tmpdir(), "iq-bench-ble-"));
    let bus: TestBus | undefined;
    let bluez: FakeBluez | undefined;
    let hub: Watched | undefined;
    const clients: BleRequester[] = [];
    // node-ble reads the bus address from the environment when it connects.
    const previous = process.env.DBUS_SYSTEM_BUS_ADDRESS;
    try {
      bus = await startDbusDaemon();
      process.env.DBUS_SYSTEM_BUS_ADDRESS = bus.address;
      bluez = await FakeBluez.start(bus.address, [{ name: "hci0", address: "B8:27:EB:00:00:01" }, ...CENTRALS]);
      hub = spawnHub({ embeddedPort: await freePort() }, { DBUS_SYSTEM_BUS_ADDRESS: bus.address, IQ_HUB_BLE__ENABLED: "true" });
      await hub.waitForLine(/BLE up/, START_TIMEOUT_MS);
      const app = (adapter: string): Companion => {
        const client = new BleRequester({ adapter });
        clients.push(client);
        return new Companion({ profile: Profile.at({ home, name: "owner" }), client });
      };
      const secret = readFileSync(join(hub.dir!, "state", "setup-secret"), "utf8").trim();
      await app("hci2").claim({ iqId: BENCH_IQ_ID, setupSecret: secret, name: "Owner", pin: OWNER_PIN });
      for (const central of CENTRALS) {
        const owner = app(central.name);
        const opens = await durations(() => owner.open({ iqId: BENCH_IQ_ID, pin: OWNER_PIN }).then(() => undefined), OPENS, WARMUP);
        add({
          name: rowName(central.mtu),
          unit: "ms",
          values: distribution(opens, [0.95, 0.99]),
          samples: opens.length,
          note: "written → relay → notified, app's view",
        });
      }
    } finally {
      for (const client of clients) await client.close();
      await hub?.stop();
      bluez?.stop();
      await bus?.stop();
      process.env.DBUS_SYSTEM_BUS_ADDRESS = previous;
      rmSync(home, { recursive: true, force: true });
    }
  });
}
