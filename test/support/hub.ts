/**
 * An IQ for end-to-end tests: the real Hub (store on disk, keys, handler, MQTT transport) on
 * mock GPIO, connected to a real broker. The clock's synchronisation is a switch the test holds.
 */
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MockGpio } from "../../hal/mock-backend.js";
import type { OtpKeyPort } from "../../hal/otp-key.js";
import { validateConfig } from "../../firmware/config.js";
import { Hub } from "../../firmware/hub.js";
import { createLogger } from "../../firmware/log.js";
import { setupSecretFile } from "../../firmware/setup-secret.js";
import { Store } from "../../firmware/store.js";
import type { TestBroker } from "./broker.js";

export interface TestHub {
  hub: Hub;
  gpio: MockGpio;
  stateDir: string;
  iqId: string;
  /** What the hub logged, for assertions. */
  logs: string[];
  /** The clock's synchronisation as the hub sees it; flip it to test clock_unsynced. */
  clock: { synced: boolean };
  /** Moves the hub's clock forward (lockout blocks, Code time steps) without waiting. */
  advance: (ms: number) => void;
  /** Moves the hub's monotonic clock forward (challenges, pairing tickets): a command held back. */
  advanceMonotonic: (ms: number) => void;
  /** The hub's clock. */
  now: () => number;
  /** The setup secret, as someone with the Pi in hand reads it. */
  setupSecret(): string;
  stop(): Promise<void>;
}

export const RELAY_PIN = 27;
export const BUTTON_PIN = 17;

export interface TestHubOptions {
  /** The test broker; its protocol version is the hub's (aedes speaks MQTT 3.1.1 only). None: no MQTT at all. */
  broker?: Pick<TestBroker, "url" | "protocolVersion">;
  stateDir?: string;
  iqId?: string;
  /** Raw config merged over the test defaults (e.g. short button thresholds). */
  config?: Record<string, unknown>;
  /** The board's OTP key (default: the real tool, absent on this machine). */
  otpKey?: OtpKeyPort;
}

export async function startTestHub(options: TestHubOptions): Promise<TestHub> {
  const stateDir = options.stateDir ?? mkdtempSync(join(tmpdir(), "iq-e2e-"));
  const gpio = new MockGpio();
  const logs: string[] = [];
  const clock = { synced: true };
  let shiftMs = 0;
  let monotonicShiftMs = 0;
  const now = () => Date.now() + shiftMs;
  const config = validateConfig({
    stateDir,
    iqId: options.iqId ?? `iq-test-${Math.random().toString(16).slice(2, 10)}`,
    gpio: { backend: "mock" },
    ...(options.broker && {
      mqtt: { url: options.broker.url, protocolVersion: options.broker.protocolVersion, reconnectMinMs: 100, reconnectMaxMs: 1_000 },
    }),
    ...options.config,
  });
  const hub = new Hub({
    config,
    port: gpio,
    log: createLogger({ write: (line) => logs.push(line) }),
    now,
    checkClockSynced: () => Promise.resolve(clock.synced),
    monotonic: () => performance.now() + monotonicShiftMs,
    mqtt: options.broker !== undefined,
    ble: options.config?.ble !== undefined,
    otpKey: options.otpKey,
  });
  const store = await Store.open(stateDir);
  try {
    await hub.start(store);
  } catch (error) {
    // As a failed start of the process would: pins released, store closed for the next try.
    await hub.close();
    await store.close();
    throw error;
  }
  return {
    hub,
    gpio,
    stateDir,
    iqId: hub.iqId,
    logs,
    clock: {
      get synced() {
        return clock.synced;
      },
      set synced(value: boolean) {
        clock.synced = value;
        hub.lifecycle.setClockSynced(value);
        void hub["clock"]?.check();
      },
    },
    advance: (ms) => {
      shiftMs += ms;
    },
    advanceMonotonic: (ms) => {
      monotonicShiftMs += ms;
    },
    now,
    setupSecret: () => readFileSync(setupSecretFile(stateDir), "utf8").trim(),
    stop: () => hub.close(),
  };
}
