#!/usr/bin/env node
/**
 * `node dist/bench/flooder.js <broker url> <request topic> <reply topic> <messages per second>`:
 * publishes garbage on an IQ's request topic at QoS 0 until SIGTERM, then logs on stderr what it
 * sent. A process of its own, so that its timer does not share an event loop with the openings
 * the bench times under the flood (it still shares the machine's cores, as an attacker's would not).
 *
 * The mix is what a broken or hostile client sends: not JSON, JSON that is no request, unknown
 * ops, `status` (metered reads) and sealed commands from an app the IQ does not know.
 */
import { randomBytes } from "node:crypto";
import { connect } from "mqtt";
import { PROTOCOL_VERSION } from "../provisioning/protocol/messages.js";

/** A batch every 10 ms: 2,000/s is 20 a tick. */
const TICK_MS = 10;

const [url, requestTopic, replyTo, perSecondText] = process.argv.slice(2);
const perSecond = Number(perSecondText);
if (url === undefined || requestTopic === undefined || replyTo === undefined || !(perSecond > 0)) {
  process.stderr.write("usage: flooder <broker url> <request topic> <reply topic> <messages per second>\n");
  process.exit(2);
}

let n = 0;
const envelope = (op: string, args: unknown) => JSON.stringify({ v: PROTOCOL_VERSION, id: `flood-${n}`, op, args, replyTo, expiresAt: Date.now() + 30_000 });
const b64u = (bytes: number) => randomBytes(bytes).toString("base64url");
const KINDS: readonly (() => string | Buffer)[] = [
  () => randomBytes(48),
  () => `{"v":${PROTOCOL_VERSION},"id":`,
  () => JSON.stringify({ v: PROTOCOL_VERSION, id: 12, op: ["open"], args: "door", replyTo: 7 }),
  () => envelope("door.unlock", { lock: "door" }),
  () => envelope("status", {}),
  () => envelope("app", { appId: `app-${b64u(8)}`, epk: b64u(32), mac: b64u(16), box: b64u(96) }),
];

const client = connect(url, { clientId: `bench-flooder-${randomBytes(4).toString("hex")}`, reconnectPeriod: 0 });
client.on("error", (error) => {
  process.stderr.write(`flooder: ${error.message}\n`);
  process.exit(1);
});
client.once("connect", () => {
  const start = performance.now();
  // Each tick sends what the rate owes by now, not a fixed batch: a late timer on a busy machine
  // (ticks of 15 ms instead of 10) would otherwise lower the rate without a word.
  const timer = setInterval(() => {
    const owed = Math.floor(((performance.now() - start) * perSecond) / 1000);
    for (; n < owed; n++) client.publish(requestTopic, KINDS[n % KINDS.length]!(), { qos: 0 });
  }, TICK_MS);
  process.stderr.write("flooding\n");
  process.once("SIGTERM", () => {
    clearInterval(timer);
    const ms = performance.now() - start;
    process.stderr.write(`flooded sent=${n} ms=${Math.round(ms)}\n`);
    client.end(true, {}, () => process.exit(0));
  });
});
