import { describe, expect, it } from "vitest";
import { Store } from "../../firmware/store.js";
import { openStore, tempStateDir } from "./temp-state.js";

describe("store", () => {
  it("a second hub on the same state dir is told one is already running, not LevelDB's lock error", async () => {
    const dir = tempStateDir();
    await openStore(dir);
    const error = await Store.open(dir).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "hub_already_running" });
    expect((error as Error).message).toBe(
      `a hub is already running with this state dir (${dir}): stop it first, or give this one another stateDir`,
    );
    expect((error as Error).message).not.toMatch(/LOCK|IO error/);
  });

  it("opens again once the first one has closed", async () => {
    const dir = tempStateDir();
    const first = await Store.open(dir);
    await first.close();
    const second = await openStore(dir);
    expect(second.dir).toMatch(/db$/);
  });
});
