#!/usr/bin/env node
/**
 * `npm run bench`: what the IQ's hot paths cost on this machine, as a table (or JSON with
 * --json). The crypto runs in process; the hub runs as `node dist/firmware/main.js` on mock GPIO,
 * as systemd would start it, behind its embedded aedes broker and behind mosquitto.
 *
 * Targets are judged (PASS/FAIL) but fail the run only with --strict, where a judged measurement
 * that could not be taken fails too: a bench on a loaded laptop should inform, not block.
 */
import { cpus } from "node:os";
import { parseArgs } from "node:util";
import { bleRows } from "./ble.js";
import { cryptoRows } from "./crypto.js";
import { brokerRows, startupRows } from "./hub.js";
import { storyRows } from "./stories.js";
import { isMeasured, type MeasuredRow, type Row } from "./measure.js";

/** Per throughput measurement; with the warm-ups the whole bench stays well under a minute on 2 cores. */
const THROUGHPUT_BUDGET_MS = 1_500;

const USAGE = `Usage: npm run bench [-- --json] [-- --strict]

  --json     print the results as JSON on stdout (progress, if any, goes to stderr)
  --strict   exit 1 when a target is missed or a judged measurement is unavailable
`;

const SECTIONS: readonly [string, () => Promise<Row[]>][] = [
  ["crypto (Code, CPace, seal)", () => cryptoRows(THROUGHPUT_BUDGET_MS)],
  ["hub start and stop", startupRows],
  ["hub behind its embedded aedes", () => brokerRows("aedes")],
  ["hub behind mosquitto", () => brokerRows("mosquitto")],
  ["openings and activation, protocol v2", storyRows],
  ["BLE through a fake bluetoothd", bleRows],
];

function formatNumber(value: number): string {
  if (value >= 100) return Math.round(value).toLocaleString("en-US");
  return value.toPrecision(3);
}

/** Durations are distributions (median, p95…) and say over how many runs; rates and sizes are single values. */
function formatValues(row: MeasuredRow): string {
  const timed = row.unit === "ms";
  const values = Object.entries(row.values)
    .map(([stat, value]) => `${timed ? `${stat} ` : ""}${formatNumber(value)} ${row.unit}`)
    .join(", ");
  return timed ? `${values} (n=${row.samples})` : values;
}

function formatTarget(row: Row): string {
  if (row.target === undefined) return isMeasured(row) ? (row.note ?? "") : "";
  const goal = `${row.target.stat} < ${formatNumber(row.target.below)} ms`;
  if (!isMeasured(row)) return `${goal}  —`;
  return `${goal}  ${row.target.pass ? "PASS" : "FAIL"}`;
}

function table(rows: readonly Row[]): string {
  const cells = rows.map((row) => [row.name, isMeasured(row) ? formatValues(row) : `unavailable: ${row.unavailable}`, formatTarget(row)]);
  const header = ["measurement", "result", "target or reference"];
  const widths = header.map((title, i) => Math.max(title.length, ...cells.map((cell) => (i < 2 ? (cell[i] ?? "").length : 0))));
  const line = (cell: string[]) =>
    cell
      .map((text, i) => (i < cell.length - 1 ? text.padEnd(widths[i] ?? 0) : text))
      .join("  ")
      .trimEnd();
  return [line(header), line(widths.map((w) => "-".repeat(w))), ...cells.map(line)].join("\n");
}

/** True when every judged row was measured and passed. */
function allTargetsMet(rows: readonly Row[]): boolean {
  return rows.every((row) => row.target === undefined || (isMeasured(row) && row.target?.pass === true));
}

async function main(): Promise<void> {
  const { values: flags } = parseArgs({
    options: { json: { type: "boolean" }, strict: { type: "boolean" }, help: { type: "boolean" } },
    strict: true,
  });
  if (flags.help === true) {
    process.stdout.write(USAGE);
    return;
  }
  const rows: Row[] = [];
  for (const [title, measure] of SECTIONS) {
    if (process.stderr.isTTY) process.stderr.write(`measuring: ${title}…\n`);
    rows.push(...(await measure()));
  }
  const machine = { node: process.version, platform: `${process.platform} ${process.arch}`, cpus: cpus().length, cpu: cpus()[0]?.model ?? "unknown" };
  const pass = allTargetsMet(rows);
  if (flags.json === true) {
    process.stdout.write(`${JSON.stringify({ machine, rows, pass }, null, 2)}\n`);
  } else {
    process.stdout.write(`iq-hub bench: node ${machine.node}, ${machine.platform}, ${machine.cpus} × ${machine.cpu}\n\n`);
    process.stdout.write(`${table(rows)}\n\n${pass ? "all targets met" : "some targets missed or not measured"}\n`);
  }
  if (flags.strict === true && !pass) process.exitCode = 1;
}

await main();
