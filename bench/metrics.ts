/**
 * Every figure the bench reports, in the order of its story (the floors, then the paths a person
 * waits for, then capacity and memory), with the targets of issue 10 in this one table. A key's
 * name is its name in the JSON; the sections fill them in, the report judges and prints them.
 */

/** A judged statistic of a metric: `stat` (p50, p99 or value) at most or at least `limit`. */
export interface Target {
  stat: "p50" | "p99" | "value";
  rule: "<=" | ">=";
  limit: number;
}

export interface MetricSpec {
  unit: "ms" | "ratio" | "/s" | "MiB";
  /** What is timed or counted, from where to where. */
  about: string;
  target?: Target;
}

const at_most = (stat: Target["stat"], limit: number): Target => ({ stat, rule: "<=", limit });
const at_least = (stat: Target["stat"], limit: number): Target => ({ stat, rule: ">=", limit });

export const METRICS = {
  // ── The floors: what no hub can beat on this machine and broker ─────────────────────────────
  mqtt_echo_rtt_ms: { unit: "ms", about: "QoS 1 request → broker → echo client → broker → requester, sampled between the app opens" },
  durable_write_ms: { unit: "ms", about: "one synced LevelDB batch (event + outbox copy + counter) in os.tmpdir(), sampled between the app opens" },
  // ── What a person waits for ─────────────────────────────────────────────────────────────────
  app_open_rtt_ms: { unit: "ms", about: "PIN-sealed app open: request published → verified answer", target: at_most("p99", 5) },
  open_overhead_ratio_p50: {
    unit: "ratio",
    about: "app_open_rtt_ms.p50 / (mqtt_echo_rtt_ms.p50 + durable_write_ms.p50)",
    target: at_most("value", 1.5),
  },
  remote_open_rtt_ms: { unit: "ms", about: "web open with a Code via the paired relay: published → verified answer", target: at_most("p99", 5) },
  activation_ms: { unit: "ms", about: "a user's first activation (CPace through the broker), the app's view", target: at_most("p50", 15) },
  ble_open_rtt_ms: { unit: "ms", about: "PIN-sealed open over BLE (MTU 185, fake BlueZ): written → verified notification" },
  boot_to_ready_ms: { unit: "ms", about: "hub process spawned → its retained state seen on the broker", target: at_most("p50", 1_000) },
  // ── Capacity and memory ─────────────────────────────────────────────────────────────────────
  code_validations_per_s: { unit: "/s", about: "in process: Code checks for a user with two devices (the Code from the second)", target: at_least("value", 5_000) },
  validate_ratio_10k_vs_10_users: { unit: "ratio", about: "app opens per second with 10,000 users stored ÷ with ~10", target: at_least("value", 0.8) },
  valid_open_p99_under_flood_ms: { unit: "ms", about: "app opens while a client floods the request topic with garbage", target: at_most("p99", 50) },
  rss_mb: { unit: "MiB", about: "hub VmRSS / 1024 after 10,000 app opens", target: at_most("value", 100) },
  rss_growth_mb: { unit: "MiB", about: "hub VmRSS after 10,000 app opens − after 5,000", target: at_most("value", 2) },
  // ── Unjudged, kept because they explain the figures above ────────────────────────────────────
  cpace_in_process_ms: { unit: "ms", about: "in process: one activation's CPace, both parties (what activation_ms cannot go below)" },
  sealed_command_in_process_per_s: { unit: "/s", about: "in process: seal, MAC, open and answer one sealed command (both ends of an app open)" },
  remote_open_10k_users_ms: { unit: "ms", about: "web open via the relay with 10,000 users (each with an app) stored; p50_with_10_users beside it" },
  hub_exit_ms: { unit: "ms", about: "SIGTERM → hub process exited (systemd waits for it)" },
} as const satisfies Record<string, MetricSpec>;

export type MetricKey = keyof typeof METRICS;

export const METRIC_KEYS = Object.keys(METRICS) as MetricKey[];
