/**
 * A hostile or broken central, over the same fake bluetoothd: chunks out of order, repeated,
 * missing, too large for the link, or announcing a message over the limit. Each write is refused
 * with a BlueZ error name (the ATT error the central sees), the hub keeps nothing of it and keeps
 * serving, and a well-formed request right after is answered.
 */
import { describe, expect, it } from "vitest";
import { frame, FLAG_FIRST } from "../../provisioning/protocol/ble-framing.js";
import { BLE_TESTS_RUN, bleWorld } from "./ble-world.js";
import { rawCentrals, refusedWith, statusRequest } from "./raw-central.js";
import { until } from "./world.js";

const world = bleWorld();
const rawCentral = rawCentrals();

describe.skipIf(!BLE_TESTS_RUN)("a hostile central over BLE", () => {
  it("out-of-order, repeated, oversized and over-long chunks are refused, nothing is kept, and the hub answers the next request", async () => {
    const iq = await world.newHub({ ble: { requestTimeoutMs: 300 } });
    await until(() => iq.hub.ble?.up === true);
    const central = await rawCentral();
    const chunks = frame(statusRequest(iq.iqId), 23);
    expect(chunks.length).toBeGreaterThan(4);

    await central.write(chunks[0]!);
    expect(await refusedWith(central.write(chunks[2]!))).toBe("org.bluez.Error.Failed");
    expect(iq.hub.ble?.pendingRequests).toBe(0);

    await central.write(chunks[0]!);
    await central.write(chunks[1]!);
    expect(await refusedWith(central.write(chunks[1]!))).toBe("org.bluez.Error.Failed");
    expect(iq.hub.ble?.pendingRequests).toBe(0);

    // A chunk framed for MTU 185 on a link of MTU 23 (BlueZ hands over long writes whole).
    expect(await refusedWith(central.write(frame(statusRequest(iq.iqId), 185)[0]!))).toBe("org.bluez.Error.InvalidValueLength");
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
