/**
 * Runs once before every test file: says which MQTT broker the tests run against and whether the
 * BLE tests can run, and stops the run at once in CI when mosquitto or dbus-daemon is missing
 * instead of failing file by file.
 */
import { describeTestBroker, testBrokerKind } from "./support/broker.js";
import { haveDbusDaemon } from "./support/dbus-daemon.js";

export default function setup(): void {
  process.stderr.write(`${describeTestBroker(testBrokerKind())}\n`);
  if (haveDbusDaemon()) return;
  if (process.env.CI === "true") throw new Error("CI=true but dbus-daemon is not installed: apt-get install dbus-daemon (the BLE tests never skip in CI)");
  process.stderr.write("BLE tests are skipped: dbus-daemon is not installed (apt-get install dbus-daemon)\n");
}
