/**
 * A central that writes whatever a test makes to the IQ's requests characteristic (node-ble on
 * hci1, MTU 23, over the fake bluetoothd of ble-world.ts): chunks out of order, garbage, or a
 * well-formed request, with the answers' notifications collected and reassembled.
 */
import nodeBle from "node-ble";
import { afterEach } from "vitest";
import { Reassembler, chunkBytes } from "../../provisioning/protocol/ble-framing.js";
import { BLE_UUIDS } from "../../provisioning/protocol/ble.js";
import { PROTOCOL_VERSION } from "../../provisioning/protocol/messages.js";
import { HUB_ADAPTER } from "./ble-world.js";

export interface RawCentral {
  write(chunk: Uint8Array): Promise<void>;
  /** Notifications received so far. */
  received: Buffer[];
  /** The answers reassembled from the notifications so far, as text. */
  answers(): string[];
}

/** Registers the clean-up and returns the factory; call once at the top of a test file. */
export function rawCentrals(): () => Promise<RawCentral> {
  const sessions: { destroy(): void }[] = [];
  afterEach(() => sessions.splice(0).forEach((s) => s.destroy()));
  return async () => {
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
    return {
      write: (chunk) => requests.writeValueWithResponse(Buffer.from(chunk)),
      received,
      answers() {
        const reassembler = new Reassembler({ maxBytes: 1 << 20, timeoutMs: 60_000 });
        return received.flatMap((chunk) => {
          const message = reassembler.push(chunk, chunkBytes(23));
          return message === undefined ? [] : [Buffer.from(message).toString("utf8")];
        });
      },
    };
  };
}

/** The BlueZ error name a write was refused with. */
export async function refusedWith(write: Promise<void>): Promise<string> {
  try {
    await write;
  } catch (error) {
    return (error as { type?: string }).type ?? String(error);
  }
  throw new Error("expected the write to be refused");
}

/** A well-formed `status` request (unframed) with the given id. */
export function statusRequest(iqId: string, id = `raw-${Math.random().toString(16).slice(2)}`): Uint8Array {
  const envelope = { v: PROTOCOL_VERSION, id, op: "status", replyTo: `iq/v2/${iqId}/res/raw`, args: {} };
  return Buffer.from(JSON.stringify(envelope));
}
