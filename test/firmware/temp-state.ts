/** Throw-away state directories and stores for tests that need a real LevelDB on disk. */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { onTestFinished } from "vitest";
import { Store } from "../../firmware/store.js";

/** A fresh state directory, removed when the current test ends. */
export function tempStateDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "iq-state-"));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A store under `stateDir`, closed when the current test ends (closing twice is harmless). */
export async function openStore(stateDir: string): Promise<Store> {
  const store = await Store.open(stateDir);
  onTestFinished(() => store.close());
  return store;
}
