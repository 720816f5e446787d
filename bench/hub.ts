/**
 * The hub as a process: how fast a new IQ is ready to be claimed and how fast it stops (systemd
 * waits for both), its memory, and the QoS 1 round trip of a request through a real broker.
 */
import { randomBytes } from "node:crypto";
import { Socket } from "node:net";
import { connect, type MqttClient } from "mqtt";
import { PROTOCOL_VERSION } from "../provisioning/protocol/messages.js";
import { responseTopic, topicsFor } from "../provisioning/protocol/topics.js";
import { distribution, durations, judged, measureGroup, type Row, type Target } from "./measure.js";
import { findMosquitto, freePort } from "./net.js";
import { BENCH_IQ_ID, spawnHub, spawnMosquitto, type Watched } from "./processes.js";

/** The line main.ts logs when the LED starts the claim window's fast blue blink. */
const UNCLAIMED_LINE = /state state=claimWindow/;
const START_TIMEOUT_MS = 10_000;
const START_RUNS = 5;
/** DESIGN and the systemd unit: unclaimed (claimable) within 1 s of start, gone within 2 s of SIGTERM. */
const START_TARGET_MS = 1_000;
const EXIT_TARGET_MS = 2_000;

const ROUND_TRIPS = 1_000;
const ROUND_TRIP_WARMUP = 50;
/**
 * `status` is metered (20 in a burst, then 5 a second: protocol v2), so the hub's own round trip
 * is sampled within the burst; openings, which are not metered, are timed in stories.ts.
 */
const STATUS_SAMPLES = 15;
const ROUND_TRIP_TIMEOUT_MS = 5_000;
/** Until the hub answers a first request: it connects to the broker after it is unclaimed. */
const FIRST_ANSWER_TIMEOUT_MS = 10_000;
const DESIGN_ROUND_TRIP = "DESIGN: ≈0.15–0.3 ms tuned, broker only";
/** What the hub adds to the broker's share: `status` is read-only, so no request id is stored for it. */
const HUB_ROUND_TRIP = "+ handler queue (status is not remembered)";

const STARTUP = {
  start: "hub start → unclaimed (claimWindow)",
  exit: "hub SIGTERM → exit",
} as const;
const STARTUP_TARGETS: Record<string, Pick<Target, "stat" | "below">> = {
  [STARTUP.start]: { stat: "median", below: START_TARGET_MS },
  [STARTUP.exit]: { stat: "median", below: EXIT_TARGET_MS },
};

/** Five cold starts of a new IQ, each stopped with SIGTERM as systemd does. */
export function startupRows(): Promise<Row[]> {
  return measureGroup(Object.values(STARTUP), STARTUP_TARGETS, async (add) => {
    const starts: number[] = [];
    const exits: number[] = [];
    for (let run = 0; run < START_RUNS; run++) {
      const hub = spawnHub({ embeddedPort: await freePort() });
      try {
        starts.push(await hub.waitForLine(UNCLAIMED_LINE, START_TIMEOUT_MS));
      } finally {
        exits.push(await hub.stop());
      }
    }
    for (const [name, samples] of [
      [STARTUP.start, starts],
      [STARTUP.exit, exits],
    ] as const) {
      const values = distribution(samples, []);
      const { stat, below } = STARTUP_TARGETS[name]!;
      add({ name, unit: "ms", values, samples: samples.length, target: judged(values, stat, below) });
    }
  });
}

/** One kind of request and how to recognise its answer. */
interface Exchange {
  requestTopic: string;
  responseTopic: string;
  request(id: string): string;
  /** The id the payload answers, or undefined if it is not an answer; throws if it is a refusal. */
  answers(payload: Buffer): string | undefined;
}

/** A request that got no answer in time (as opposed to one the hub refused). */
class NoAnswer extends Error {}

/** Sends requests one at a time on `client` and waits for each answer. */
async function requester(client: MqttClient, exchange: Exchange): Promise<(timeoutMs: number) => Promise<void>> {
  const waiting = new Map<string, { resolve: () => void; reject: (error: Error) => void }>();
  client.on("message", (topic, payload) => {
    if (topic !== exchange.responseTopic) return;
    let id: string | undefined;
    try {
      id = exchange.answers(payload);
    } catch (error) {
      for (const pending of waiting.values()) pending.reject(error as Error);
      return;
    }
    if (id !== undefined) waiting.get(id)?.resolve();
  });
  await client.subscribeAsync(exchange.responseTopic, { qos: 1 });
  const nonce = randomBytes(4).toString("hex");
  let sent = 0;
  return (timeoutMs) => {
    const id = `bench-${nonce}-${sent++}`;
    return new Promise<void>((resolve, reject) => {
      const settle = (outcome: () => void) => {
        clearTimeout(timer);
        waiting.delete(id);
        outcome();
      };
      const timer = setTimeout(() => settle(() => reject(new NoAnswer(`no answer to request ${id} within ${timeoutMs} ms`))), timeoutMs);
      waiting.set(id, { resolve: () => settle(resolve), reject: (error) => settle(() => reject(error)) });
      client.publish(exchange.requestTopic, exchange.request(id), { qos: 1 }, (error) => {
        if (error) settle(() => reject(error));
      });
    });
  };
}

async function benchClient(url: string): Promise<MqttClient> {
  const client = connect(url, { clientId: `bench-${randomBytes(4).toString("hex")}`, reconnectPeriod: 0, connectTimeout: 5_000 });
  // mqtt.js never sets TCP_NODELAY; the hub does on its side, the bench must on its own.
  client.on("connect", () => {
    if (client.stream instanceof Socket) client.stream.setNoDelay(true);
  });
  await new Promise<void>((resolve, reject) => {
    client.once("connect", () => resolve());
    client.once("error", reject);
  });
  return client;
}

/** `status`, the cheapest request: what it measures is the transport, the queue and the request-id write. */
function statusExchange(): Exchange {
  const topics = topicsFor(BENCH_IQ_ID);
  const replyTo = responseTopic(topics, "bench");
  return {
    requestTopic: topics.requests,
    responseTopic: replyTo,
    request: (id) => JSON.stringify({ v: PROTOCOL_VERSION, id, op: "status", args: {}, replyTo }),
    answers: (payload) => {
      // v2: the outcome is inside the signed text (the bench trusts its own hub; the app verifies).
      const envelope = JSON.parse(payload.toString()) as { id?: unknown; signed?: unknown };
      const response = JSON.parse(String(envelope.signed)) as { ok?: unknown; error?: { code?: unknown; message?: unknown } };
      if (response.ok !== true) {
        throw new Error(`the hub refused status: ${String(response.error?.code)}: ${String(response.error?.message)}`);
      }
      return typeof envelope.id === "string" ? envelope.id : undefined;
    },
  };
}

/** A second client that answers every request itself: the broker's share of the round trip. */
async function echoExchange(url: string): Promise<{ exchange: Exchange; responder: MqttClient }> {
  const root = `bench/${randomBytes(4).toString("hex")}`;
  const exchange: Exchange = {
    requestTopic: `${root}/req`,
    responseTopic: `${root}/res`,
    request: (id) => id,
    answers: (payload) => payload.toString(),
  };
  const responder = await benchClient(url);
  responder.on("message", (_topic, payload) => responder.publish(exchange.responseTopic, payload, { qos: 1 }));
  await responder.subscribeAsync(exchange.requestTopic, { qos: 1 });
  return { exchange, responder };
}

async function roundTripSamples(send: (timeoutMs: number) => Promise<void>): Promise<number[]> {
  return durations(() => send(ROUND_TRIP_TIMEOUT_MS), ROUND_TRIPS, ROUND_TRIP_WARMUP);
}

/** Polls until the hub answers: it has connected and subscribed. */
async function firstAnswer(send: (timeoutMs: number) => Promise<void>, hub: Watched): Promise<void> {
  const deadline = performance.now() + FIRST_ANSWER_TIMEOUT_MS;
  for (;;) {
    try {
      await send(250);
      return;
    } catch (error) {
      hub.assertRunning();
      if (performance.now() > deadline || !(error instanceof NoAnswer)) throw error;
    }
  }
}

export type BrokerKind = "aedes" | "mosquitto";

/**
 * A hub on mock GPIO behind `kind` of broker: its memory once it answers, the round trip of a
 * `status` request and of a bare echo through the same broker, and its memory after the load.
 */
export function brokerRows(kind: BrokerKind): Promise<Row[]> {
  const names = {
    rssStart: `hub RSS after start [${kind}]`,
    hub: `QoS 1 round trip, hub status [${kind}]`,
    rssLoaded: `hub RSS after ${ROUND_TRIPS + ROUND_TRIP_WARMUP} requests on its topic [${kind}]`,
    echo: `QoS 1 round trip, broker only [${kind}]`,
  };
  return measureGroup(Object.values(names), {}, async (add) => {
    const port = await freePort();
    const url = `mqtt://127.0.0.1:${port}`;
    const started: (Watched | MqttClient)[] = [];
    try {
      if (kind === "mosquitto") {
        const path = findMosquitto();
        if (path === undefined) throw new Error("mosquitto is not installed (apt-get install mosquitto)");
        started.push(await spawnMosquitto(path, port));
      }
      const hub = spawnHub(kind === "aedes" ? { embeddedPort: port } : { brokerUrl: url });
      started.push(hub);
      await hub.waitForLine(UNCLAIMED_LINE, START_TIMEOUT_MS);
      // The embedded broker starts listening after the claim window opens (mosquitto already is).
      await hub.waitForPort(port, START_TIMEOUT_MS);
      const client = await benchClient(url);
      started.push(client);
      const status = await requester(client, statusExchange());
      await firstAnswer(status, hub);
      const rss = (name: string) => add({ name, unit: "MiB", values: { rss: hub.rssMiB() }, samples: 1 });
      rss(names.rssStart);
      const hubTimes = await durations(() => status(ROUND_TRIP_TIMEOUT_MS), STATUS_SAMPLES);
      add({ name: names.hub, unit: "ms", values: distribution(hubTimes, [0.9]), samples: hubTimes.length, note: HUB_ROUND_TRIP });
      // Past the read budget the hub drops requests unanswered: what a flood costs it in memory.
      const flood = topicsFor(BENCH_IQ_ID).requests;
      for (let i = 0; i < ROUND_TRIPS + ROUND_TRIP_WARMUP; i++) await client.publishAsync(flood, JSON.stringify({ v: PROTOCOL_VERSION, id: `flood-${i}`, op: "status", args: {} }), { qos: 1 });
      rss(names.rssLoaded);
      const { exchange, responder } = await echoExchange(url);
      started.push(responder);
      const echoTimes = await roundTripSamples(await requester(client, exchange));
      add({ name: names.echo, unit: "ms", values: distribution(echoTimes, [0.99]), samples: echoTimes.length, note: DESIGN_ROUND_TRIP });
    } finally {
      // Clients first, then the hub (which may hold the broker), then mosquitto.
      for (const thing of started.reverse()) {
        if ("stop" in thing) await thing.stop();
        else await thing.endAsync(true);
      }
    }
  });
}
