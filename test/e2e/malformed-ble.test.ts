/**
 * Issue 10: garbage on the BLE requests characteristic, over the fake bluetoothd on a private
 * dbus-daemon: unframed random writes, and malformed payloads framed correctly. The framing
 * refuses what it must with a BlueZ error, the handler reads the rest without an error, nothing
 * is left under way, and a status request right after is answered.
 */
import fc from "fast-check";
import { describe, expect, it, vi } from "vitest";
import { frame } from "../../provisioning/protocol/ble-framing.js";
import { BleTransport } from "../../firmware/transports/ble/ble.js";
import { BLE_TESTS_RUN, bleWorld } from "./ble-world.js";
import { malformedPayloads } from "./malformed.js";
import { rawCentrals, statusRequest } from "./raw-central.js";
import { until } from "./world.js";

const world = bleWorld();
const rawCentral = rawCentrals();
const SEED = 10_011;
/** Unframed writes, and malformed payloads small enough to frame in a few chunks at MTU 23. */
const UNFRAMED = 800;
const FRAMED = 250;

describe.skipIf(!BLE_TESTS_RUN)("garbage over BLE", () => {
  it(`seed ${SEED}: ${UNFRAMED} unframed writes and ${FRAMED} framed malformed requests, then a status is answered`, async () => {
    const iq = await world.newHub({ ble: { requestTimeoutMs: 300 } });
    await until(() => iq.hub.ble?.up === true);
    const central = await rawCentral();
    const handled = vi.spyOn(BleTransport.prototype as unknown as { handle: () => Promise<void> }, "handle");
    const sealed = { appId: "app-stranger", epk: "A".repeat(43), mac: "A".repeat(22), box: "A".repeat(100) };
    const small = malformedPayloads({ replyTo: `iq/v2/${iq.iqId}/res/raw`, sealed }, SEED, 20 * FRAMED).filter((p) => p.length > 0 && p.length <= 100);
    const framed = small.slice(0, FRAMED);
    expect(framed).toHaveLength(FRAMED);
    const unframed = fc.sample(fc.uint8Array({ minLength: 1, maxLength: 20 }), { seed: SEED, numRuns: UNFRAMED });
    const started = performance.now();

    let refused = 0;
    const write = (chunk: Uint8Array) => central.write(chunk).catch(() => (refused += 1));
    for (const [i, chunk] of unframed.entries()) {
      await write(chunk);
      // Every fourth garbage write is followed by a malformed request framed as the protocol says.
      if (i % 4 === 0 && i / 4 < FRAMED) for (const part of frame(framed[i / 4]!, 23)) await write(part);
    }
    // A message left unfinished by the garbage is dropped after ble.requestTimeoutMs.
    await until(() => iq.hub.ble?.pendingRequests === 0, 2_000, "nothing under way");
    const id = "after-the-garbage";
    for (const chunk of frame(statusRequest(iq.iqId, id), 23)) await central.write(chunk);
    await until(() => central.answers().some((text) => text.includes(`"id":"${id}"`)), 5_000, "the status answer");

    expect(refused).toBeGreaterThan(UNFRAMED / 2);
    // Garbage that starts a message makes the next framed request's first chunk be refused (one
    // message under way per central), so not every framed request reaches the handler.
    expect(handled.mock.calls.length).toBeGreaterThan(FRAMED * 0.8);
    expect(iq.logs.filter((line) => line.includes("level=error"))).toEqual([]);
    process.stderr.write(`BLE: ${UNFRAMED + FRAMED} garbage messages (${refused} writes refused, ${handled.mock.calls.length} requests handled) in ${Math.round(performance.now() - started)} ms\n`);
  });
});
