/**
 * The hub's BLE transport: a GATT peripheral through BlueZ on the D-Bus system bus (dbus-next).
 * It exports the GATT application and advertisement of gatt-objects.ts, registers both with the
 * configured adapter, hands each request a central writes (reassembled by centrals.ts) to the
 * request handler, and notifies the answer framed for that central's MTU. Like the MQTT
 * transport it moves bytes only: the handler decides, and every answer is signed or sealed.
 *
 * BLE is never needed for the hub to run: with no system bus, no bluetoothd, no adapter or an
 * unpowered (rfkill-blocked) one, it says so once and keeps looking; when bluetoothd restarts
 * (its name changes owner on the bus) it registers again by itself.
 */
import dbus from "dbus-next";
import { frame } from "../../../provisioning/protocol/ble-framing.js";
import { PROTOCOL_VERSION } from "../../../provisioning/protocol/messages.js";
import type { BleInfo } from "../../../provisioning/protocol/ble.js";
import type { HubConfig } from "../../config.js";
import type { Logger } from "../../log.js";
import type { RequestSink } from "../transport.js";
import { Centrals, type Central } from "./centrals.js";
import { gattApplication, PATHS, type GattApplication } from "./gatt-objects.js";

export type BleConfig = HubConfig["ble"];

export interface BleTransportOptions {
  config: BleConfig;
  iqId: string;
  log: Logger;
  /** The largest request the handler accepts. */
  maxRequestBytes: number;
  /** What the info characteristic shows (read on demand). */
  state: () => string;
  onRequest: RequestSink;
}

const BLUEZ = "org.bluez";
/** Unregistering on stop waits this long at most: a hung bluetoothd must not hold up a shutdown. */
const STOP_WAIT_MS = 1_000;

/** Why BLE is not up, each logged once when it starts to hold. */
type Down = "no_bluez" | "no_adapter" | "unpowered" | "refused";

export class BleTransport {
  private bus: dbus.MessageBus | undefined;
  private readonly app: GattApplication;
  private readonly centrals: Centrals;
  private readonly log: Logger;
  private registeredOn: string | undefined;
  private down: Down | undefined;
  private retry: NodeJS.Timeout | undefined;
  private attempt: Promise<void> | undefined;
  /** BlueZ calls StartNotify when the first central subscribes to answers, StopNotify when the last leaves. */
  private notifying = false;
  private stopped = false;

  constructor(private readonly options: BleTransportOptions) {
    this.log = options.log.child({ transport: "ble" });
    this.centrals = new Centrals({
      maxBytes: options.maxRequestBytes,
      timeoutMs: options.config.requestTimeoutMs,
      log: this.log,
      onMessage: (message, central) => void this.handle(message, central),
    });
    this.app = gattApplication({
      localName: options.config.name ?? `IQ ${options.iqId.slice(-4)}`,
      requests: { write: (value, busOptions) => this.centrals.write(value, busOptions) },
      responses: { notifying: (on) => (this.notifying = on) },
      info: { read: () => Buffer.from(JSON.stringify(this.info())) },
      onAdvertisementReleased: () => {
        this.log.warn("BlueZ released the advertisement (adapter gone?): registering again when it can");
        this.lost();
        this.scheduleRetry();
      },
    });
  }

  /** Registered with BlueZ and advertising. */
  get up(): boolean {
    return this.registeredOn !== undefined;
  }

  /** Requests being reassembled (nothing is kept after an error or a timeout). */
  get pendingRequests(): number {
    return this.centrals.pending;
  }

  /** Connects to the system bus and starts looking for bluetoothd; never fails the hub. */
  async start(): Promise<void> {
    try {
      await this.connect();
    } catch (error) {
      // A stop while connecting ends the bus under the calls: nothing to report then.
      if (!this.stopped) this.log.warn("BLE could not start: the hub runs on without it", { error });
    }
  }

  private async connect(): Promise<void> {
    const address = process.env.DBUS_SYSTEM_BUS_ADDRESS ?? "unix:path=/var/run/dbus/system_bus_socket";
    let bus: dbus.MessageBus;
    try {
      bus = await connectSystemBus();
    } catch (error) {
      this.log[this.options.config.enabled === true ? "warn" : "info"]("no D-Bus system bus: BLE is off (the hub runs on without it)", { address, error });
      return;
    }
    if (this.stopped) return bus.disconnect();
    this.bus = bus;
    bus.on("error", (error) => this.log.warn("D-Bus connection failed: BLE is off until the hub restarts", { error }));
    this.app.exportOn(bus);
    const daemon = (await bus.getProxyObject("org.freedesktop.DBus", "/org/freedesktop/DBus")).getInterface("org.freedesktop.DBus");
    daemon.on("NameOwnerChanged", (name: string, _old: string, owner: string) => {
      if (name === BLUEZ) this.bluezChanged(owner);
    });
    if ((await call(daemon, "NameHasOwner", BLUEZ)) === true) this.tryRegister();
    else this.isDown("no_bluez", "bluetoothd is not on the system bus (not running?): BLE starts when it is");
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.retry);
    this.centrals.clear();
    const bus = this.bus;
    this.bus = undefined;
    if (bus === undefined) return;
    if (this.registeredOn !== undefined) await withinMs(this.unregister(bus, this.registeredOn), STOP_WAIT_MS);
    bus.disconnect();
  }

  private info(): BleInfo {
    return { iqId: this.options.iqId, state: this.options.state(), v: PROTOCOL_VERSION };
  }

  private async handle(message: Uint8Array, central: Central): Promise<void> {
    let response;
    try {
      response = await this.options.onRequest({ payload: message, via: "ble" });
    } catch (error) {
      this.log.error("request handler failed; the request gets no response", { error });
      return;
    }
    if (response === undefined || this.registeredOn === undefined) return;
    if (!this.notifying) {
      this.log.debug("answer dropped: no central has notifications on", { device: central.device });
      return;
    }
    // BlueZ notifies every subscribed central, not only the one that asked: each app keeps the
    // answers with its own request id, which are signed or sealed, so the others learn nothing they
    // could not read off the broker. One answer's chunks go out together, never interleaved.
    try {
      for (const chunk of frame(response.payload, central.mtu)) this.app.responses.notify(chunk);
    } catch (error) {
      this.log.warn("answer not notified", { device: central.device, error });
    }
  }

  private bluezChanged(owner: string): void {
    if (owner === "") {
      const was = this.registeredOn !== undefined;
      this.lost();
      clearTimeout(this.retry);
      this.isDown("no_bluez", was ? "bluetoothd left the system bus (stopped or restarting): BLE is down until it is back" : "bluetoothd left the system bus");
      return;
    }
    this.log.info("bluetoothd is on the system bus: registering the GATT application");
    this.down = undefined;
    this.tryRegister();
  }

  private lost(): void {
    this.registeredOn = undefined;
    this.notifying = false;
    this.centrals.clear();
  }

  /** One attempt at a time; a failed one is tried again after `ble.retryMs`. */
  private tryRegister(): void {
    clearTimeout(this.retry);
    this.attempt ??= this.register().finally(() => (this.attempt = undefined));
  }

  private scheduleRetry(): void {
    if (this.stopped) return;
    clearTimeout(this.retry);
    this.retry = setTimeout(() => this.tryRegister(), this.options.config.retryMs);
    this.retry.unref();
  }

  private async register(): Promise<void> {
    const bus = this.bus;
    if (bus === undefined || this.registeredOn !== undefined) return;
    const name = this.options.config.adapter;
    const path = `/org/bluez/${name}`;
    try {
      const adapter = await bus.getProxyObject(BLUEZ, path);
      if (adapter.interfaces["org.bluez.Adapter1"] === undefined) {
        this.isDown("no_adapter", `no Bluetooth adapter ${name}: BLE starts when one appears (ble.adapter names another)`);
        return this.scheduleRetry();
      }
      const props = adapter.getInterface("org.freedesktop.DBus.Properties");
      const powered = ((await call(props, "Get", "org.bluez.Adapter1", "Powered")) as { value: unknown }).value === true;
      if (!powered || adapter.interfaces["org.bluez.GattManager1"] === undefined) {
        this.isDown("unpowered", `Bluetooth adapter ${name} is off or rfkill-blocked (Powered is false): try 'rfkill unblock bluetooth' and 'bluetoothctl power on'; BLE starts when it is on`);
        return this.scheduleRetry();
      }
      // Already there: BlueZ kept one of the two when it released the other (an adapter that came back).
      await call(adapter.getInterface("org.bluez.GattManager1"), "RegisterApplication", PATHS.root, {}).catch(unlessAlreadyThere);
      await call(adapter.getInterface("org.bluez.LEAdvertisingManager1"), "RegisterAdvertisement", PATHS.advertisement, {}).catch(unlessAlreadyThere);
      if (this.stopped) return;
      this.registeredOn = path;
      this.down = undefined;
      this.log.info("BLE up: GATT application registered and advertising", { adapter: name, name: this.app.advertisement.LocalName });
    } catch (error) {
      if (this.stopped || this.down === "no_bluez") return;
      const denied = (error as { type?: string }).type === "org.freedesktop.DBus.Error.AccessDenied";
      this.isDown(
        "refused",
        denied
          ? "the D-Bus policy does not let the hub talk to bluetoothd: install systemd/iq-hub-dbus.conf (README, Bluetooth on the Pi)"
          : "BlueZ refused the GATT application or advertisement: trying again",
        { error: (error as { text?: string }).text ?? (error as Error).message },
      );
      this.scheduleRetry();
    }
  }

  private async unregister(bus: dbus.MessageBus, path: string): Promise<void> {
    try {
      const adapter = await bus.getProxyObject(BLUEZ, path);
      await call(adapter.getInterface("org.bluez.LEAdvertisingManager1"), "UnregisterAdvertisement", PATHS.advertisement);
      await call(adapter.getInterface("org.bluez.GattManager1"), "UnregisterApplication", PATHS.root);
    } catch (error) {
      this.log.debug("could not unregister from BlueZ", { error });
    }
  }

  /** Logs why BLE is down once, when the reason changes: a retry every few seconds stays quiet. */
  private isDown(why: Down, message: string, fields: Record<string, unknown> = {}): void {
    if (this.down === why) return;
    this.down = why;
    this.log[why === "refused" || this.options.config.enabled === true ? "warn" : "info"](message, { adapter: this.options.config.adapter, ...fields });
  }
}

/** The system bus ($DBUS_SYSTEM_BUS_ADDRESS, else the standard socket), once it has said hello. */
function connectSystemBus(): Promise<dbus.MessageBus> {
  const bus = dbus.systemBus();
  return new Promise((resolve, reject) => {
    const failed = (error: unknown): void => {
      bus.disconnect();
      reject(error instanceof Error ? error : new Error(String(error)));
    };
    bus.once("error", failed);
    bus.once("connect", () => {
      bus.off("error", failed);
      resolve(bus);
    });
  });
}

function withinMs(task: Promise<void>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([task, new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))]).finally(() => clearTimeout(timer));
}

/** A method of a D-Bus proxy interface (dbus-next builds them from introspection, untyped). */
function call(iface: dbus.ClientInterface, member: string, ...args: unknown[]): Promise<unknown> {
  const fn = iface[member];
  if (fn === undefined) return Promise.reject(new Error(`${member} is not a method of this D-Bus interface`));
  return fn.apply(iface, args) as Promise<unknown>;
}

function unlessAlreadyThere(error: unknown): void {
  if ((error as { type?: string }).type !== "org.bluez.Error.AlreadyExists") throw error;
}
