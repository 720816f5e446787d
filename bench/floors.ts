/**
 * The floors an opening cannot go below on this machine: one round trip through the broker, and
 * one synced LevelDB batch (a Code or command may act only once, so its use is on disk before the
 * relay moves). An opening costs at least both; open_overhead_ratio_p50 says how far above it is.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { MqttClient } from "mqtt";
import { Store, type StoreOp } from "../firmware/store.js";
import { benchClient, type BenchBroker } from "./broker.js";
import { durations, percentiles, type Results } from "./measure.js";

const ECHOES = 1_000;
const ECHO_WARMUP = 50;
const ECHO_TIMEOUT_MS = 5_000;
const WRITES = 300;
const WRITE_WARMUP = 20;

/** A second client answers each request itself: what the broker and two sockets cost. */
async function echoSamples(url: string): Promise<number[]> {
  const root = `bench/echo/${randomBytes(4).toString("hex")}`;
  const [requester, responder] = [await benchClient(url, "echo-req"), await benchClient(url, "echo-res")];
  try {
    responder.on("message", (_topic, payload) => responder.publish(`${root}/res`, payload, { qos: 1 }));
    await responder.subscribeAsync(`${root}/req`, { qos: 1 });
    await requester.subscribeAsync(`${root}/res`, { qos: 1 });
    let n = 0;
    return await durations(() => echo(requester, root, `${n++}`), ECHOES, ECHO_WARMUP);
  } finally {
    await requester.endAsync(true);
    await responder.endAsync(true);
  }
}

/** One QoS 1 request and its echo, as the app sends a request and the hub answers. */
function echo(client: MqttClient, root: string, id: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onMessage = (_topic: string, payload: Buffer) => {
      if (payload.toString() !== id) return;
      clearTimeout(timer);
      client.off("message", onMessage);
      resolve();
    };
    const timer = setTimeout(() => {
      client.off("message", onMessage);
      reject(new Error(`no echo of ${id} within ${ECHO_TIMEOUT_MS} ms`));
    }, ECHO_TIMEOUT_MS);
    client.on("message", onMessage);
    client.publish(`${root}/req`, id, { qos: 1 });
  });
}

/**
 * An opening's batch through the hub's own Store (level, sync: true) in os.tmpdir(), where the
 * bench's hubs keep their state: the event, its outbox copy and a counter, about 500 bytes.
 */
async function durableWriteSamples(): Promise<number[]> {
  const dir = mkdtempSync(join(tmpdir(), "iq-bench-floor-"));
  const store = await Store.open(dir);
  try {
    let seq = 0;
    const batch = (): StoreOp[] => {
      seq += 1;
      const key = String(seq).padStart(12, "0");
      const event = { seq, at: new Date().toISOString(), type: "opened", lock: "door", source: "app", userId: "u-0123456789ab", appId: `app-${"0".repeat(22)}`, sig: "s".repeat(86) };
      return [
        { type: "put", in: "events", key, value: event },
        { type: "put", in: "outbox", key, value: event },
        { type: "put", in: "meta", key: "nextSeq", value: seq + 1 },
      ];
    };
    return await durations(() => store.commit(batch()), WRITES, WRITE_WARMUP);
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function measureFloors(broker: BenchBroker, results: Results): Promise<void> {
  results.set("mqtt_echo_rtt_ms", percentiles(await echoSamples(broker.url)));
  results.set("durable_write_ms", percentiles(await durableWriteSamples()));
}
