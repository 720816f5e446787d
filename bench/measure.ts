/**
 * Timing helpers and the record of one run: each section puts its figures under the keys of
 * metrics.ts; a section that cannot finish leaves the reason under every key it did not fill, so a
 * missing figure is never silently absent.
 */
import type { MetricKey } from "./metrics.js";

/** Figures of one metric: p50/p99/value and counts (`n`), plus whatever explains them. */
export type Figures = Record<string, number | string | boolean>;

/**
 * `unavailable`: the measurement cannot be taken here (no dbus-daemon); `failed`: it was tried
 * and went wrong (an open refused or unanswered), which is a broken path, never a fast one.
 */
export type Outcome = { figures: Figures } | { unavailable: string } | { failed: string };

/** Thrown for what this machine lacks, as opposed to what went wrong. */
export class Unavailable extends Error {}

/** Nearest-rank quantile of already sorted samples, 0 < q ≤ 1. */
function quantile(sorted: readonly number[], q: number): number {
  const value = sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
  if (value === undefined) throw new Error("no samples");
  return value;
}

/** p50, p99 and the number of samples (p99 of fewer than 100 samples is their maximum or near it: `n` says so). */
export function percentiles(samples: readonly number[]): { p50: number; p99: number; n: number } {
  const sorted = [...samples].sort((a, b) => a - b);
  return { p50: quantile(sorted, 0.5), p99: quantile(sorted, 0.99), n: sorted.length };
}

/** Windows a throughput is measured in; the median of their rates is the result. */
const RATE_WINDOWS = 5;

/**
 * Operations per second of a synchronous `op`: after a warm-up of a fifth of `budgetMs` (the JIT
 * and the ciphers' set-up would otherwise count against the first runs), the median rate of
 * RATE_WINDOWS windows that share `budgetMs`. On a shared VM the host takes the vCPU away for
 * tens of milliseconds at a time, and one such pause in a single long window moved this figure by
 * half (3,700–7,300 Code checks a second for the same code); the median of short windows says what
 * the code does, and the slowest and fastest window beside it say how much the host took.
 */
export function rate(op: () => void, budgetMs: number): { value: number; n: number; slowest_window: number; fastest_window: number } {
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
  const windows = Array.from({ length: RATE_WINDOWS }, () => run(budgetMs / RATE_WINDOWS));
  const rates = windows.map(({ count, elapsed }) => (count * 1000) / elapsed).sort((a, b) => a - b);
  return {
    value: quantile(rates, 0.5),
    n: windows.reduce((total, { count }) => total + count, 0),
    slowest_window: rates[0]!,
    fastest_window: rates.at(-1)!,
  };
}

/** The duration in ms of each of `runs` calls of `op`, after `warmup` untimed ones. */
export async function durations(op: () => unknown, runs: number, warmup = 0): Promise<number[]> {
  for (let i = 0; i < warmup; i++) await op();
  const samples: number[] = [];
  for (let i = 0; i < runs; i++) {
    const start = performance.now();
    await op();
    samples.push(performance.now() - start);
  }
  return samples;
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Progress for whoever watches (stderr), never mixed into the JSON on stdout. */
export function progress(line: string): void {
  process.stderr.write(`bench: ${line}\n`);
}

export class Results {
  private readonly outcomes = new Map<MetricKey, Outcome>();

  set(key: MetricKey, figures: Figures): void {
    this.outcomes.set(key, { figures });
  }

  get(key: MetricKey): Outcome | undefined {
    return this.outcomes.get(key);
  }

  /** The named figure of a measured metric, if it was measured. */
  figure(key: MetricKey, name: string): number | undefined {
    const outcome = this.outcomes.get(key);
    const value = outcome !== undefined && "figures" in outcome ? outcome.figures[name] : undefined;
    return typeof value === "number" ? value : undefined;
  }

  /**
   * Runs one section, which fills some of `keys`; if it throws, the keys it has not filled get
   * the reason, and the run goes on with the next section.
   */
  async section(title: string, keys: readonly MetricKey[], run: () => Promise<void>): Promise<void> {
    progress(`${title}…`);
    const started = performance.now();
    try {
      await run();
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      progress(`${title}: ${reason}`);
      for (const key of keys) {
        if (!this.outcomes.has(key)) this.outcomes.set(key, error instanceof Unavailable ? { unavailable: reason } : { failed: reason });
      }
    }
    progress(`${title}: ${((performance.now() - started) / 1000).toFixed(1)} s`);
  }
}
