/**
 * Runs once before every test file: says which MQTT broker the tests run against, and stops the
 * run at once in CI when mosquitto is missing instead of failing file by file.
 */
import { describeTestBroker, testBrokerKind } from "./support/broker.js";

export default function setup(): void {
  process.stderr.write(`${describeTestBroker(testBrokerKind())}\n`);
}
