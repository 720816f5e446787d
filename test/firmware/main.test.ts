import { mkdtempSync } from "node:fs";
import { freePort } from "../../bench/net.js";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { spawnHubProcess } from "../support/hub-process.js";

/** Runs the built hub as `npm start` would, with no config, no Pi and no broker. */
async function startHub() {
  return spawnHubProcess({
    HOME: process.env.HOME ?? "",
    IQ_HUB_STATE_DIR: mkdtempSync(join(tmpdir(), "iq-main-")),
    IQ_HUB_MQTT__EMBEDDED_PORT: String(await freePort()),
  });
}

describe("npm start on a machine without GPIO", () => {
  it("says it runs on mock GPIO, reaches the unclaimed state, and exits 0 within 2 s of SIGTERM", async () => {
    const hub = await startHub();
    const reachedMs = await hub.waitFor(/state state=claimWindow phase=unclaimed/, 10_000);
    expect(hub.output()).toMatch(/mock GPIO/);
    expect(hub.output()).toMatch(/door=locked/);
    const stopAt = performance.now();
    hub.child.kill("SIGTERM");
    expect(await hub.exited).toBe(0);
    const stopMs = performance.now() - stopAt;
    expect(stopMs).toBeLessThan(2_000);
    expect(hub.output()).toMatch(/stopped: relays locked, LED off/);
    expect(hub.output()).not.toMatch(/\n\s+at /);
    // Figures for the closing note; the speed target itself lives in `npm run bench`.
    console.info(`start → unclaimed: ${reachedMs.toFixed(0)} ms; SIGTERM → exit: ${stopMs.toFixed(0)} ms`);
  });

  it("a bad config value stops the start with a message naming the key", async () => {
    const hub = spawnHubProcess({ IQ_HUB_BUTTON__RESET_ARM_MS: "soon" });
    expect(await hub.exited).toBe(78);
    expect(hub.output()).toMatch(/button\.resetArmMs/);
    expect(hub.output()).toMatch(/IQ_HUB_BUTTON__RESET_ARM_MS/);
  });
});
