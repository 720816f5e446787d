/** Throw-away state directories and stores for tests that need a real LevelDB on disk. */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Level } from "level";
import { onTestFinished } from "vitest";
import { Store } from "../../firmware/store.js";

/** A fresh state directory, removed when the current test ends. */
export function tempStateDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "iq-state-"));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** The device key the seal of test stores is made under (the same at every reopening). */
export const TEST_DEVICE_KEY: Readonly<Uint8Array> = new Uint8Array(32).fill(7);

/**
 * A store under `stateDir`, its seal checked under TEST_DEVICE_KEY (as the hub does at start),
 * closed when the current test ends (closing twice is harmless).
 */
export async function openStore(stateDir: string): Promise<Store> {
  const store = await Store.open(stateDir);
  onTestFinished(() => store.close());
  await store.protect(TEST_DEVICE_KEY.slice());
  return store;
}

const rawSublevel = (db: Level<string, unknown>, name: string) => db.sublevel<string, unknown>(name, { valueEncoding: "json" });
/** A sublevel of a LevelDB opened directly (see editRaw). */
export type RawSublevel = ReturnType<typeof rawSublevel>;

/**
 * Edits the store under `stateDir` as someone with the card but without the device key would:
 * LevelDB opened directly, around the Store and its seal. `edit` gets each sublevel by name.
 * `compression: false` keeps what it writes verbatim in the table files (Snappy would not).
 */
export async function editRaw(
  stateDir: string,
  edit: (sublevel: (name: string) => RawSublevel) => Promise<void>,
  options: { compression?: boolean } = {},
): Promise<void> {
  const db = new Level<string, unknown>(join(stateDir, "db"), { valueEncoding: "json", ...options });
  await db.open();
  try {
    await edit((name) => rawSublevel(db, name));
  } finally {
    await db.close();
  }
}
