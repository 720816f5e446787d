/**
 * The IQ itself, hardware and state wired together: relays, LED, reset button, store, audit and
 * lifecycle. It knows nothing of processes, signals or terminals (firmware/main.ts does), so
 * tests build a Hub on mock GPIO and a temporary store and drive every story through it.
 */
import { randomBytes } from "node:crypto";
import { Button } from "../hal/button.js";
import type { GpioPort } from "../hal/gpio-port.js";
import { Relay } from "../hal/relay.js";
import { RgbLed } from "../hal/rgb-led.js";
import { Audit } from "./audit.js";
import type { HubConfig } from "./config.js";
import { destroyDeviceKey, deviceKeyFile, ensureDeviceKey } from "./device-key.js";
import { LED_TABLE, describePattern } from "./led-table.js";
import { Lifecycle } from "./lifecycle.js";
import type { Logger } from "./log.js";
import { attachResetButton } from "./reset-button.js";
import type { Store } from "./store.js";

export interface HubOptions {
  config: HubConfig;
  port: GpioPort;
  log: Logger;
  now?: () => number;
}

/** Keys of the `meta` sublevel. */
const META = { iqId: "iqId", claimed: "claimed" } as const;

export class Hub {
  readonly lifecycle: Lifecycle;
  readonly led: RgbLed;
  readonly locks: ReadonlyMap<string, Relay>;
  readonly button: Button;
  readonly deviceKeyFile: string;
  private deviceKey: Uint8Array | undefined;
  private audit: Audit | undefined;
  private iq: string | undefined;
  private detachButton: (() => void) | undefined;
  private opened: Store | undefined;
  private resetting: Promise<void> | undefined;
  private released = false;

  /** Claims every output in its safe state at once: the relay is locked before anything can fail. */
  constructor(private readonly options: HubOptions) {
    const { config, port } = options;
    this.locks = new Map(config.locks.map((lock) => [lock.name, new Relay(port, lock)]));
    this.led = new RgbLed(port, {
      pins: { red: config.led.red, green: config.led.green, blue: config.led.blue },
      commonAnode: config.led.commonAnode,
    });
    this.lifecycle = new Lifecycle(options.now);
    this.lifecycle.on("change", (state) => this.led.show(LED_TABLE[state]));
    this.led.show(LED_TABLE.booting);
    this.button = new Button(port, {
      pin: config.button.pin,
      activeLow: config.button.activeLow,
      debounceMs: config.button.debounceMs,
      shortPressMaxMs: config.button.shortPressMaxMs,
      holdThresholdsMs: [config.button.resetArmMs, config.button.resetCancelMs],
    });
    this.deviceKeyFile = deviceKeyFile(config.stateDir);
  }

  get iqId(): string {
    if (this.iq === undefined) throw new Error("hub not started");
    return this.iq;
  }

  private get store(): Store {
    if (this.opened === undefined) throw new Error("hub not started");
    return this.opened;
  }

  get events(): Audit {
    if (this.audit === undefined) throw new Error("hub not started");
    return this.audit;
  }

  /** Loads keys and state, then leaves "booting" for "unclaimed" (claim window open) or "activated". */
  async start(store: Store): Promise<void> {
    const { config, log } = this.options;
    this.opened = store;
    this.deviceKey = await ensureDeviceKey(this.deviceKeyFile);
    this.audit = await Audit.open(store, config.audit.maxEvents, this.options.now);
    this.iq = await this.ensureIqId();
    this.detachButton = attachResetButton(
      this.button,
      {
        showStatus: () => this.showStatus(),
        armReset: () => {
          log.warn("reset armed: release the button now to wipe every key, PIN and user; keep holding to cancel");
          this.lifecycle.setResetArmed(true);
        },
        cancelReset: () => {
          log.info("reset cancelled: the button was held too long");
          this.lifecycle.setResetArmed(false);
        },
        factoryReset: () => void this.factoryReset("button"),
      },
      config.button,
    );
    if (this.button.ignoringUntilReleased) {
      log.warn("the reset button reads as pressed at start: ignored until released (missing pull-up? see README)", {
        pin: config.button.pin,
      });
    }
    const claimed = (await store.get<boolean>("meta", META.claimed)) === true;
    this.lifecycle.enter(claimed ? "activated" : "unclaimed");
    if (!claimed) this.lifecycle.openClaimWindow(config.claimWindowMs);
  }

  /** Short press: one status line in the log; an unclaimed IQ also opens its claim window. */
  showStatus(): void {
    const { log, config } = this.options;
    if (this.lifecycle.phase === "unclaimed") this.lifecycle.openClaimWindow(config.claimWindowMs);
    log.info("status", {
      iqId: this.iq,
      state: this.lifecycle.state,
      led: describePattern(LED_TABLE[this.lifecycle.state]),
      ...Object.fromEntries([...this.locks].map(([name, relay]) => [name, relay.isUnlocked ? "unlocked" : "locked"])),
    });
  }

  /**
   * Wipes every secret and user and returns the IQ to "unclaimed". The device key goes first: if
   * power fails halfway, whatever is left in the store can no longer be read.
   */
  factoryReset(source: "button" | "system"): Promise<void> {
    this.resetting ??= this.runFactoryReset(source).finally(() => (this.resetting = undefined));
    return this.resetting;
  }

  private async runFactoryReset(source: "button" | "system"): Promise<void> {
    const { log, config } = this.options;
    const store = this.store;
    log.warn("factory reset: wiping keys, PINs, users and activations");
    this.lifecycle.enter("resetting");
    this.lifecycle.setOfficeMode(false);
    for (const relay of this.locks.values()) relay.lock();
    await destroyDeviceKey(this.deviceKeyFile);
    this.deviceKey = undefined;
    await store.wipeForReset();
    this.deviceKey = await ensureDeviceKey(this.deviceKeyFile);
    await store.put("meta", META.iqId, this.iqId);
    await this.events.record({ type: "factory_reset", source });
    this.lifecycle.enter("unclaimed");
    this.lifecycle.openClaimWindow(config.claimWindowMs);
    log.info("factory reset done: the IQ is unclaimed, claim window open");
  }

  /** The configured id, else the one generated at first start and kept in the store. */
  private async ensureIqId(): Promise<string> {
    const { config } = this.options;
    const store = this.store;
    const stored = await store.get<string>("meta", META.iqId);
    const id = config.iqId ?? stored ?? `iq-${randomBytes(5).toString("hex")}`;
    if (id !== stored) await store.put("meta", META.iqId, id);
    return id;
  }

  /**
   * Safe state for shutdown or a fatal error: every relay locked, LED off, pins released.
   * Synchronous, so it can run from an exit handler.
   */
  releaseHardware(): void {
    if (this.released) return;
    this.released = true;
    this.detachButton?.();
    this.lifecycle.close();
    for (const relay of this.locks.values()) relay.close();
    this.led.close();
    this.button.close();
    this.deviceKey?.fill(0);
  }

  /** Hardware to its safe state first, then the store closed. */
  async close(): Promise<void> {
    this.releaseHardware();
    await this.opened?.close();
  }
}
