import fc from "fast-check";
import { generate } from "mqtt-packet";
import { describe, expect, it } from "vitest";
import { PacketSizeLimit } from "../../../firmware/transports/packet-size-guard.js";

const LIMIT = 300_000;
const publish = (bytes: number) =>
  generate({ cmd: "publish", topic: "iq/v1/iq-a/req", payload: Buffer.alloc(bytes, 0x61), qos: 1, messageId: 7, retain: false, dup: false });
const ping = generate({ cmd: "pingreq" });

/** `bytes` cut at the given offsets, as TCP may deliver them. */
function chunks(bytes: Buffer, cuts: number[]): Buffer[] {
  const at = [...new Set(cuts.map((cut) => cut % bytes.length))].sort((a, b) => a - b);
  return [0, ...at].map((start, i) => bytes.subarray(start, at[i] ?? bytes.length)).filter((chunk) => chunk.length > 0);
}

describe("the packet size limit", () => {
  it("follows packet boundaries however the stream is cut, and passes packets up to the limit", () => {
    // Remaining lengths of one to three bytes, a packet with no body, and one right at the limit.
    const stream = Buffer.concat([ping, publish(10), publish(200), publish(20_000), ping, publish(LIMIT - 20), ping]);
    fc.assert(
      fc.property(fc.array(fc.nat(), { maxLength: 12 }), (cuts) => {
        const limit = new PacketSizeLimit(LIMIT);
        return chunks(stream, cuts).every((chunk) => limit.accept(chunk));
      }),
    );
  });

  it("says no at the header of a packet over the limit, wherever it is cut", () => {
    const header = publish(LIMIT).subarray(0, 5);
    fc.assert(
      fc.property(fc.array(fc.nat(), { maxLength: 4 }), (cuts) => {
        const limit = new PacketSizeLimit(LIMIT);
        return chunks(Buffer.concat([publish(100), header]), cuts).some((chunk) => !limit.accept(chunk));
      }),
    );
  });

  it("says no to a remaining length longer than four bytes", () => {
    expect(new PacketSizeLimit(LIMIT).accept(Buffer.from([0x30, 0x80, 0x80, 0x80, 0x80, 0x01]))).toBe(false);
  });
});
