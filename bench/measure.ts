/**
 * Timing helpers and the shape of one result. Every measurement is a Row: numbers in one unit,
 * optionally judged against a target, or the reason it could not be taken.
 */

export type Unit = "ops/s" | "ms" | "MiB";

export interface Target {
  /** The value (a key of `values`) that is judged. */
  stat: string;
  /** It passes when strictly below this. */
  below: number;
  pass: boolean;
}

export interface MeasuredRow {
  name: string;
  unit: Unit;
  /** Named results in `unit`, in the order they are shown: { median, p95 } or { rate }. */
  values: Record<string, number>;
  /** How many runs or operations the values summarise. */
  samples: number;
  target?: Target;
  /** A reference to read the values against without judging them (e.g. a figure from DESIGN). */
  note?: string;
}

export interface UnavailableRow {
  name: string;
  unavailable: string;
  /** Kept so that --strict knows a judged measurement is missing. */
  target?: Pick<Target, "stat" | "below">;
}

export type Row = MeasuredRow | UnavailableRow;

export function isMeasured(row: Row): row is MeasuredRow {
  return !("unavailable" in row);
}

/** Nearest-rank quantile of already sorted samples, 0 < q ≤ 1. */
function quantile(sorted: readonly number[], q: number): number {
  const value = sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
  if (value === undefined) throw new Error("no samples");
  return value;
}

/** median and the requested upper quantiles (e.g. [0.95] → p95) of samples in ms. */
export function distribution(samples: readonly number[], upper: readonly number[]): Record<string, number> {
  const sorted = [...samples].sort((a, b) => a - b);
  return {
    median: quantile(sorted, 0.5),
    ...Object.fromEntries(upper.map((q) => [`p${Math.round(q * 100)}`, quantile(sorted, q)])),
  };
}

/** Judges `stat` of `values` against `below`. */
export function judged(values: Record<string, number>, stat: string, below: number): Target {
  const value = values[stat];
  return { stat, below, pass: value !== undefined && value < below };
}

/**
 * Operations per second of a synchronous `op`, run for about `budgetMs` after a warm-up of a
 * fifth of it (the JIT and the ciphers' table set-up would otherwise count against the first runs).
 */
export function rate(op: () => void, budgetMs: number): { rate: number; samples: number } {
  const run = (ms: number): { count: number; elapsed: number } => {
    const start = performance.now();
    let count = 0;
    let elapsed = 0;
    while (elapsed < ms) {
      op();
      count += 1;
      elapsed = performance.now() - start;
    }
    return { count, elapsed };
  };
  run(budgetMs / 5);
  const { count, elapsed } = run(budgetMs);
  return { rate: (count * 1000) / elapsed, samples: count };
}

/** The duration in ms of each of `runs` calls of `op`, after `warmup` untimed ones. */
export async function durations(op: () => void | Promise<void>, runs: number, warmup = 0): Promise<number[]> {
  for (let i = 0; i < warmup; i++) await op();
  const samples: number[] = [];
  for (let i = 0; i < runs; i++) {
    const start = performance.now();
    await op();
    samples.push(performance.now() - start);
  }
  return samples;
}

/**
 * Runs a group of measurements that may fail part-way (a hub that does not start): rows already
 * taken are kept, and every name in `names` without a row becomes "unavailable: <reason>".
 */
export async function measureGroup(
  names: readonly string[],
  targets: Readonly<Record<string, Pick<Target, "stat" | "below">>>,
  measure: (add: (row: MeasuredRow) => void) => Promise<void>,
): Promise<Row[]> {
  const rows = new Map<string, Row>();
  try {
    await measure((row) => rows.set(row.name, row));
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    for (const name of names) {
      const target = targets[name];
      if (!rows.has(name)) rows.set(name, { name, unavailable: reason, ...(target === undefined ? {} : { target }) });
    }
  }
  return names.flatMap((name) => rows.get(name) ?? []);
}
