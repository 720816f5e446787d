/**
 * The IQ itself, hardware and state wired together: relays, LED, reset button, store, keys,
 * users, audit, lifecycle, the request handler and the MQTT and BLE transports. It knows nothing of
 * processes, signals or terminals (firmware/main.ts does), so tests build a Hub on mock GPIO and
 * a temporary store and drive every story through it.
 */
import { randomBytes } from "node:crypto";
import { Button } from "../hal/button.js";
import type { GpioPort } from "../hal/gpio-port.js";
import { Relay } from "../hal/relay.js";
import { RgbLed } from "../hal/rgb-led.js";
import { topicsFor } from "../provisioning/protocol/topics.js";
import { Access } from "./access.js";
import { Audit } from "./audit.js";
import { isClockSynced, TrustedClock } from "./clock.js";
import type { HubConfig } from "./config.js";
import { destroyDeviceKey, deviceKeyFile, ensureDeviceKey, keyProtection, readDeviceKey, type KeyProtection } from "./device-key.js";
import { RpiOtpKeyTool, type OtpKeyPort, type OtpKeyReading } from "../hal/otp-key.js";
import type { IqContext, StatusResult } from "./handler/context.js";
import { RequestHandler } from "./handler/request-handler.js";
import { WebBudget } from "./handler/web-budget.js";
import { ensureIqKeys, type IqKeys } from "./iq-keys.js";
import { createSigner } from "../provisioning/crypto/identity.js";
import { LED_TABLE, describePattern } from "./led-table.js";
import { Lifecycle } from "./lifecycle.js";
import { Lockout } from "./lockout.js";
import type { Logger } from "./log.js";
import { RateLimiter } from "./rate-limit.js";
import { attachResetButton } from "./reset-button.js";
import { SecretStore } from "./secret-store.js";
import { ensureSetupSecret, readSetupSecret, removeSetupSecretFile, setupSecretDelOp, setupSecretFile } from "./setup-secret.js";
import type { Store, StoreOp } from "./store.js";
import { REQUESTS } from "./handler/limits.js";
import type { BleTransport } from "./transports/ble/ble.js";
import { MqttTransport } from "./transports/mqtt.js";
import { Users } from "./users.js";
import { VERSION } from "./version.js";

export interface HubOptions {
  config: HubConfig;
  port: GpioPort;
  log: Logger;
  now?: () => number;
  /** Off in tests that exercise the hardware alone. Default on. */
  mqtt?: boolean;
  /** Off where no test asks for it; default: as `ble.enabled` says. */
  ble?: boolean;
  /** How the clock's synchronisation is found out; tests inject one. */
  checkClockSynced?: () => Promise<boolean>;
  /** The monotonic clock of challenges and pairing tickets (ms); tests inject one to hold a command back. */
  monotonic?: () => number;
  /** The board's OTP key, which wraps the device key; default: ask `rpi-otp-private-key`. */
  otpKey?: OtpKeyPort;
}

/** Keys of the `meta` sublevel. `resetting` marks a factory reset under way (power may fail). */
const META = { iqId: "iqId", claimed: "claimed", lastTrustedTime: "lastTrustedTime", resetting: "resetting" } as const;


/** What the device key opens: replaced by a factory reset. */
interface Keyed {
  secrets: SecretStore;
  users: Users;
  keys: IqKeys;
  sign: IqContext["sign"];
}

/** The parts that exist once the store is open. The audit trail outlives a factory reset. */
interface Running extends Keyed {
  store: Store;
  audit: Audit;
  lockout: Lockout;
  iqId: string;
}

export class Hub implements IqContext {
  readonly lifecycle: Lifecycle;
  readonly led: RgbLed;
  readonly locks: ReadonlyMap<string, Relay>;
  readonly button: Button;
  readonly access: Access;
  readonly junk: RateLimiter;
  readonly deviceKeyFile: string;
  readonly now: () => number;
  readonly webBudget: WebBudget;
  readonly initialPinTtlMs: number;
  private running: Running | undefined;
  private handler: RequestHandler | undefined;
  private transport: MqttTransport | undefined;
  private bleTransport: BleTransport | undefined;
  private clock: TrustedClock | undefined;
  private stopClockWatch: (() => void) | undefined;
  private detachButton: (() => void) | undefined;
  private resetting: Promise<void> | undefined;
  private statePending = false;
  private released = false;
  /** Read once at start: a factory reset wraps its new device key with it too. */
  private otp: OtpKeyReading = { reason: "not read yet" };

  /** Claims every output in its safe state at once: the relay is locked before anything can fail. */
  constructor(private readonly options: HubOptions) {
    const { config, port } = options;
    this.now = options.now ?? Date.now;
    this.locks = new Map(config.locks.map((lock) => [lock.name, new Relay(port, lock)]));
    this.led = new RgbLed(port, {
      pins: { red: config.led.red, green: config.led.green, blue: config.led.blue },
      commonAnode: config.led.commonAnode,
    });
    this.lifecycle = new Lifecycle();
    this.lifecycle.on("change", (state) => {
      this.led.show(LED_TABLE[state]);
      this.publishState();
    });
    // Otherwise a claim that fails later with claim_window_closed is the first sign of it.
    this.lifecycle.on("claimWindowClosed", () => options.log.info("claim window closed: press the button briefly to open it again"));
    this.led.show(LED_TABLE.booting);
    this.button = new Button(port, {
      pin: config.button.pin,
      activeLow: config.button.activeLow,
      debounceMs: config.button.debounceMs,
      shortPressMaxMs: config.button.shortPressMaxMs,
      holdThresholdsMs: [config.button.resetArmMs, config.button.resetCancelMs],
    });
    this.access = new Access(this.locks, () => this.events, this.lifecycle, () => this.publishState(), options.log);
    this.junk = new RateLimiter(this.now);
    this.deviceKeyFile = deviceKeyFile(config.stateDir);
    this.webBudget = new WebBudget(() => this.store, this.now);
    this.initialPinTtlMs = config.initialPinValidDays * 24 * 60 * 60_000;
  }

  private get run(): Running {
    if (this.running === undefined) throw new Error("hub not started");
    return this.running;
  }

  get iqId(): string {
    return this.run.iqId;
  }
  get log(): Logger {
    return this.options.log;
  }
  get store(): Store {
    return this.run.store;
  }
  get events(): Audit {
    return this.run.audit;
  }
  get users(): Users {
    return this.run.users;
  }
  get lockout(): Lockout {
    return this.run.lockout;
  }
  keys(): IqKeys {
    return this.run.keys;
  }
  sign(kind: "answer" | "state" | "event", body: unknown): { signed: string; sig: string } {
    return this.run.sign(kind, body);
  }
  get responsesTopic(): string {
    return topicsFor(this.iqId, this.options.config.mqtt.topicPrefix).responses;
  }
  /** The handler's entry point, for transports (and tests that skip the broker). */
  get requests(): RequestHandler {
    if (this.handler === undefined) throw new Error("hub not started");
    return this.handler;
  }

  /** Loads keys and state, then leaves "booting" for "unclaimed" (claim window open) or "activated". */
  async start(store: Store): Promise<void> {
    const { config, log } = this.options;
    // A full or read-only disk reaches a client only as `storage_failed`; the details go here.
    // Every door locks (Office Mode ends): no PIN can be checked now (a wrong one could not be
    // counted), so nobody could switch Office Mode off, and nothing that opens can be recorded.
    store.onWriteFailure((error) => {
      log.error("cannot write the store (disk full or read-only?): every door locked; whatever must be recorded is refused (storage_failed) until it can be written again", { dir: store.dir, error });
      this.access.lockAll();
    });
    this.otp = await (this.options.otpKey ?? new RpiOtpKeyTool()).read();
    const existingKey = await readDeviceKey(this.deviceKeyFile, this.otp);
    log.info(
      this.otp.key === undefined
        ? "device key protection: file-only (a copy of the whole card opens it; see README, Binding the keys to the board)"
        : "device key protection: otp-wrapped (a copy of the card opens nothing on another board)",
      { keyProtection: this.keyProtection, ...(this.otp.reason !== undefined && { otp: this.otp.reason }) },
    );
    // Without its key nothing in the store can be read or checked: start over, keeping the id.
    const keyLost = existingKey === undefined && (await store.holdsProtected());
    const previousId = keyLost ? await this.forgetUnreadable(store) : undefined;
    const deviceKey = existingKey ?? (await ensureDeviceKey(this.deviceKeyFile, this.otp));
    await this.protectStore(store, deviceKey);
    const iqId = await this.ensureIqId(store, previousId);
    this.running = {
      store,
      audit: await Audit.open(store, config.audit.maxEvents, this.now),
      lockout: new Lockout(store, this.now),
      iqId,
      ...(await this.openKeyed(store, iqId, deviceKey)),
    };
    this.handler = new RequestHandler(this, this.options.monotonic);
    const assumeSynced = config.clock.assumeSynced ?? this.options.port.backend === "mock";
    if (assumeSynced) log.warn("the clock is taken as synchronised without asking (mock GPIO or clock.assumeSynced)");
    this.clock = await TrustedClock.open({
      store: {
        load: () => store.get<number>("meta", META.lastTrustedTime),
        save: (ms) => store.put("meta", META.lastTrustedTime, ms),
      },
      log,
      checkSynced: this.options.checkClockSynced ?? (() => isClockSynced({ assumeSynced })),
      now: this.now,
    });
    this.lifecycle.setClockSynced(this.clock.synced);
    if (!this.clock.synced) log.warn("the clock is not synchronised: Codes are refused until it is (see README, Troubleshooting)");
    this.stopClockWatch = this.clock.watch((synced) => {
      log.info(synced ? "clock synchronised" : "clock no longer synchronised");
      this.lifecycle.setClockSynced(synced);
    });
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
        factoryReset: () => {
          this.factoryReset("button").catch((error: unknown) => {
            // The door is locked already; a reset that failed halfway is finished at the next start.
            log.error("factory reset failed", { error: error instanceof Error ? error.message : String(error) });
            this.lifecycle.enter("error");
          });
        },
      },
      config.button,
    );
    if (this.button.ignoringUntilReleased) {
      log.warn("the reset button reads as pressed at start: ignored until released (missing pull-up? see README)", {
        pin: config.button.pin,
      });
    }
    const claimed = (await store.get<boolean>("meta", META.claimed)) === true;
    const interrupted = (await store.get<boolean>("meta", META.resetting)) === true;
    if (keyLost) {
      await this.events.record({ type: "factory_reset", source: "system" });
      await this.becomeUnclaimed();
    } else if (interrupted) {
      // The secrets in the store can no longer be read: finish what the reset began.
      log.error("a factory reset was interrupted (power cut?): finishing it");
      await this.wipe("system");
    } else if (!claimed) await this.becomeUnclaimed();
    else {
      // A crash right after a claim can leave the file behind.
      await removeSetupSecretFile(config.stateDir);
      this.lifecycle.enter("activated");
    }
    if (this.options.mqtt !== false) {
      this.transport = new MqttTransport({
        config: config.mqtt,
        iqId: this.iqId,
        stateDir: config.stateDir,
        log,
        audit: this.events,
        sign: (kind, body) => JSON.stringify(this.sign(kind, body)),
        onRequest: this.requests.sink,
        onConnectionChange: (connected) => this.lifecycle.setBrokerConnected(connected),
        onSessionContested: (contested) => this.lifecycle.setBrokerContested(contested),
      });
      await this.transport.start();
      this.publishState();
    }
    if (this.options.ble !== false && config.ble.enabled !== false) {
      // Loaded only when BLE is on: D-Bus and its XML parser add a third to the hub's start-up.
      const { BleTransport } = await import("./transports/ble/ble.js");
      this.bleTransport = new BleTransport({
        config: config.ble,
        iqId: this.iqId,
        log,
        maxRequestBytes: REQUESTS.maxBytes,
        state: () => this.lifecycle.state,
        onRequest: this.requests.sink,
      });
      // Not awaited: the hub is ready without BLE (a hung system bus must not hold up READY), and
      // BLE comes up whenever the bus, bluetoothd and the adapter are. start() never throws.
      void this.bleTransport.start();
    }
  }

  /** The BLE transport, if BLE is enabled. */
  get ble(): BleTransport | undefined {
    return this.bleTransport;
  }

  clockSynced(): boolean {
    return this.clock?.synced ?? false;
  }

  /** Whether the device key is wrapped with the board's OTP key (see device-key.ts). */
  get keyProtection(): KeyProtection {
    return keyProtection(this.otp);
  }

  status(): StatusResult {
    return {
      iqId: this.iqId,
      version: VERSION,
      phase: this.lifecycle.phase,
      state: this.lifecycle.state,
      claimed: this.lifecycle.phase === "activated",
      claimWindowOpen: this.lifecycle.isClaimWindowOpen(),
      clockSynced: this.clock?.synced ?? null,
      keyProtection: this.keyProtection,
      locks: [...this.locks].map(([name, relay]) => ({
        name,
        unlocked: relay.isUnlocked,
        officeMode: this.access.isOfficeMode(name),
      })),
    };
  }

  settings(): Record<string, unknown> {
    return {};
  }

  setupSecret(): Promise<string | undefined> {
    return readSetupSecret(this.run.secrets);
  }

  /**
   * The claim as a line to paste where the app runs: with the broker (the hub's, without its
   * credentials: each party has its own), and placeholders a shell takes as they are (no `<…>`).
   * The secret is filled in only where it may be shown (the simulator); the log names the file.
   */
  claimCommand(secret = "SECRET"): string {
    const { mqtt } = this.options.config;
    let broker;
    if (mqtt.url === undefined) {
      const host = mqtt.embeddedHost.includes(":") ? `[${mqtt.embeddedHost}]` : mqtt.embeddedHost;
      broker = `mqtt://${host}:${mqtt.embeddedPort}`;
    } else {
      const url = new URL(mqtt.url);
      url.username = "";
      url.password = "";
      broker = url.href.replace(/\/$/, "");
    }
    return `npx iq --broker ${broker} --profile PROFILE claim --iq ${this.iqId} --secret ${secret} --name NAME`;
  }

  claimOps(): StoreOp[] {
    return [setupSecretDelOp(this.run.secrets), { type: "put", in: "meta", key: META.claimed, value: true }];
  }

  async afterClaim(): Promise<void> {
    await removeSetupSecretFile(this.options.config.stateDir);
    this.lifecycle.enter("activated");
  }


  /** Short press: one status line in the log; an unclaimed IQ also opens its claim window. */
  showStatus(): void {
    const { log, config } = this.options;
    if (this.lifecycle.phase === "unclaimed") this.lifecycle.openClaimWindow(config.claimWindowMs);
    log.info("status", {
      iqId: this.running?.iqId,
      state: this.lifecycle.state,
      led: describePattern(LED_TABLE[this.lifecycle.state]),
      ...Object.fromEntries([...this.locks].map(([name, relay]) => [name, relay.isUnlocked ? "unlocked" : "locked"])),
    });
  }

  /**
   * Wipes every secret and user and returns the IQ to "unclaimed" (story 8). The door locks at
   * once; the wipe waits its turn behind a request being handled, so nothing that request does
   * can land in the fresh store or open the door after the reset.
   */
  factoryReset(source: "button" | "system"): Promise<void> {
    if (this.resetting !== undefined) return this.resetting;
    this.lifecycle.enter("resetting");
    this.access.lockAll();
    this.resetting = this.requests.exclusive(() => this.wipe(source)).finally(() => (this.resetting = undefined));
    return this.resetting;
  }

  /**
   * The reset itself. A synced marker goes first and the device key next: if power fails
   * halfway, the next start finds the marker and finishes, and whatever is left in the store can
   * no longer be read anyway.
   */
  private async wipe(source: "button" | "system"): Promise<void> {
    const { log } = this.options;
    const { store, iqId, secrets } = this.run;
    log.warn("factory reset: wiping keys, PINs, users and activations");
    this.lifecycle.enter("resetting");
    this.access.lockAll();
    this.handler?.pairing.clear();
    this.handler?.challenges.forget();
    await store.put("meta", META.resetting, true);
    secrets.close();
    await destroyDeviceKey(this.deviceKeyFile);
    await store.wipeForReset();
    const deviceKey = await ensureDeviceKey(this.deviceKeyFile, this.otp);
    await this.protectStore(store, deviceKey);
    await store.put("meta", META.iqId, iqId);
    this.running = { ...this.run, ...(await this.openKeyed(store, iqId, deviceKey)) };
    await this.events.record({ type: "factory_reset", source });
    await this.becomeUnclaimed();
    log.info("factory reset done: the IQ is unclaimed, claim window open");
  }

  private async becomeUnclaimed(): Promise<void> {
    const { config, log } = this.options;
    await ensureSetupSecret(this.run.secrets, config.stateDir);
    log.info("unclaimed: claim it with the setup secret (SECRET below) from setupSecretFile", {
      iqId: this.iqId,
      setupSecretFile: setupSecretFile(config.stateDir),
      claim: this.claimCommand(),
    });
    this.lifecycle.enter("unclaimed");
    this.lifecycle.openClaimWindow(config.claimWindowMs);
  }

  /**
   * The device key found missing on a store that has records: they can be neither read nor
   * checked, so they go, as in a factory reset (the audit trail stays). Returns the IQ's id.
   */
  private async forgetUnreadable(store: Store): Promise<string | undefined> {
    this.options.log.error(`the device key ${this.deviceKeyFile} is missing, so no secret can be read: resetting the IQ`);
    const iqId = await store.get<string>("meta", META.iqId);
    await store.wipeForReset();
    return iqId;
  }

  /** Checks the store's seal under the device key before anything in it is believed. */
  private async protectStore(store: Store, deviceKey: Uint8Array): Promise<void> {
    const startedAt = performance.now();
    const { records } = await store.protect(deviceKey);
    this.options.log.info("store integrity checked", { records, ms: Math.round(performance.now() - startedAt) });
  }

  /** `deviceKey` is zeroed: the parts keep keys derived from it. */
  private async openKeyed(store: Store, iqId: string, deviceKey: Uint8Array): Promise<Keyed> {
    const secrets = new SecretStore(store, deviceKey);
    deviceKey.fill(0);
    const keys = await ensureIqKeys(secrets);
    return { secrets, users: new Users(store, secrets, this.now), keys, sign: createSigner(keys.identitySecret, iqId) };
  }

  /** The configured id, else the one generated at first start and kept in the store (or `previous`, from before a wipe). */
  private async ensureIqId(store: Store, previous?: string): Promise<string> {
    const stored = await store.get<string>("meta", META.iqId);
    const id = this.options.config.iqId ?? stored ?? previous ?? `iq-${randomBytes(5).toString("hex")}`;
    if (id !== stored) await store.put("meta", META.iqId, id);
    return id;
  }

  /**
   * Publishes the retained state once the current turn is over: an opening changes it several
   * times in one request (opening, the LED), and signing and sending each would hold up the
   * request's answer. Changes within one turn make one publication of the latest state.
   */
  private publishState(): void {
    if (this.statePending) return;
    this.statePending = true;
    setImmediate(() => {
      this.statePending = false;
      if (this.transport !== undefined && this.running !== undefined) this.transport.publishState(this.status());
    });
  }

  /**
   * Safe state for shutdown or a fatal error: every relay locked, LED off, pins released.
   * Synchronous, so it can run from an exit handler.
   */
  releaseHardware(): void {
    if (this.released) return;
    this.released = true;
    this.detachButton?.();
    this.stopClockWatch?.();
    this.lifecycle.close();
    for (const relay of this.locks.values()) relay.close();
    this.led.close();
    this.button.close();
  }

  /** Hardware to its safe state first, then the broker connection, then the store. */
  async close(): Promise<void> {
    this.releaseHardware();
    await this.bleTransport?.stop();
    await this.transport?.stop();
    this.running?.secrets.close();
    await this.running?.store.close();
  }
}
