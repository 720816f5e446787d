import { spawn } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { freePort } from "../../bench/net.js";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const MAIN = join(import.meta.dirname, "../../dist/firmware/main.js");


/** Runs the built hub as `npm start` would, with no config, no Pi and no broker. */
async function startHub() {
  const env = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    IQ_HUB_STATE_DIR: mkdtempSync(join(tmpdir(), "iq-main-")),
    IQ_HUB_MQTT__EMBEDDED_PORT: String(await freePort()),
  };
  const startedAt = performance.now();
  const child = spawn(process.execPath, [MAIN], { env, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout.on("data", (d: Buffer) => (output += d.toString()));
  child.stderr.on("data", (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  const waitFor = async (pattern: RegExp, ms: number) => {
    const deadline = performance.now() + ms;
    while (!pattern.test(output)) {
      if (performance.now() > deadline || child.exitCode !== null) throw new Error(`no ${pattern} in:\n${output}`);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    return performance.now() - startedAt;
  };
  return { child, exited, waitFor, output: () => output };
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
    const child = spawn(process.execPath, [MAIN], {
      env: { PATH: process.env.PATH, IQ_HUB_BUTTON__RESET_ARM_MS: "soon" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.on("exit", resolve));
    expect(code).toBe(78);
    expect(stderr).toMatch(/button\.resetArmMs/);
    expect(stderr).toMatch(/IQ_HUB_BUTTON__RESET_ARM_MS/);
  });
});
