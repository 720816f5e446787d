/**
 * A stranger on the broker picks the topic the hub answers on (a request's replyTo). A topic the
 * broker finds malformed used to get the hub dropped, and the hub sent the same publish again on
 * every reconnect: offline until a restart. Through the real hub and request handler.
 */
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from "vitest";
import { PROTOCOL_VERSION } from "../../../provisioning/protocol/messages.js";
import { responseTopic, topicsFor } from "../../../provisioning/protocol/topics.js";
import { startTestBroker, type TestBroker } from "../../support/broker.js";
import { startTestHub } from "../../support/hub.js";
import { collect, connectClient, eventually } from "../../support/mqtt.js";

let broker: TestBroker;
beforeAll(async () => {
  broker = await startTestBroker();
});
afterAll(() => broker.stop());

/** Each one is refused by mosquitto in a topic (MQTT 5 §1.5.4): C0, DEL, C1, noncharacters. */
const HOSTILE = { CR: "\r", TAB: "\t", LF: "\n", ESC: "\u001b", DEL: "\u007f", NEL: "\u0085", "U+FFFF": "\uffff" };

const status = (id: string, replyTo: string) => JSON.stringify({ v: PROTOCOL_VERSION, id, op: "status", args: {}, replyTo });

describe("a replyTo the broker would find malformed", () => {
  it.for(Object.entries(HOSTILE))("%s: the hub stays online and answers the next good request", async ([, char]) => {
    const iq = await startTestHub({ broker });
    onTestFinished(() => iq.stop());
    const topics = topicsFor(iq.iqId);
    const app = await connectClient(broker.url);
    const availability = await collect(app, topics.availability);
    await eventually(() => expect(availability.at(-1)?.text).toBe("online"));
    const replyTo = responseTopic(topics, `app-${randomUUID().slice(0, 8)}`);
    const answers = await collect(app, replyTo);

    await app.publishAsync(topics.requests, status("hostile", `${topics.responses}/x${char}y`), { qos: 1 });
    await app.publishAsync(topics.requests, status("good", replyTo), { qos: 1 });

    await eventually(() => expect(answers.map((a) => (JSON.parse(a.text) as { id: string }).id)).toEqual(["good"]));
    expect(availability.map((message) => message.text)).toEqual(["online"]);
  });
});
