import { once } from "node:events";
import { mkdtempSync } from "node:fs";
import { createServer } from "node:net";
import { freePort } from "../../bench/net.js";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it, onTestFinished } from "vitest";
import { spawnHubProcess } from "../support/hub-process.js";

/** Runs the built hub as `npm start` would, with no config, no Pi and no broker. */
async function startHub(stateDir = mkdtempSync(join(tmpdir(), "iq-main-")), port?: number) {
  return spawnHubProcess({
    HOME: process.env.HOME ?? "",
    IQ_HUB_STATE_DIR: stateDir,
    IQ_HUB_MQTT__EMBEDDED_PORT: String(port ?? (await freePort())),
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

  it("npm start twice: the second says a hub is already running with this state dir, and exits 1", async () => {
    const stateDir = mkdtempSync(join(tmpdir(), "iq-main-"));
    const first = await startHub(stateDir);
    onTestFinished(() => void first.child.kill("SIGKILL"));
    await first.waitFor(/msg=ready/, 10_000);
    const second = await startHub(stateDir);
    expect(await second.exited).toBe(1);
    expect(second.output()).toContain(`a hub is already running with this state dir (${stateDir})`);
    expect(second.output()).toContain("[hub_already_running]");
    expect(second.output()).not.toMatch(/LOCK|IO error/);
  });

  it("a taken embedded port stops the start, naming the port and mqtt.url, instead of using what listens there", async () => {
    const squatter = createServer().listen(0, "127.0.0.1");
    await once(squatter, "listening");
    onTestFinished(() => void squatter.close());
    const { port } = squatter.address() as { port: number };
    const hub = await startHub(undefined, port);
    expect(await hub.exited).toBe(1);
    expect(hub.output()).toContain(`port ${port} on 127.0.0.1 is in use, so the embedded MQTT broker cannot start`);
    expect(hub.output()).toContain("set mqtt.url");
    expect(hub.output()).toContain("[embedded_broker_port_in_use]");
    expect(hub.output()).not.toMatch(/connecting to the MQTT broker/);
  });
});
