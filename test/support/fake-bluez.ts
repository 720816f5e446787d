/**
 * A fake bluetoothd for BLE tests without a radio: it owns `org.bluez` on a private system bus
 * (dbus-daemon.ts) and plays both ends of the air.
 *
 * - The hub's side (the adapter it registers with): Adapter1 with Powered, GattManager1 and
 *   LEAdvertisingManager1. Registering reads the application's tree with GetManagedObjects and
 *   the advertisement's properties, as BlueZ does, with plain method calls (no introspection:
 *   bluez.conf lets root call only the interfaces it needs).
 * - A central's side (one adapter each, `hci1`, `hci2`…, each with its own link MTU): what node-ble
 *   uses. StartDiscovery shows the advertising hub as a Device1 (Address, Name, UUIDs); Connect
 *   mirrors the hub's GATT service under the device (GattService1, GattCharacteristic1 with MTU)
 *   and sets ServicesResolved. A central's ReadValue / WriteValue become the same call on the hub's
 *   characteristic with the options BlueZ adds (`device`: the central as the hub sees it, `mtu`,
 *   `type`, `link`); StartNotify subscribes; each change of the hub's Value is passed to every
 *   subscribed central, cut to its MTU − 3 as the air would.
 *
 * `stop()` leaves the bus like a bluetoothd that stops; start another for a restart. `setPowered`
 * plays rfkill, `addAdapter` and `removeAdapter` a dongle plugged in and out.
 */
import dbus from "dbus-next";

const { Interface } = dbus.interface;
type Variant = InstanceType<typeof dbus.Variant>;
const BusError = dbus.DBusError;

export interface FakeAdapter {
  name: string;
  address: string;
  powered?: boolean;
  /** The MTU of this central's link to the hub. */
  mtu?: number;
}

interface Registered {
  owner: string;
  path: string;
}

interface HubCharacteristic {
  path: string;
  uuid: string;
  flags: string[];
}

const devicePath = (adapter: string, address: string) => `/org/bluez/${adapter}/dev_${address.replaceAll(":", "_")}`;

class AgentManager extends Interface {
  RegisterAgent(): void {}
  UnregisterAgent(): void {}
  RequestDefaultAgent(): void {}
}
AgentManager.configureMembers({
  methods: { RegisterAgent: { inSignature: "os" }, UnregisterAgent: { inSignature: "o" }, RequestDefaultAgent: { inSignature: "o" } },
});

class Adapter extends Interface {
  discovering = false;
  constructor(
    readonly spec: Required<FakeAdapter>,
    private readonly bluez: FakeBluez,
  ) {
    super("org.bluez.Adapter1");
  }
  get Address(): string {
    return this.spec.address;
  }
  get Name(): string {
    return this.spec.name;
  }
  get Alias(): string {
    return this.spec.name;
  }
  get Powered(): boolean {
    return this.spec.powered;
  }
  set Powered(on: boolean) {
    this.bluez.setPowered(this.spec.name, on);
  }
  get Discovering(): boolean {
    return this.discovering;
  }
  SetDiscoveryFilter(): void {}
  StartDiscovery(): void {
    if (!this.spec.powered) throw new BusError("org.bluez.Error.NotReady", "Resource Not Ready");
    this.discovering = true;
    Interface.emitPropertiesChanged(this, { Discovering: true }, []);
    this.bluez.discover(this);
  }
  StopDiscovery(): void {
    this.discovering = false;
    Interface.emitPropertiesChanged(this, { Discovering: false }, []);
  }
}
Adapter.configureMembers({
  properties: {
    Address: { signature: "s", access: "read" },
    Name: { signature: "s", access: "read" },
    Alias: { signature: "s", access: "read" },
    Powered: { signature: "b", access: "readwrite" },
    Discovering: { signature: "b", access: "read" },
  },
  methods: { SetDiscoveryFilter: { inSignature: "a{sv}" }, StartDiscovery: {}, StopDiscovery: {} },
});

class GattManager extends Interface {
  constructor(
    private readonly adapter: Adapter,
    private readonly bluez: FakeBluez,
  ) {
    super("org.bluez.GattManager1");
  }
  RegisterApplication(path: string): Promise<void> {
    return this.bluez.registerApplication(this.adapter, this.bluez.caller, path);
  }
  UnregisterApplication(): void {
    this.bluez.app = undefined;
  }
}
GattManager.configureMembers({
  methods: { RegisterApplication: { inSignature: "oa{sv}" }, UnregisterApplication: { inSignature: "o" } },
});

class AdvertisingManager extends Interface {
  constructor(
    private readonly adapter: Adapter,
    private readonly bluez: FakeBluez,
  ) {
    super("org.bluez.LEAdvertisingManager1");
  }
  RegisterAdvertisement(path: string): Promise<void> {
    return this.bluez.registerAdvertisement(this.adapter, this.bluez.caller, path);
  }
  UnregisterAdvertisement(): void {
    this.bluez.advertisement = undefined;
  }
}
AdvertisingManager.configureMembers({
  methods: { RegisterAdvertisement: { inSignature: "oa{sv}" }, UnregisterAdvertisement: { inSignature: "o" } },
});

/** The hub as one central sees it. */
class Device extends Interface {
  connected = false;
  resolved = false;
  readonly mirrors = new Map<string, CentralCharacteristic>();
  /** The GATT objects exported under it once connected. */
  readonly exportedPaths: string[] = [];
  constructor(
    readonly central: Adapter,
    readonly path: string,
    private readonly hubAddress: string,
    private readonly name: string,
    private readonly uuids: string[],
    private readonly bluez: FakeBluez,
  ) {
    super("org.bluez.Device1");
  }
  get Address(): string {
    return this.hubAddress;
  }
  get AddressType(): string {
    return "public";
  }
  get Name(): string {
    return this.name;
  }
  get Alias(): string {
    return this.name;
  }
  get UUIDs(): string[] {
    return this.uuids;
  }
  get Paired(): boolean {
    return false;
  }
  get Connected(): boolean {
    return this.connected;
  }
  get ServicesResolved(): boolean {
    return this.resolved;
  }
  get Adapter(): string {
    return `/org/bluez/${this.central.spec.name}`;
  }
  Connect(): Promise<void> {
    return this.bluez.connect(this);
  }
  Disconnect(): Promise<void> {
    return this.bluez.disconnect(this);
  }
}
Device.configureMembers({
  properties: {
    Address: { signature: "s", access: "read" },
    AddressType: { signature: "s", access: "read" },
    Name: { signature: "s", access: "read" },
    Alias: { signature: "s", access: "read" },
    UUIDs: { signature: "as", access: "read" },
    Paired: { signature: "b", access: "read" },
    Connected: { signature: "b", access: "read" },
    ServicesResolved: { signature: "b", access: "read" },
    Adapter: { signature: "o", access: "read" },
  },
  methods: { Connect: {}, Disconnect: {} },
});

class CentralService extends Interface {
  constructor(
    private readonly uuid: string,
    private readonly device: string,
  ) {
    super("org.bluez.GattService1");
  }
  get UUID(): string {
    return this.uuid;
  }
  get Primary(): boolean {
    return true;
  }
  get Device(): string {
    return this.device;
  }
}
CentralService.configureMembers({
  properties: { UUID: { signature: "s", access: "read" }, Primary: { signature: "b", access: "read" }, Device: { signature: "o", access: "read" } },
});

/** A hub characteristic as one central sees it: each call goes on to the hub. */
class CentralCharacteristic extends Interface {
  value: Buffer = Buffer.alloc(0);
  notifying = false;
  constructor(
    readonly hub: HubCharacteristic,
    private readonly servicePath: string,
    private readonly device: Device,
    private readonly bluez: FakeBluez,
  ) {
    super("org.bluez.GattCharacteristic1");
  }
  get UUID(): string {
    return this.hub.uuid;
  }
  get Service(): string {
    return this.servicePath;
  }
  get Flags(): string[] {
    return this.hub.flags;
  }
  get Value(): Buffer {
    return this.value;
  }
  get Notifying(): boolean {
    return this.notifying;
  }
  get MTU(): number {
    return this.device.central.spec.mtu;
  }
  async ReadValue(options: Record<string, Variant>): Promise<Buffer> {
    const offset = Number(options.offset?.value ?? 0);
    const [value] = await this.bluez.callHub(this.hub.path, "ReadValue", "a{sv}", [this.bluez.hubOptions(this.device, { offset: new dbus.Variant("q", offset) })]);
    return value as Buffer;
  }
  async WriteValue(value: Buffer, options: Record<string, Variant>): Promise<void> {
    const type = (options.type?.value as string | undefined) ?? "request";
    this.bluez.writes.push({ adapter: this.device.central.spec.name, bytes: value.length });
    await this.bluez.callHub(this.hub.path, "WriteValue", "aya{sv}", [
      value,
      this.bluez.hubOptions(this.device, { offset: new dbus.Variant("q", 0), type: new dbus.Variant("s", type), link: new dbus.Variant("s", "LE") }),
    ]);
  }
  async StartNotify(): Promise<void> {
    if (this.notifying) return;
    this.notifying = true;
    await this.bluez.subscriptionChanged(this.hub.path, 1);
    Interface.emitPropertiesChanged(this, { Notifying: true }, []);
  }
  async StopNotify(): Promise<void> {
    if (!this.notifying) return;
    this.notifying = false;
    await this.bluez.subscriptionChanged(this.hub.path, -1);
  }
  /** A notification from the hub, cut to what this central's link carries. */
  deliver(value: Buffer): void {
    this.value = value.subarray(0, this.device.central.spec.mtu - 3);
    Interface.emitPropertiesChanged(this, { Value: this.value }, []);
  }
}
CentralCharacteristic.configureMembers({
  properties: {
    UUID: { signature: "s", access: "read" },
    Service: { signature: "o", access: "read" },
    Flags: { signature: "as", access: "read" },
    Value: { signature: "ay", access: "read" },
    Notifying: { signature: "b", access: "read" },
    MTU: { signature: "q", access: "read" },
  },
  methods: {
    ReadValue: { inSignature: "a{sv}", outSignature: "ay" },
    WriteValue: { inSignature: "aya{sv}" },
    StartNotify: {},
    StopNotify: {},
  },
});

export class FakeBluez {
  /** The unique name of the client whose method call is being handled (set before dispatch). */
  caller = "";
  app: (Registered & { service: string; characteristics: HubCharacteristic[] }) | undefined;
  advertisement: (Registered & { name: string; uuids: string[] }) | undefined;
  /** The adapter the hub registered its application with. */
  hubAdapter: Adapter | undefined;
  readonly adapters = new Map<string, Adapter>();
  /** The methods called on the fake (`interface.member`), in order, for assertions. */
  readonly calls: string[] = [];
  /** Every value a central wrote to the hub, by the central's adapter. */
  readonly writes: { adapter: string; bytes: number }[] = [];
  private readonly devices = new Map<string, Device>();
  /** Centrals subscribed to each hub characteristic. */
  private readonly subscriptions = new Map<string, number>();

  private constructor(private readonly bus: dbus.MessageBus) {}

  /** Exports the adapters, then takes the name `org.bluez` (so the hub sees it appear ready). */
  static async start(address: string, specs: FakeAdapter[]): Promise<FakeBluez> {
    const bus = dbus.sessionBus({ busAddress: address });
    await new Promise<void>((resolve, reject) => {
      bus.once("connect", resolve);
      // Kept: the connection's end when the fake stops must not become an unhandled 'error'.
      bus.on("error", reject);
    });
    const bluez = new FakeBluez(bus);
    bus.addMethodHandler((msg: dbus.Message) => {
      bluez.caller = msg.sender;
      bluez.calls.push(`${msg.interface}.${msg.member}`);
      return false;
    });
    bus.on("message", (msg: dbus.Message) => bluez.onSignal(msg));
    bus.export("/org/bluez", new AgentManager("org.bluez.AgentManager1"));
    for (const spec of specs) bluez.addAdapter(spec);
    await bluez.callDaemon("AddMatch", "s", ["type='signal',interface='org.freedesktop.DBus.Properties',member='PropertiesChanged'"]);
    await bluez.callDaemon("AddMatch", "s", ["type='signal',sender='org.freedesktop.DBus',member='NameOwnerChanged'"]);
    await bus.requestName("org.bluez", 0);
    return bluez;
  }

  /** An adapter appears (plugged in, or specs given at start). */
  addAdapter(spec: FakeAdapter): void {
    const adapter = new Adapter({ powered: true, mtu: 23, ...spec }, this);
    this.adapters.set(spec.name, adapter);
    const path = `/org/bluez/${spec.name}`;
    for (const iface of [adapter, new GattManager(adapter, this), new AdvertisingManager(adapter, this)]) this.bus.export(path, iface);
  }

  /** An adapter goes away (unplugged): BlueZ releases the advertisement on it and forgets the application. */
  async removeAdapter(name: string): Promise<void> {
    const adv = this.advertisement;
    if (this.hubAdapter?.spec.name === name) {
      this.app = undefined;
      this.advertisement = undefined;
      this.hubAdapter = undefined;
      this.dropLinks();
      if (adv !== undefined) await this.callPeer(adv.owner, adv.path, "org.bluez.LEAdvertisement1", "Release", "", []);
    }
    this.unexportAll(`/org/bluez/${name}`);
    this.adapters.delete(name);
  }

  /** Leaves the bus, as a bluetoothd that stops or crashes. */
  stop(): void {
    this.bus.disconnect();
  }

  /** Powers an adapter on or off (off: as rfkill block does); the hub's registrations stay. */
  setPowered(name: string, on: boolean): void {
    const adapter = this.adapters.get(name);
    if (adapter === undefined) throw new Error(`no adapter ${name}`);
    adapter.spec.powered = on;
    Interface.emitPropertiesChanged(adapter, { Powered: on }, []);
  }

  async registerApplication(adapter: Adapter, owner: string, path: string): Promise<void> {
    if (this.app !== undefined) throw new BusError("org.bluez.Error.AlreadyExists", "Already Exists");
    const [managed] = (await this.callPeer(owner, path, "org.freedesktop.DBus.ObjectManager", "GetManagedObjects", "", [])) as [
      Record<string, Record<string, Record<string, Variant>>>,
    ];
    let service: string | undefined;
    const characteristics: HubCharacteristic[] = [];
    for (const [objectPath, interfaces] of Object.entries(managed)) {
      const s = interfaces["org.bluez.GattService1"];
      if (s !== undefined) service = String(s.UUID?.value);
      const c = interfaces["org.bluez.GattCharacteristic1"];
      if (c !== undefined) characteristics.push({ path: objectPath, uuid: String(c.UUID?.value), flags: c.Flags?.value as string[] });
    }
    if (service === undefined || characteristics.length === 0) throw new BusError("org.bluez.Error.InvalidArguments", "no service");
    this.app = { owner, path, service, characteristics };
    this.hubAdapter = adapter;
  }

  async registerAdvertisement(adapter: Adapter, owner: string, path: string): Promise<void> {
    if (!adapter.spec.powered) throw new BusError("org.bluez.Error.Failed", "Failed to register advertisement");
    if (this.advertisement !== undefined) throw new BusError("org.bluez.Error.AlreadyExists", "Already Exists");
    const [props] = (await this.callPeer(owner, path, "org.freedesktop.DBus.Properties", "GetAll", "s", ["org.bluez.LEAdvertisement1"])) as [Record<string, Variant>];
    this.advertisement = { owner, path, name: (props.LocalName?.value as string | undefined) ?? "", uuids: (props.ServiceUUIDs?.value as string[] | undefined) ?? [] };
    for (const adapter of this.adapters.values()) if (adapter.discovering) this.discover(adapter);
  }

  /** A discovering central sees the hub while it advertises. */
  discover(central: Adapter): void {
    const adv = this.advertisement;
    const hub = this.hubAdapter;
    if (adv === undefined || hub === undefined || central === hub || !hub.spec.powered) return;
    const path = devicePath(central.spec.name, hub.spec.address);
    if (this.devices.has(path)) return;
    const device = new Device(central, path, hub.spec.address, adv.name, adv.uuids, this);
    this.devices.set(path, device);
    this.bus.export(path, device);
  }

  /** Every central loses its link to the hub, and the hub's device objects go. */
  private dropLinks(): void {
    for (const [path, device] of this.devices) {
      for (const child of device.exportedPaths) this.unexportAll(child);
      this.unexportAll(path);
    }
    this.devices.clear();
    this.subscriptions.clear();
  }

  connect(device: Device): Promise<void> {
    const app = this.app;
    if (app === undefined || this.hubAdapter?.spec.powered !== true) return Promise.reject(new BusError("org.bluez.Error.Failed", "le-connection-abort-by-local"));
    if (device.connected) return Promise.resolve();
    device.connected = true;
    Interface.emitPropertiesChanged(device, { Connected: true }, []);
    const servicePath = `${device.path}/service0001`;
    this.bus.export(servicePath, new CentralService(app.service, device.path));
    device.exportedPaths.push(servicePath);
    app.characteristics.forEach((hub, i) => {
      const mirror = new CentralCharacteristic(hub, servicePath, device, this);
      device.mirrors.set(hub.path, mirror);
      const path = `${servicePath}/char${String(i + 2).padStart(4, "0")}`;
      this.bus.export(path, mirror);
      device.exportedPaths.push(path);
    });
    device.resolved = true;
    Interface.emitPropertiesChanged(device, { ServicesResolved: true }, []);
    return Promise.resolve();
  }

  async disconnect(device: Device): Promise<void> {
    for (const mirror of device.mirrors.values()) await mirror.StopNotify();
    device.mirrors.clear();
    // BlueZ drops an unpaired device's GATT objects with the link; a new connection resolves them again.
    for (const path of device.exportedPaths.splice(0)) this.unexportAll(path);
    device.connected = false;
    device.resolved = false;
    Interface.emitPropertiesChanged(device, { Connected: false, ServicesResolved: false }, []);
  }

  /** The options BlueZ adds to a call on the hub's characteristic for this central. */
  hubOptions(device: Device, extra: Record<string, Variant>): Record<string, Variant> {
    return {
      ...extra,
      device: new dbus.Variant("o", devicePath(this.hubAdapter?.spec.name ?? "hci0", device.central.spec.address)),
      mtu: new dbus.Variant("q", device.central.spec.mtu),
    };
  }

  callHub(path: string, member: string, signature: string, body: unknown[]): Promise<unknown[]> {
    const app = this.app;
    if (app === undefined) return Promise.reject(new BusError("org.bluez.Error.NotConnected", "Not Connected"));
    return this.callPeer(app.owner, path, "org.bluez.GattCharacteristic1", member, signature, body);
  }

  /** BlueZ calls StartNotify on the hub for the first subscriber and StopNotify after the last. */
  async subscriptionChanged(path: string, delta: 1 | -1): Promise<void> {
    const before = this.subscriptions.get(path) ?? 0;
    this.subscriptions.set(path, before + delta);
    if (before === 0 && delta === 1) await this.callHub(path, "StartNotify", "", []);
    if (before === 1 && delta === -1) await this.callHub(path, "StopNotify", "", []);
  }

  private onSignal(msg: dbus.Message): void {
    if (msg.type !== dbus.MessageType.SIGNAL) return;
    const body = msg.body as unknown[];
    if (msg.member === "NameOwnerChanged" && body[2] === "") {
      // The hub's connection closed: BlueZ forgets what it registered.
      if (this.app?.owner === body[0]) this.app = undefined;
      if (this.advertisement?.owner === body[0]) this.advertisement = undefined;
      return;
    }
    if (msg.member !== "PropertiesChanged" || this.app === undefined || msg.sender !== this.app.owner) return;
    const changed = body[1] as Record<string, Variant>;
    const value = changed.Value?.value;
    if (!Buffer.isBuffer(value)) return;
    for (const device of this.devices.values()) {
      const mirror = device.mirrors.get(msg.path);
      if (mirror?.notifying === true) mirror.deliver(value);
    }
  }

  /** Every interface on the path (dbus-next's typings want one interface; its code takes none as all). */
  private unexportAll(path: string): void {
    (this.bus as unknown as { unexport(path: string): void }).unexport(path);
  }

  private async callPeer(destination: string, path: string, iface: string, member: string, signature: string, body: unknown[]): Promise<unknown[]> {
    const reply = await this.bus.call(new dbus.Message({ destination, path, interface: iface, member, signature, body }));
    return (reply?.body as unknown[] | undefined) ?? [];
  }

  private callDaemon(member: string, signature: string, body: unknown[]): Promise<unknown[]> {
    return this.callPeer("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", member, signature, body);
  }
}
