/**
 * The hub as its service user against a system bus with a real policy, like a Pi's: Debian's
 * bluetooth.conf lets only root (and group bluetooth) call bluetoothd, and the hub's own policy
 * file (systemd/iq-hub-dbus.conf) grants its user exactly the calls the BLE transport makes.
 * The built hub runs as `nobody` (the test must be root to switch users); the fake bluetoothd runs
 * as root, as bluetoothd does.
 */
import { chownSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { freePort } from "../../../../bench/net.js";
import { BLE_TESTS_RUN, HUB_ADAPTER } from "../../../e2e/ble-world.js";
import { BLUETOOTH_CONF, hubPolicy, startDbusDaemon, type TestBus } from "../../../support/dbus-daemon.js";
import { FakeBluez } from "../../../support/fake-bluez.js";
import { spawnHubProcess, type HubProcess } from "../../../support/hub-process.js";
import { startTestHub } from "../../../support/hub.js";

const NOBODY = { uid: 65534, gid: 65534 };
const isRoot = process.getuid?.() === 0;

let bus: TestBus | undefined;
let bluez: FakeBluez | undefined;
let hub: HubProcess | undefined;
afterEach(async () => {
  hub?.child.kill("SIGTERM");
  await hub?.exited;
  bluez?.stop();
  await bus?.stop();
  hub = bluez = bus = undefined;
});

async function hubAsNobody(busAddress: string): Promise<HubProcess> {
  const stateDir = mkdtempSync(join(tmpdir(), "iq-ble-nobody-"));
  chownSync(stateDir, NOBODY.uid, NOBODY.gid);
  return spawnHubProcess(
    {
      DBUS_SYSTEM_BUS_ADDRESS: busAddress,
      IQ_HUB_STATE_DIR: stateDir,
      IQ_HUB_GPIO__BACKEND: "mock",
      IQ_HUB_MQTT__EMBEDDED_PORT: String(await freePort()),
      IQ_HUB_BLE__ENABLED: "true",
      IQ_HUB_BLE__RETRY_MS: "200",
    },
    NOBODY,
  );
}

/** The methods (`interface.member`) the policy file lets the hub's user call on org.bluez. */
function grantedMembers(policy: string): string[] {
  expect(policy.match(/<policy [^>]*>/g)).toEqual(['<policy user="iq-hub">']);
  const rules = policy.match(/<(allow|deny) [^>]*\/>/g) ?? [];
  expect(rules.every((rule) => rule.startsWith('<allow send_destination="org.bluez" send_interface="'))).toBe(true);
  return rules.map((rule) => `${/send_interface="([^"]+)"/.exec(rule)?.[1]}.${/send_member="([^"]+)"/.exec(rule)?.[1] ?? "(any)"}`).sort();
}

describe.skipIf(!BLE_TESTS_RUN)("the hub's D-Bus policy", () => {
  it("grants exactly the calls the BLE transport makes on org.bluez, each by interface and member", async () => {
    bus = await startDbusDaemon();
    process.env.DBUS_SYSTEM_BUS_ADDRESS = bus.address;
    bluez = await FakeBluez.start(bus.address, [HUB_ADAPTER]);
    const iq = await startTestHub({ config: { ble: { retryMs: 100 } } });
    await expect.poll(() => iq.hub.ble?.up).toBe(true);
    await iq.stop();
    const policy = readFileSync(join(import.meta.dirname, "../../../../systemd/iq-hub-dbus.conf"), "utf8");
    expect(grantedMembers(policy)).toEqual([...new Set(bluez.calls)].sort());
  });

  it.skipIf(!isRoot)("as a non-root user, the hub is refused without the policy file and registers with it", async () => {
    bus = await startDbusDaemon({ "bluetooth.conf": BLUETOOTH_CONF });
    bluez = await FakeBluez.start(bus.address, [HUB_ADAPTER]);
    hub = await hubAsNobody(bus.address);
    await hub.waitFor(/the D-Bus policy does not let the hub talk to bluetoothd/, 15_000);
    expect(bluez.app).toBeUndefined();
    hub.child.kill("SIGTERM");
    await hub.exited;
    bluez.stop();
    await bus.stop();

    bus = await startDbusDaemon({ "bluetooth.conf": BLUETOOTH_CONF, "iq-hub.conf": hubPolicy("nobody") });
    bluez = await FakeBluez.start(bus.address, [HUB_ADAPTER]);
    hub = await hubAsNobody(bus.address);
    await hub.waitFor(/BLE up: GATT application registered and advertising/, 15_000);
    expect(bluez.app?.path).toBe("/org/iqhub");
    expect(bluez.advertisement?.uuids).toHaveLength(1);
    expect(hub.output()).not.toMatch(/level=error/);
  });
});
