/**
 * Judges a run's figures against the targets of metrics.ts and prints them: one JSON object for
 * tools, a table for people. Both say what each figure is judged against, and put the floors
 * (broker round trip + synced write) beside the openings, which cannot go below their sum.
 */
import { METRIC_KEYS, METRICS, type MetricKey, type Target } from "./metrics.js";
import type { Figures, Outcome, Results } from "./measure.js";

/** The openings over MQTT: each costs at least a broker round trip and a synced write. */
const ABOVE_THE_FLOORS: readonly MetricKey[] = ["app_open_rtt_ms", "remote_open_rtt_ms", "valid_open_p99_under_flood_ms"];

export interface Verdict {
  target: number;
  rule: Target["rule"];
  /** null when the figure was not measured. */
  value: number | null;
  pass: boolean | null;
  reason?: string;
}

export interface RunInfo {
  machine: Record<string, string | number>;
  broker: { name: string; version: string };
  wall_s: number;
}

/** `open_overhead_ratio_p50`, from three figures of the run. */
export function deriveOverhead(results: Results): void {
  const app = results.figure("app_open_rtt_ms", "p50");
  const echo = results.figure("mqtt_echo_rtt_ms", "p50");
  const write = results.figure("durable_write_ms", "p50");
  if (app === undefined || echo === undefined || write === undefined) return;
  results.set("open_overhead_ratio_p50", { value: app / (echo + write), app_open_p50_ms: app, floor_p50_ms: echo + write });
}

/** The key of a judged figure as the `targets` object names it: `app_open_rtt_ms.p99`, `rss_mb`. */
function targetName(key: MetricKey, target: Target): string {
  return target.stat === "value" ? key : `${key}.${target.stat}`;
}

function verdict(outcome: Outcome | undefined, target: Target): Verdict {
  const base = { target: target.limit, rule: target.rule };
  if (outcome === undefined) return { ...base, value: null, pass: null, reason: "not measured" };
  if (!("figures" in outcome)) {
    return "failed" in outcome ? { ...base, value: null, pass: false, reason: outcome.failed } : { ...base, value: null, pass: null, reason: outcome.unavailable };
  }
  const value = outcome.figures[target.stat];
  if (typeof value !== "number") return { ...base, value: null, pass: false, reason: `no ${target.stat}` };
  return { ...base, value, pass: target.rule === "<=" ? value <= target.limit : value >= target.limit };
}

export interface Judged {
  metrics: Record<string, Figures | { unavailable: string } | { failed: string }>;
  targets: Record<string, Verdict>;
  /** Every measured target met (an unmeasured one does not count against it: see `complete`). */
  pass: boolean;
  /** Every target measured. */
  complete: boolean;
}

export function judge(results: Results): Judged {
  const floor = (results.figure("mqtt_echo_rtt_ms", "p50") ?? NaN) + (results.figure("durable_write_ms", "p50") ?? NaN);
  const metrics: Judged["metrics"] = {};
  const targets: Record<string, Verdict> = {};
  for (const key of METRIC_KEYS) {
    const spec = METRICS[key];
    const outcome = results.get(key) ?? { failed: "not measured" };
    const target: Target | undefined = "target" in spec ? spec.target : undefined;
    if (target !== undefined) targets[targetName(key, target)] = verdict(results.get(key), target);
    if (!("figures" in outcome)) {
      metrics[key] = outcome;
      continue;
    }
    metrics[key] = {
      ...outcome.figures,
      ...(ABOVE_THE_FLOORS.includes(key) && Number.isFinite(floor) && { floor_p50_ms: floor }),
      unit: spec.unit,
      about: spec.about,
      ...(target !== undefined && { target: `${target.stat} ${target.rule} ${target.limit}`, pass: targets[targetName(key, target)]!.pass! }),
    };
  }
  const verdicts = Object.values(targets);
  return { metrics, targets, pass: verdicts.every((v) => v.pass !== false), complete: verdicts.every((v) => v.pass !== null) };
}

export function toJson(info: RunInfo, judged: Judged): string {
  const { metrics, targets, pass, complete } = judged;
  return `${JSON.stringify({ ...info, ...metrics, targets, pass, complete }, null, 2)}\n`;
}

function formatNumber(value: number): string {
  if (Math.abs(value) >= 100) return Math.round(value).toLocaleString("en-US");
  return value.toPrecision(3);
}

/** p50/p99 with their count, or the single value, in the metric's unit. */
function formatFigures(key: MetricKey, outcome: Judged["metrics"][string]): string {
  if ("unavailable" in outcome) return `unavailable: ${String(outcome.unavailable)}`;
  if ("failed" in outcome) return `FAILED: ${String(outcome.failed)}`;
  const { unit } = METRICS[key];
  const shown = ["p50", "p99", "value"].filter((stat) => typeof outcome[stat] === "number");
  const values = shown.map((stat) => `${stat === "value" ? "" : `${stat} `}${formatNumber(outcome[stat] as number)} ${unit}`).join(", ");
  return typeof outcome.n === "number" && unit === "ms" ? `${values} (n=${outcome.n})` : values;
}

export function toTable(info: RunInfo, judged: Judged): string {
  const rows = METRIC_KEYS.map((key) => {
    const spec = METRICS[key];
    const target: Target | undefined = "target" in spec ? spec.target : undefined;
    const verdict = target === undefined ? undefined : judged.targets[targetName(key, target)];
    const judgedAs = target === undefined ? "" : `${target.stat === "value" ? "" : `${target.stat} `}${target.rule === "<=" ? "≤" : "≥"} ${target.limit.toLocaleString("en-US")}`;
    const mark = verdict === undefined ? "" : verdict.pass === null ? "—" : verdict.pass ? "PASS" : "FAIL";
    return [key, formatFigures(key, judged.metrics[key]!), judgedAs, mark];
  });
  const header = ["metric", "result", "target", ""];
  const widths = header.map((title, i) => Math.max(title.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]) => cells.map((text, i) => text.padEnd(widths[i]!)).join("  ").trimEnd();
  const { machine, broker } = info;
  const summary = !judged.pass ? "some targets missed" : judged.complete ? "all targets met" : "every measured target met; some could not be measured";
  return [
    `iq-hub bench: node ${machine.node}, ${machine.platform}, ${machine.cpus} × ${machine.cpu}, load ${machine.loadavg_1m}`,
    `broker: ${broker.name} ${broker.version}; wall time ${info.wall_s.toFixed(0)} s`,
    `floors: broker round trip p50 ${formatNumber(floorP50(judged, "mqtt_echo_rtt_ms"))} ms + synced write p50 ${formatNumber(floorP50(judged, "durable_write_ms"))} ms: no opening can be faster than their sum`,
    "",
    line(header),
    line(widths.map((w) => "-".repeat(w))),
    ...rows.map(line),
    "",
    summary,
    "",
  ].join("\n");
}

function floorP50(judged: Judged, key: MetricKey): number {
  const p50 = (judged.metrics[key] as Partial<Figures> | undefined)?.p50;
  return typeof p50 === "number" ? p50 : NaN;
}
