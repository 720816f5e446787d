/**
 * A hostile or broken central, over the same fake bluetoothd: chunks out of order, repeated,
 * missing, too large for the link, or announcing a message over the limit. Each write is refused
 * with a BlueZ error name (the ATT error the central sees), the hub keeps nothing of it and keeps
 * serving, and a well-formed request right after is answered.
 */
import nodeBle from "node-ble";
import { afterEach, describe, expect, it } from "vitest";
import { frame, FLAG_FIRST } from "../../provisioning/protocol/ble-framing.js";
import { BLE_UUIDS } from "../../provisioning/protocol/ble.js";
import { PROTOCOL_VERSION } from "../../provisioning/protocol/messages.js";
import type { TestHub } from "../support/hub.js";
import { BLE_TESTS_RUN, bleWorld, HUB_ADAPTER } from "./ble-world.js";
import { until } from "./world.js";

const world = bleWorld();
const sessions: { destroy(): void }[] = [];
afterEach(() => sessions.splice(0).forEach((s) => s.destroy()));

interface RawCentral {
  write(chunk: Uint8Array): Promise<void>;
  /** Notifications received so far. */
  received: Buffer[];
}

/** node-ble on hci1 (MTU 23), writing whatever the test makes. */
async function rawCentral(): Promise<RawCentral> {
  const session = nodeBle.createBluetooth();
  sessions.push(session);
  const adapter = await session.bluetooth.getAdapter("hci1");
  await adapter.startDiscovery();
  const device = await adapter.waitDevice(HUB_ADAPTER.address, 5_000, 20);
  await device.connect();
  const service = await (await device.gatt()).getPrimaryService(BLE_UUIDS.service);
  const requests = await service.getCharacteristic(BLE_UUIDS.requests);
  const responses = await service.getCharacteristic(BLE_UUIDS.responses);
  const received: Buffer[] = [];
  responses.on("valuechanged", (value: Buffer) => received.push(value));
  await responses.startNotifications();
  return { write: (chunk) => requests.writeValueWithResponse(Buffer.from(chunk)), received };
}

/** The BlueZ error name a write was refused with. */
async function refusedWith(write: Promise<void>): Promise<string> {
  try {
    await write;
  } catch (error) {
    return (error as { type?: string }).type ?? String(error);
  }
  throw new Error("expected the write to be refused");
}

function statusRequest(iq: TestHub): Uint8Array {
  const envelope = { v: PROTOCOL_VERSION, id: `raw-${Math.random().toString(16).slice(2)}`, op: "status", replyTo: `iq/v2/${iq.iqId}/res/raw`, args: {} };
  return Buffer.from(JSON.stringify(envelope));
}

describe.skipIf(!BLE_TESTS_RUN)("a hostile central over BLE", () => {
  it("out-of-order, repeated, oversized and over-long chunks are refused, nothing is kept, and the hub answers the next request", async () => {
    const iq = await world.newHub({ ble: { requestTimeoutMs: 300 } });
    await until(() => iq.hub.ble?.up === true);
    const central = await rawCentral();
    const chunks = frame(statusRequest(iq), 23);
    expect(chunks.length).toBeGreaterThan(4);

    await central.write(chunks[0]!);
    expect(await refusedWith(central.write(chunks[2]!))).toBe("org.bluez.Error.Failed");
    expect(iq.hub.ble?.pendingRequests).toBe(0);

    await central.write(chunks[0]!);
    await central.write(chunks[1]!);
    expect(await refusedWith(central.write(chunks[1]!))).toBe("org.bluez.Error.Failed");
    expect(iq.hub.ble?.pendingRequests).toBe(0);

    // A chunk framed for MTU 185 on a link of MTU 23 (BlueZ hands over long writes whole).
    expect(await refusedWith(central.write(frame(statusRequest(iq), 185)[0]!))).toBe("org.bluez.Error.InvalidValueLength");
    // A first chunk announcing a message larger than any request.
    const huge = new Uint8Array([FLAG_FIRST, 0, 0, 0x00, 0x10, 0x00, 0x00, 0x7b]);
    expect(await refusedWith(central.write(huge))).toBe("org.bluez.Error.InvalidValueLength");
    expect(iq.hub.ble?.pendingRequests).toBe(0);

    // Missing chunks at the end: the message is dropped after ble.requestTimeoutMs.
    await central.write(chunks[0]!);
    await central.write(chunks[1]!);
    expect(iq.hub.ble?.pendingRequests).toBe(1);
    await until(() => iq.hub.ble?.pendingRequests === 0, 2_000, "the unfinished request to be dropped");

    for (const chunk of chunks) await central.write(chunk);
    await until(() => central.received.length > 0, 5_000, "an answer");
    expect(iq.logs.filter((line) => line.includes("level=error"))).toEqual([]);
  });
});
