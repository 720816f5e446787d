/**
 * The IQs' latest challenges to this profile's apps (protocol v2), kept beside the profile in
 * `<profile>.challenges.json`. A challenge lets the next command go without an extra round trip;
 * it is worth nothing to anyone without the app's keys, and losing one costs only that round trip.
 * So this file is written plainly, without the fsyncs that guard the profile (which holds keys and
 * counters): an opening should not wait on the disk twice. A file that cannot be read or parsed
 * counts as empty.
 */
import { readFile, writeFile, mkdir } from "node:fs/promises";
import { dirname } from "node:path";

interface Cached {
  appId: string;
  value: string;
  /** When it arrived, by this app's clock (ms). */
  at: number;
}

export class ChallengeCache {
  private entries: Record<string, Cached> | undefined;
  private dirMade = false;

  constructor(private readonly file: string) {}

  /** The challenge the IQ last gave `appId`, if it arrived within `maxAgeMs` of `now`. */
  async get(iqId: string, appId: string, now: number, maxAgeMs: number): Promise<string | undefined> {
    const entry = (await this.load())[iqId];
    return entry !== undefined && entry.appId === appId && now - entry.at < maxAgeMs ? entry.value : undefined;
  }

  async set(iqId: string, entry: Cached): Promise<void> {
    const entries = await this.load();
    entries[iqId] = entry;
    try {
      if (!this.dirMade) await mkdir(dirname(this.file), { recursive: true, mode: 0o700 });
      this.dirMade = true;
      await writeFile(this.file, JSON.stringify(entries), { mode: 0o600 });
    } catch {
      // Best effort: the next command then takes one more round trip.
    }
  }

  private async load(): Promise<Record<string, Cached>> {
    if (this.entries === undefined) {
      try {
        const parsed = JSON.parse(await readFile(this.file, "utf8")) as unknown;
        this.entries = typeof parsed === "object" && parsed !== null ? (parsed as Record<string, Cached>) : {};
      } catch {
        this.entries = {};
      }
    }
    return this.entries;
  }
}
