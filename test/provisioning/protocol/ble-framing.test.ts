/**
 * BLE framing on its own: every message survives a split at the smallest, a common and the
 * largest MTU; every malformed sequence of chunks is refused with its problem and leaves nothing
 * behind, so the next message goes through.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { FLAG_FIRST, FLAG_LAST, FramingError, Reassembler, chunkBytes, chunksFor, frame } from "../../../provisioning/protocol/ble-framing.js";

const limits = { maxBytes: 4096, timeoutMs: 1_000 };

function problem(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    if (error instanceof FramingError) return error.problem;
    throw error;
  }
  throw new Error("expected a framing error");
}

function reassemble(chunks: Uint8Array[], mtu: number, reassembler = new Reassembler(limits)): Uint8Array | undefined {
  let out: Uint8Array | undefined;
  for (const chunk of chunks) out = reassembler.push(chunk, chunkBytes(mtu));
  return out;
}

describe("BLE framing", () => {
  it.each([23, 185, 517])("splits into chunks of at most MTU − 3 bytes and puts them back together at MTU %i", (mtu) => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 3000 }), (message) => {
        const chunks = frame(message, mtu);
        expect(chunks).toHaveLength(chunksFor(message.length, mtu));
        expect(chunks.every((c) => c.length <= mtu - 3)).toBe(true);
        expect(chunks[0]![0]! & FLAG_FIRST).toBe(FLAG_FIRST);
        expect(chunks.at(-1)![0]! & FLAG_LAST).toBe(FLAG_LAST);
        expect(Buffer.from(reassemble(chunks, mtu)!)).toEqual(Buffer.from(message));
      }),
      { numRuns: 50 },
    );
  });

  it("refuses chunks out of order, repeated or missing, and forgets the message", () => {
    const chunks = frame(new Uint8Array(100).fill(7), 23);
    const r = new Reassembler(limits);
    expect(problem(() => reassemble([chunks[0]!, chunks[2]!], 23, r))).toBe("out_of_order");
    expect(r.pending).toBe(false);
    expect(problem(() => reassemble([chunks[0]!, chunks[1]!, chunks[1]!], 23, r))).toBe("out_of_order");
    expect(problem(() => reassemble([chunks[1]!], 23, r))).toBe("out_of_order");
    // A new message while one is under way: the sender lost track; both are dropped.
    expect(problem(() => reassemble([chunks[0]!, chunks[0]!], 23, r))).toBe("out_of_order");
    expect(r.pending).toBe(false);
    expect(reassemble(chunks, 23, r)).toHaveLength(100);
  });

  it("refuses a chunk larger than the link carries, a message over the limit, and lengths that do not add up", () => {
    const r = new Reassembler(limits);
    expect(problem(() => r.push(frame(new Uint8Array(100), 185)[0]!, chunkBytes(23)))).toBe("chunk_oversized");
    const big = frame(new Uint8Array(5000), 517);
    expect(problem(() => r.push(big[0]!, chunkBytes(517)))).toBe("message_too_large");
    const short = frame(new Uint8Array(10), 23)[0]!;
    new DataView(short.buffer).setUint32(3, 11);
    expect(problem(() => r.push(short, 20))).toBe("length_mismatch");
    expect(problem(() => r.push(new Uint8Array([FLAG_FIRST, 0]), 20))).toBe("header_malformed");
    expect(r.pending).toBe(false);
  });

  it("refuses a message sent in more chunks than it needs even at the smallest MTU", () => {
    // 40 bytes need 3 chunks at MTU 23; here they come 1 byte a chunk.
    const first = new Uint8Array([FLAG_FIRST, 0, 0, 0, 0, 0, 40, 1]);
    const r = new Reassembler(limits);
    r.push(first, 20);
    r.push(new Uint8Array([0, 0, 1, 1]), 20);
    r.push(new Uint8Array([0, 0, 2, 1]), 20);
    expect(problem(() => r.push(new Uint8Array([0, 0, 3, 1]), 20))).toBe("too_many_chunks");
  });

  it("refuses the rest of a message that took too long", () => {
    let now = 0;
    const r = new Reassembler({ ...limits, now: () => now });
    const chunks = frame(new Uint8Array(100), 23);
    r.push(chunks[0]!, 20);
    now = 1_001;
    expect(r.expired()).toBe(true);
    expect(problem(() => r.push(chunks[1]!, 20))).toBe("timed_out");
    expect(r.pending).toBe(false);
  });
});
