/**
 * A private D-Bus system bus for BLE tests: `dbus-daemon` started from a config file of type
 * `system` on a unix socket in a temporary directory, with the stock system bus's default policy
 * (deny owning names and method calls, allow signals and replies) and the policy files a test
 * drops in: a stand-in for Debian's bluetooth.conf, and the hub's own (systemd/iq-hub-dbus.conf).
 * So the policy is exercised as on a Pi. `DBUS_SYSTEM_BUS_ADDRESS` = `address` points the hub
 * (dbus-next) and node-ble at it.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";

export interface TestBus {
  /** The address for DBUS_SYSTEM_BUS_ADDRESS. */
  address: string;
  stop(): Promise<void>;
}

export const DBUS_DAEMON = "dbus-daemon";

/** Whether dbus-daemon can run here; in CI its absence is a failure, not a skip (see .ci/run). */
export function haveDbusDaemon(): boolean {
  return spawnSync(DBUS_DAEMON, ["--version"], { stdio: "ignore" }).status === 0;
}

/**
 * Debian's bluetooth.conf as it matters here: root owns org.bluez and may call into applications
 * (GATT characteristics, advertisements, ObjectManager); group bluetooth may call bluetoothd;
 * nobody else may. Root is whoever runs the tests (the fake bluetoothd runs in the test process),
 * so that `npm test` works for a developer who is not root too.
 */
export const BLUETOOTH_CONF = `<busconfig>
  <policy user="${userInfo().username}">
    <allow own="org.bluez"/>
    <allow send_destination="org.bluez"/>
    <allow send_interface="org.bluez.GattCharacteristic1"/>
    <allow send_interface="org.bluez.GattDescriptor1"/>
    <allow send_interface="org.bluez.LEAdvertisement1"/>
    <allow send_interface="org.freedesktop.DBus.ObjectManager"/>
    <allow send_interface="org.freedesktop.DBus.Properties"/>
  </policy>
  <policy group="bluetooth">
    <allow send_destination="org.bluez"/>
  </policy>
  <policy context="default">
    <deny send_destination="org.bluez"/>
  </policy>
</busconfig>
`;

/** The hub's policy file from systemd/, for the service user named `user`. */
export function hubPolicy(user: string): string {
  const file = readFileSync(join(import.meta.dirname, "../../systemd/iq-hub-dbus.conf"), "utf8");
  return file.replaceAll('user="iq-hub"', `user="${user}"`);
}

/** The system bus's own default policy (Debian's /usr/share/dbus-1/system.conf). */
function busConfig(dir: string): string {
  return `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=${dir}/system_bus_socket</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Properties"/>
  </policy>
  <includedir>${dir}/system.d</includedir>
</busconfig>
`;
}

/** `policies`: file name → content, dropped into the bus's system.d. */
export async function startDbusDaemon(policies: Record<string, string> = { "bluetooth.conf": BLUETOOTH_CONF }): Promise<TestBus> {
  const dir = mkdtempSync(join(tmpdir(), "iq-dbus-"));
  // A non-root hub must reach the socket.
  chmodSync(dir, 0o755);
  mkdirSync(join(dir, "system.d"));
  for (const [name, content] of Object.entries(policies)) writeFileSync(join(dir, "system.d", name), content);
  const config = join(dir, "bus.conf");
  writeFileSync(config, busConfig(dir));
  const child = spawn(DBUS_DAEMON, [`--config-file=${config}`, "--nofork", "--nopidfile", "--print-address=1"], { stdio: ["ignore", "pipe", "pipe"] });
  const address = await readAddress(child);
  return {
    address,
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((resolve) => child.once("exit", resolve));
        child.kill("SIGTERM");
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function readAddress(child: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = "";
    let err = "";
    child.stderr?.on("data", (d: Buffer) => (err += d.toString()));
    child.stdout?.on("data", (d: Buffer) => {
      out += d.toString();
      const line = out.split("\n")[0];
      if (out.includes("\n") && line !== undefined) resolve(line.trim());
    });
    child.once("error", reject);
    child.once("exit", (code) => reject(new Error(`dbus-daemon exited (${code}): ${err}`)));
  });
}
