/**
 * The D-Bus objects the hub exports for BlueZ (doc/org.bluez.GattManager1, GattService1,
 * GattCharacteristic1, LEAdvertisement1 in BlueZ's tree): the application root with its
 * ObjectManager, one service with the three characteristics of provisioning/protocol/ble.ts, and
 * the advertisement. Members are declared with dbus-next's configureMembers (the project has no
 * decorators). They only translate D-Bus calls into the callbacks the transport gives them.
 */
import dbus from "dbus-next";
import { BLE_UUIDS } from "../../../provisioning/protocol/ble.js";

const { Interface } = dbus.interface;
type DbusInterface = InstanceType<typeof Interface>;

/** A D-Bus error reply: BlueZ turns org.bluez.Error.* names into ATT errors for the central. */
export const BusError = dbus.DBusError;

/** What BlueZ passes in a{sv} options; values arrive as Variants. */
export type BusOptions = Record<string, { value: unknown } | undefined>;

export const PATHS = {
  root: "/org/iqhub",
  service: "/org/iqhub/service0",
  requests: "/org/iqhub/service0/char0",
  responses: "/org/iqhub/service0/char1",
  info: "/org/iqhub/service0/char2",
  advertisement: "/org/iqhub/advertisement0",
} as const;

export interface CharacteristicCallbacks {
  /** ReadValue: the whole value; the object hands out the part from `offset` on. */
  read?: (options: BusOptions) => Uint8Array;
  /** WriteValue: throws a BusError to refuse. */
  write?: (value: Buffer, options: BusOptions) => void;
  /** StartNotify / StopNotify. */
  notifying?: (on: boolean) => void;
}

class GattService extends Interface {
  constructor(
    private readonly uuid: string,
    private readonly characteristics: string[],
  ) {
    super("org.bluez.GattService1");
  }
  get UUID(): string {
    return this.uuid;
  }
  get Primary(): boolean {
    return true;
  }
  get Characteristics(): string[] {
    return this.characteristics;
  }
}
GattService.configureMembers({
  properties: {
    UUID: { signature: "s", access: "read" },
    Primary: { signature: "b", access: "read" },
    Characteristics: { signature: "ao", access: "read" },
  },
});

export class GattCharacteristic extends Interface {
  private value: Buffer = Buffer.alloc(0);
  private notifyingNow = false;

  constructor(
    private readonly uuid: string,
    private readonly flags: string[],
    private readonly callbacks: CharacteristicCallbacks,
  ) {
    super("org.bluez.GattCharacteristic1");
  }
  get UUID(): string {
    return this.uuid;
  }
  get Service(): string {
    return PATHS.service;
  }
  get Flags(): string[] {
    return this.flags;
  }
  get Value(): Buffer {
    return this.value;
  }
  get Notifying(): boolean {
    return this.notifyingNow;
  }

  ReadValue(options: BusOptions): Buffer {
    const read = this.callbacks.read;
    if (read === undefined) throw new BusError("org.bluez.Error.NotPermitted", "not readable");
    const whole = Buffer.from(read(options));
    const offset = Number(options.offset?.value ?? 0);
    // BlueZ reads a long value in pieces (ATT Read Blob), each at an offset.
    if (offset > whole.length) throw new BusError("org.bluez.Error.InvalidOffset", `offset ${offset} beyond ${whole.length} bytes`);
    return whole.subarray(offset);
  }

  WriteValue(value: Buffer, options: BusOptions): void {
    const write = this.callbacks.write;
    if (write === undefined) throw new BusError("org.bluez.Error.NotPermitted", "not writable");
    write(Buffer.from(value), options);
  }

  StartNotify(): void {
    if (this.callbacks.notifying === undefined) throw new BusError("org.bluez.Error.NotSupported", "no notifications");
    this.notifyingNow = true;
    this.callbacks.notifying(true);
  }

  StopNotify(): void {
    this.notifyingNow = false;
    this.callbacks.notifying?.(false);
  }

  /** A notification: BlueZ sends every change of Value to the centrals that subscribed. */
  notify(value: Uint8Array): void {
    this.value = Buffer.from(value);
    Interface.emitPropertiesChanged(this, { Value: this.value }, []);
  }
}
GattCharacteristic.configureMembers({
  properties: {
    UUID: { signature: "s", access: "read" },
    Service: { signature: "o", access: "read" },
    Flags: { signature: "as", access: "read" },
    Value: { signature: "ay", access: "read" },
    Notifying: { signature: "b", access: "read" },
  },
  methods: {
    ReadValue: { inSignature: "a{sv}", outSignature: "ay" },
    WriteValue: { inSignature: "aya{sv}" },
    StartNotify: {},
    StopNotify: {},
  },
});

export class Advertisement extends Interface {
  constructor(
    private readonly localName: string,
    private readonly onRelease: () => void,
  ) {
    super("org.bluez.LEAdvertisement1");
  }
  get Type(): string {
    return "peripheral";
  }
  get ServiceUUIDs(): string[] {
    return [BLE_UUIDS.service];
  }
  get LocalName(): string {
    return this.localName;
  }
  /** BlueZ dropped the advertisement (the adapter went away, or bluetoothd is stopping). */
  Release(): void {
    this.onRelease();
  }
}
Advertisement.configureMembers({
  properties: {
    Type: { signature: "s", access: "read" },
    ServiceUUIDs: { signature: "as", access: "read" },
    LocalName: { signature: "s", access: "read" },
  },
  methods: { Release: {} },
});

/** The application root: BlueZ learns the whole tree from one GetManagedObjects call. */
class ObjectManager extends Interface {
  constructor(private readonly objects: ReadonlyMap<string, DbusInterface>) {
    super("org.freedesktop.DBus.ObjectManager");
  }
  GetManagedObjects(): Record<string, Record<string, Record<string, InstanceType<typeof dbus.Variant>>>> {
    const managed: Record<string, Record<string, Record<string, InstanceType<typeof dbus.Variant>>>> = {};
    for (const [path, iface] of this.objects) managed[path] = { [(iface as unknown as { $name: string }).$name]: propertiesOf(iface) };
    return managed;
  }
}
ObjectManager.configureMembers({
  methods: { GetManagedObjects: { outSignature: "a{oa{sa{sv}}}" } },
});

/** An interface's readable properties as Variants, by the signatures configureMembers recorded. */
function propertiesOf(iface: DbusInterface): Record<string, InstanceType<typeof dbus.Variant>> {
  const declared = (iface as unknown as { $properties?: Record<string, { signature: string }> }).$properties ?? {};
  const values = iface as unknown as Record<string, unknown>;
  return Object.fromEntries(Object.entries(declared).map(([name, { signature }]) => [name, new dbus.Variant(signature, values[name])]));
}

export interface GattApplication {
  requests: GattCharacteristic;
  responses: GattCharacteristic;
  info: GattCharacteristic;
  advertisement: Advertisement;
  /** Puts every object on the bus (once per connection). */
  exportOn(bus: dbus.MessageBus): void;
}

export function gattApplication(options: {
  localName: string;
  requests: CharacteristicCallbacks;
  responses: CharacteristicCallbacks;
  info: CharacteristicCallbacks;
  onAdvertisementReleased: () => void;
}): GattApplication {
  const requests = new GattCharacteristic(BLE_UUIDS.requests, ["write"], options.requests);
  const responses = new GattCharacteristic(BLE_UUIDS.responses, ["notify"], options.responses);
  const info = new GattCharacteristic(BLE_UUIDS.info, ["read"], options.info);
  const service = new GattService(BLE_UUIDS.service, [PATHS.requests, PATHS.responses, PATHS.info]);
  const tree = new Map<string, DbusInterface>([
    [PATHS.service, service],
    [PATHS.requests, requests],
    [PATHS.responses, responses],
    [PATHS.info, info],
  ]);
  const advertisement = new Advertisement(options.localName, options.onAdvertisementReleased);
  const root = new ObjectManager(tree);
  return {
    requests,
    responses,
    info,
    advertisement,
    exportOn(bus) {
      bus.export(PATHS.root, root);
      for (const [path, iface] of tree) bus.export(path, iface);
      bus.export(PATHS.advertisement, advertisement);
    },
  };
}
