import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { MockGpio } from "../../hal/mock-backend.js";
import { validateConfig } from "../../firmware/config.js";
import { deviceKeyFile, ensureDeviceKey } from "../../firmware/device-key.js";
import { Hub } from "../../firmware/hub.js";
import { createLogger } from "../../firmware/log.js";
import { Store } from "../../firmware/store.js";

const BUTTON = 17;
const RELAY = 27;
const LED = { red: 22, green: 23, blue: 24 };

/** Lets LevelDB's thread-pool work finish while timers stay fake. */
async function settle(until: () => boolean): Promise<void> {
  const deadline = process.hrtime.bigint() + 5_000_000_000n;
  while (!until() && process.hrtime.bigint() < deadline) await new Promise((resolve) => setImmediate(resolve));
  expect(until()).toBe(true);
}

function ledColor(gpio: MockGpio): string {
  const lit = [gpio.level(LED.red), gpio.level(LED.green), gpio.level(LED.blue)].map((l) => l === 1);
  const names = ["red", "green", "blue"].filter((_, i) => lit[i]);
  return names.join("+") || "off";
}

describe("hub on mock GPIO", () => {
  let stateDir: string;
  let gpio: MockGpio;
  let hub: Hub;
  const lines: string[] = [];

  async function startHub(
    setup?: (gpio: MockGpio) => void,
    before?: (store: Store) => Promise<void>,
    mqtt: Record<string, unknown> = {},
  ): Promise<Hub> {
    gpio = new MockGpio();
    setup?.(gpio);
    const config = validateConfig({ stateDir, gpio: { backend: "mock" }, mqtt });
    hub = new Hub({
      config,
      port: gpio,
      log: createLogger({ write: (l) => lines.push(l) }),
      mqtt: false,
      ble: false,
      checkClockSynced: () => Promise.resolve(true),
    });
    const store = await Store.open(stateDir);
    await before?.(store);
    await hub.start(store);
    return hub;
  }

  beforeEach(() => {
    stateDir = mkdtempSync(join(tmpdir(), "iq-hub-"));
    lines.length = 0;
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "setInterval", "clearInterval", "Date", "performance"] });
  });
  afterEach(async () => {
    await hub.close();
    vi.useRealTimers();
  });

  it("boots locked, then shows the claim window in fast blue", async () => {
    await startHub();
    expect(gpio.timeline[0]).toMatchObject({ bcm: RELAY, level: 0 });
    expect(hub.lifecycle.state).toBe("claimWindow");
    expect(ledColor(gpio)).toBe("blue");
    vi.advanceTimersByTime(125);
    expect(ledColor(gpio)).toBe("off");
    expect(hub.iqId).toMatch(/^iq-[0-9a-f]{10}$/);
  });

  it("logs the claim as a line to paste: with npx, the broker and shell-safe placeholders", async () => {
    await startHub();
    const logged = lines.find((l) => l.includes("unclaimed: claim it"));
    expect(logged).toContain(`npx iq --broker mqtt://127.0.0.1:1883 --profile PROFILE claim --iq ${hub.iqId} --secret SECRET --name NAME`);
    expect(logged).not.toMatch(/[<>']/);
  });

  it("the claim line names an external broker without the hub's credentials", async () => {
    await startHub(undefined, undefined, { url: "mqtts://iq-door-1:s3cret@broker.lan:8883", protocolVersion: 4 });
    expect(hub.claimCommand("AAAA-BBBB-CCCC")).toBe(
      `npx iq --broker mqtts://broker.lan:8883 --profile PROFILE claim --iq ${hub.iqId} --secret AAAA-BBBB-CCCC --name NAME`,
    );
  });

  it("holding reset for 9.9 s does nothing", async () => {
    await startHub();
    gpio.hold(BUTTON, 9_900);
    vi.advanceTimersByTime(9_899);
    expect(hub.lifecycle.state).toBe("claimWindow");
    vi.advanceTimersByTime(101);
    expect(hub.lifecycle.state).toBe("claimWindow");
    expect(await hub.events.list()).toEqual([]);
  });

  it("holding reset for 10 s starts the red-green-blue cycle; releasing then wipes the IQ", async () => {
    await startHub();
    await hub["store"].put("users", "alice", { role: "owner" });
    const oldKey = readFileSync(hub.deviceKeyFile);
    gpio.press(BUTTON);
    vi.advanceTimersByTime(10_050);
    expect(hub.lifecycle.state).toBe("resetArmed");
    const colors = [ledColor(gpio)];
    for (let i = 0; i < 2; i++) {
      vi.advanceTimersByTime(500);
      colors.push(ledColor(gpio));
    }
    expect(new Set(colors)).toEqual(new Set(["red", "green", "blue"]));
    gpio.release(BUTTON);
    vi.advanceTimersByTime(60);
    await settle(() => hub.lifecycle.state === "claimWindow");
    expect(await hub["store"].get("users", "alice")).toBeUndefined();
    expect(readFileSync(hub.deviceKeyFile).equals(oldKey)).toBe(false);
    expect((await hub.events.list()).map((e) => e.type)).toEqual(["factory_reset"]);
    expect(await hub.setupSecret()).toMatch(/^[0-9A-Z]{12}$/);
  });

  it("still held at 30 s cancels the reset and the LED returns to the state's pattern", async () => {
    await startHub();
    await hub["store"].put("users", "alice", { role: "owner" });
    gpio.press(BUTTON);
    vi.advanceTimersByTime(30_050);
    expect(hub.lifecycle.state).toBe("claimWindow");
    gpio.release(BUTTON);
    vi.advanceTimersByTime(60);
    expect(hub.lifecycle.state).toBe("claimWindow");
    expect(await hub["store"].get("users", "alice")).toEqual({ role: "owner" });
  });

  it("a press already held at start does nothing until it is released once", async () => {
    await startHub((g) => g.press(BUTTON));
    expect(lines.some((l) => l.includes("reads as pressed at start"))).toBe(true);
    vi.advanceTimersByTime(40_000);
    expect(hub.lifecycle.state).toBe("claimWindow");
    gpio.release(BUTTON);
    vi.advanceTimersByTime(60);
    gpio.press(BUTTON);
    vi.advanceTimersByTime(10_050);
    expect(hub.lifecycle.state).toBe("resetArmed");
  });

  it("a short press opens the claim window again and logs the status", async () => {
    await startHub();
    vi.advanceTimersByTime(300_000);
    expect(hub.lifecycle.state).toBe("unclaimed");
    expect(lines.filter((l) => l.includes("claim window closed: press the button briefly"))).toHaveLength(1);
    gpio.hold(BUTTON, 200);
    vi.advanceTimersByTime(260);
    expect(hub.lifecycle.state).toBe("claimWindow");
    expect(lines.some((l) => l.includes("status") && l.includes("door=locked"))).toBe(true);
  });

  it("the relay is locked after a pulse and after shutdown", async () => {
    await startHub();
    const relay = hub.locks.get("door")!;
    void relay.pulse();
    expect(gpio.level(RELAY)).toBe(1);
    vi.advanceTimersByTime(3_000);
    expect(gpio.level(RELAY)).toBe(0);
    relay.hold();
    expect(gpio.level(RELAY)).toBe(1);
    await hub.close();
    expect(gpio.level(RELAY)).toBe(0);
    expect(ledColor(gpio)).toBe("off");
    expect(existsSync(hub.deviceKeyFile)).toBe(true);
  });

  it("a factory reset that begins while a request is deciding never leaves the door open", async () => {
    await startHub();
    hub.lifecycle.enter("activated");
    const deciding = hub.access.setOfficeMode("door", true, { userId: "u-1", name: "Ann", source: "app" });
    const reset = hub.factoryReset("button");
    await expect(deciding).rejects.toMatchObject({ code: "resetting" });
    await reset;
    expect(gpio.level(RELAY)).toBe(0);
    expect(hub.access.isOfficeMode("door")).toBe(false);
    expect(hub.lifecycle.phase).toBe("unclaimed");
  });

  it("a factory reset cut short by a power failure is finished at the next start", async () => {
    await startHub(undefined, async (store) => {
      // Cut short before the device key went: the store is still sealed under it.
      await store.protect(await ensureDeviceKey(deviceKeyFile(stateDir)));
      await store.put("meta", "claimed", true);
      await store.put("meta", "resetting", true);
      await store.put("users", "alice", { role: "owner" });
    });
    expect(hub.lifecycle.phase).toBe("unclaimed");
    expect(await hub["store"].get("users", "alice")).toBeUndefined();
    expect((await hub.events.list()).map((e) => [e.type, e.source])).toEqual([["factory_reset", "system"]]);
  });

  it("a claimed IQ whose device key is gone resets itself instead of running on unreadable secrets", async () => {
    await startHub(undefined, async (store) => {
      await store.protect(randomBytes(32));
      await store.put("meta", "claimed", true);
      await store.put("meta", "iqId", "iq-keeps-its-id");
    });
    expect(hub.iqId).toBe("iq-keeps-its-id");
    expect((await hub.events.list()).map((e) => [e.type, e.source])).toEqual([["factory_reset", "system"]]);
    expect(lines.some((l) => l.includes("device key") && l.includes("missing"))).toBe(true);
    expect(hub.lifecycle.phase).toBe("unclaimed");
  });
});
