/**
 * A user's app openings while another client floods the IQ's request topic with garbage at
 * 2,000 messages a second (bench/flooder.ts, a process of its own): the IQ must keep the phone's
 * sealed commands ahead of whatever anyone can send without a key.
 */
import { fileURLToPath } from "node:url";
import { responseTopic, topicsFor } from "../provisioning/protocol/topics.js";
import type { BenchBroker } from "./broker.js";
import { percentiles, sleep, type Results } from "./measure.js";
import { Watched } from "./processes.js";
import { IQ_ID, type ActivatedUser } from "./site.js";

const FLOODER = fileURLToPath(new URL("./flooder.js", import.meta.url));
const FLOOD_PER_S = 2_000;
const OPENS = 300;
/** Let the flood fill the hub's queues before the first timed opening. */
const RAMP_MS = 500;
const START_TIMEOUT_MS = 5_000;

export async function measureUnderFlood(broker: BenchBroker, user: ActivatedUser, results: Results): Promise<void> {
  const topics = topicsFor(IQ_ID);
  const flooder = Watched.spawn("the flooder", process.execPath, [FLOODER, broker.url, topics.requests, responseTopic(topics, "flooder"), String(FLOOD_PER_S)], process.env);
  const samples: number[] = [];
  try {
    await flooder.waitForLine(/^flooding$/, START_TIMEOUT_MS);
    await sleep(RAMP_MS);
    for (let i = 0; i < OPENS; i++) samples.push(await user.phone.open(IQ_ID, user.pin));
  } finally {
    await flooder.stop();
  }
  const report = flooder.lastMatch(/flooded sent=(\d+) ms=(\d+)/);
  if (report === undefined) throw new Error("the flooder did not say what it sent");
  const achieved = Number(report[1]) / (Number(report[2]) / 1000);
  const { p50, p99, n } = percentiles(samples);
  results.set("valid_open_p99_under_flood_ms", { p99, p50, n, flood_target_per_s: FLOOD_PER_S, flood_achieved_per_s: Math.round(achieved) });
}
