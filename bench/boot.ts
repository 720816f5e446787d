/**
 * How soon a hub that systemd starts is ready, and how soon it is gone when systemd stops it: from
 * spawning `node dist/firmware/main.js` (a new IQ each time) to its retained state on the broker,
 * which is what an app or installer watching the IQ sees first, then SIGTERM → exit.
 */
import type { MqttClient } from "mqtt";
import { topicsFor } from "../provisioning/protocol/topics.js";
import { benchClient, type BenchBroker } from "./broker.js";
import { percentiles, type Results } from "./measure.js";
import { spawnHub } from "./processes.js";
import { IQ_ID } from "./site.js";

const RUNS = 5;
const READY_TIMEOUT_MS = 10_000;

/** Resolves with the time of the next non-empty message on `topic` (a retained one left over was cleared first). */
function nextMessage(client: MqttClient, topic: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const onMessage = (at: string, payload: Buffer) => {
      if (at !== topic || payload.length === 0) return;
      done();
      resolve(performance.now());
    };
    const timer = setTimeout(() => {
      done();
      reject(new Error(`no state on ${topic} within ${READY_TIMEOUT_MS} ms`));
    }, READY_TIMEOUT_MS);
    const done = () => {
      clearTimeout(timer);
      client.off("message", onMessage);
    };
    client.on("message", onMessage);
  });
}

export async function measureBoot(broker: BenchBroker, results: Results): Promise<void> {
  const { state } = topicsFor(IQ_ID);
  const watcher = await benchClient(broker.url, "boot");
  const boots: number[] = [];
  const exits: number[] = [];
  try {
    for (let run = 0; run < RUNS; run++) {
      // Every hub here is the same IQ id: the last one's retained state must not count as this one's.
      await watcher.publishAsync(state, "", { qos: 1, retain: true });
      await watcher.subscribeAsync(state, { qos: 1 });
      const ready = nextMessage(watcher, state);
      const hub = spawnHub({ brokerUrl: broker.url });
      try {
        boots.push((await ready) - hub.startedAt);
      } finally {
        exits.push(await hub.stop());
        await watcher.unsubscribeAsync(state);
      }
    }
  } finally {
    await watcher.endAsync(true);
  }
  results.set("boot_to_ready_ms", percentiles(boots));
  results.set("hub_exit_ms", percentiles(exits));
}
