/**
 * The floors an opening cannot go below on this machine: one round trip through the broker, and
 * one synced LevelDB batch (a Code or command may act only once, so its use is on disk before the
 * relay moves). An opening costs at least both; open_overhead_ratio_p50 says how far above it is.
 *
 * On a shared machine the disk and the cores are slower at some minutes than at others, so the
 * floors are sampled among the openings they are compared with (one of each between two
 * openings, never during one), not in a quiet minute of their own.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { MqttClient } from "mqtt";
import { Store, type StoreOp } from "../firmware/store.js";
import { benchClient, type BenchBroker } from "./broker.js";
import { percentiles, type Results } from "./measure.js";

const ECHO_TIMEOUT_MS = 5_000;
const WARMUP = 20;

/** An opening's batch (about 500 bytes): the event, its outbox copy and the next sequence number. */
function openingBatch(seq: number): StoreOp[] {
  const key = String(seq).padStart(12, "0");
  const event = { seq, at: new Date().toISOString(), type: "opened", lock: "door", source: "app", userId: "u-0123456789ab", appId: `app-${"0".repeat(22)}`, sig: "s".repeat(86) };
  return [
    { type: "put", in: "events", key, value: event },
    { type: "put", in: "outbox", key, value: event },
    { type: "put", in: "meta", key: "nextSeq", value: seq + 1 },
  ];
}

export class Floors {
  private readonly echoes: number[] = [];
  private readonly writes: number[] = [];
  private sent = 0;

  private constructor(
    private readonly requester: MqttClient,
    private readonly responder: MqttClient,
    private readonly root: string,
    /** The hub's own Store (level, sync: true) in os.tmpdir(), where the bench's hubs keep their state. */
    private readonly store: Store,
    private readonly dir: string,
  ) {}

  /** An echo client (a second client answers each request itself) and a store of its own. */
  static async open(broker: BenchBroker): Promise<Floors> {
    const root = `bench/echo/${randomBytes(4).toString("hex")}`;
    const [requester, responder] = [await benchClient(broker.url, "echo-req"), await benchClient(broker.url, "echo-res")];
    responder.on("message", (_topic, payload) => responder.publish(`${root}/res`, payload, { qos: 1 }));
    await responder.subscribeAsync(`${root}/req`, { qos: 1 });
    await requester.subscribeAsync(`${root}/res`, { qos: 1 });
    const dir = mkdtempSync(join(tmpdir(), "iq-bench-floor-"));
    const store = await Store.open(dir);
    // Unlocked as the hub's is (a fresh store under a key of its own): each batch then keeps the
    // store's seal up to date, as an opening's does.
    await store.protect(randomBytes(32));
    const floors = new Floors(requester, responder, root, store, dir);
    for (let i = 0; i < WARMUP; i++) await floors.sample(false);
    return floors;
  }

  /** One broker round trip and one synced write, one after the other. */
  async sample(keep = true): Promise<void> {
    const id = String(this.sent++);
    let start = performance.now();
    await this.echo(id);
    const echo = performance.now() - start;
    start = performance.now();
    await this.store.commit(openingBatch(this.sent));
    const write = performance.now() - start;
    if (!keep) return;
    this.echoes.push(echo);
    this.writes.push(write);
  }

  /** The floors so far, if any were sampled. */
  record(results: Results): void {
    if (this.echoes.length === 0) return;
    results.set("mqtt_echo_rtt_ms", percentiles(this.echoes));
    results.set("durable_write_ms", percentiles(this.writes));
  }

  async close(): Promise<void> {
    await this.requester.endAsync(true);
    await this.responder.endAsync(true);
    await this.store.close();
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** One QoS 1 request and its echo, as the app sends a request and the hub answers. */
  private echo(id: string): Promise<void> {
    const client = this.requester;
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
      client.publish(`${this.root}/req`, id, { qos: 1 });
    });
  }
}
