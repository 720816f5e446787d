import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { envNameFor, loadConfig, requireServiceOrNamedConfig, validateConfig } from "../../firmware/config.js";
import { ConfigError } from "../../firmware/errors.js";

function errorOf(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error("expected a ConfigError");
}

describe("config", () => {
  it("runs on defaults with no file: one door relay on BCM 27, button on 17, LED on 22/23/24", () => {
    const { config, file } = loadConfig({ env: {} });
    expect(file).toBeUndefined();
    expect(config.locks).toEqual([{ name: "door", pin: 27, activeLow: false, pulseMs: 3000 }]);
    expect(config.button).toMatchObject({ pin: 17, activeLow: true, resetArmMs: 10_000, resetCancelMs: 30_000 });
    expect(config.led).toMatchObject({ red: 22, green: 23, blue: 24, commonAnode: false });
    expect(config.gpio.backend).toBe("auto");
  });

  it("a wrong type names the key, the file and the environment variable that would override it", () => {
    const error = errorOf(() => validateConfig({ button: { resetArmMs: "ten" } }, "/etc/iq-hub/config.json"));
    expect(error.key).toBe("button.resetArmMs");
    expect(error.message).toContain("/etc/iq-hub/config.json");
    expect(error.message).toContain("IQ_HUB_BUTTON__RESET_ARM_MS");
  });

  it("an unknown key lists the allowed keys", () => {
    const error = errorOf(() => validateConfig({ buton: {} }));
    expect(error.key).toBe("buton");
    expect(error.message).toMatch(/allowed: .*button/);
  });

  it("keeps the embedded broker, which has no authentication, on loopback", () => {
    for (const host of ["127.0.0.1", "127.0.1.1", "::1", "localhost"]) {
      expect(validateConfig({ mqtt: { embeddedHost: host } }).mqtt.embeddedHost).toBe(host);
    }
    for (const host of ["0.0.0.0", "::", "192.168.1.20", "iq-door.local", "127.0.0.1.evil.example"]) {
      const error = errorOf(() => validateConfig({ mqtt: { embeddedHost: host } }, "/etc/iq-hub/config.json"));
      expect(error.key, host).toBe("mqtt.embeddedHost");
      expect(error.message).toMatch(/no authentication, so it listens on loopback only/);
      expect(error.message).toMatch(/set mqtt\.url/);
    }
  });

  it("refuses two functions on one pin", () => {
    const error = errorOf(() => validateConfig({ locks: [{ name: "door", pin: 17 }] }));
    expect(error.key).toBe("locks.0.pin");
    expect(error.message).toContain("button.pin");
  });

  it("refuses a cancel threshold shorter than the arm threshold", () => {
    expect(errorOf(() => validateConfig({ button: { resetArmMs: 40_000 } })).key).toBe("button.resetCancelMs");
  });

  it("environment variables override the file, and their errors name the variable", () => {
    const dir = mkdtempSync(join(tmpdir(), "iq-config-"));
    const file = join(dir, "config.json");
    writeFileSync(file, JSON.stringify({ gpio: { backend: "onoff" }, button: { debounceMs: 20 } }));
    const { config } = loadConfig({ env: { IQ_HUB_CONFIG: file, IQ_HUB_GPIO__BACKEND: "mock" } });
    expect(config.gpio.backend).toBe("mock");
    expect(config.button.debounceMs).toBe(20);
    const error = errorOf(() => loadConfig({ env: { IQ_HUB_BUTTON__DEBOUNCE_MS: "fast" } }));
    expect(error.message).toContain("environment IQ_HUB_BUTTON__DEBOUNCE_MS");
  });

  it("BLE: on when a system bus has bluetoothd (auto), on hci0; switched and pointed through the environment", () => {
    expect(loadConfig({ env: {} }).config.ble).toMatchObject({ enabled: "auto", adapter: "hci0" });
    expect(loadConfig({ env: { IQ_HUB_BLE__ENABLED: "false", IQ_HUB_BLE__ADAPTER: "hci1" } }).config.ble).toMatchObject({ enabled: false, adapter: "hci1" });
    expect(errorOf(() => loadConfig({ env: { IQ_HUB_BLE__ADAPTER: "/org/bluez/hci0" } })).message).toMatch(/^config: ble\.adapter: an adapter name such as hci0/);
    expect(errorOf(() => validateConfig({ ble: { name: "a name far longer than fits" } })).key).toBe("ble.name");
  });

  it("a file that is not JSON is a clear error", () => {
    const dir = mkdtempSync(join(tmpdir(), "iq-config-"));
    const file = join(dir, "config.json");
    writeFileSync(file, "{ locks: [ }");
    expect(errorOf(() => loadConfig({ file, env: {} })).message).toMatch(/is not valid JSON/);
  });

  it("the installed hub's config, taken by default outside systemd (sudo iq-hub), is refused with the service named", () => {
    const dir = mkdtempSync(join(tmpdir(), "iq-config-"));
    const installed = join(dir, "config.json");
    writeFileSync(installed, JSON.stringify({ mqtt: { url: "mqtts://pi.local:8883" } }));
    const byHand = loadConfig({ env: {}, defaultFile: installed });
    expect(byHand.installedByDefault).toBe(true);
    const error = errorOf(() => requireServiceOrNamedConfig(byHand, {}));
    expect(error.message).toContain("runs as the service iq-hub");
    expect(error.message).toContain(`--config ${installed}`);
    // The service itself (systemd sets INVOCATION_ID), or anyone naming the file, still starts.
    expect(() => requireServiceOrNamedConfig(byHand, { INVOCATION_ID: "0123abcd" })).not.toThrow();
    for (const named of [loadConfig({ env: {}, file: installed, defaultFile: installed }), loadConfig({ env: { IQ_HUB_CONFIG: installed }, defaultFile: installed })]) {
      expect(named.config.mqtt.url).toBe("mqtts://pi.local:8883");
      expect(() => requireServiceOrNamedConfig(named, {})).not.toThrow();
    }
    // Without an installed config (a laptop), the defaults as before.
    const laptop = loadConfig({ env: {}, defaultFile: join(dir, "absent.json") });
    expect(laptop.file).toBeUndefined();
    expect(() => requireServiceOrNamedConfig(laptop, {})).not.toThrow();
  });

  it("maps key paths to environment names", () => {
    expect(envNameFor(["mqtt", "url"])).toBe("IQ_HUB_MQTT__URL");
    expect(envNameFor(["stateDir"])).toBe("IQ_HUB_STATE_DIR");
  });
});
