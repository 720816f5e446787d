/**
 * Framing for the BLE link: a message (a request or answer envelope, JSON) larger than one ATT
 * value (MTU − 3 bytes) goes as several chunks, each with a small header:
 *
 *   byte 0      flags: 0x01 first chunk, 0x02 last chunk (a message that fits is both)
 *   bytes 1–2   sequence number, big-endian, 0 for the first chunk and +1 for each next one
 *   bytes 3–6   first chunk only: the message's total length in bytes, big-endian
 *
 * The receiver takes chunks strictly in order: a chunk out of order, repeated, missing (the next
 * one's number is wrong) or too large, a message over the size limit or in more chunks than it
 * needs even at the smallest MTU, is an error, and nothing of the message is kept. Pure: the
 * transports own the timers and the links.
 */
import { ATT_OVERHEAD, MIN_MTU } from "./ble.js";

export const FLAG_FIRST = 0x01;
export const FLAG_LAST = 0x02;
const HEADER_BYTES = 3;
const FIRST_HEADER_BYTES = 7;
/** The sequence number is 16 bits. */
const MAX_SEQUENCE = 0xffff;

export type FramingProblem =
  | "chunk_oversized"
  | "header_malformed"
  | "message_too_large"
  | "too_many_chunks"
  | "out_of_order"
  | "length_mismatch"
  | "timed_out";

export class FramingError extends Error {
  constructor(
    readonly problem: FramingProblem,
    message: string,
  ) {
    super(message);
    this.name = "FramingError";
  }
}

/** The value bytes one chunk may use at this MTU. */
export function chunkBytes(mtu: number): number {
  return mtu - ATT_OVERHEAD;
}

/** How many chunks a message of `length` bytes takes at this MTU. */
export function chunksFor(length: number, mtu: number): number {
  const first = chunkBytes(mtu) - FIRST_HEADER_BYTES;
  if (length <= first) return 1;
  return 1 + Math.ceil((length - first) / (chunkBytes(mtu) - HEADER_BYTES));
}

/** Splits `message` into chunks of at most MTU − 3 bytes each. */
export function frame(message: Uint8Array, mtu: number): Uint8Array[] {
  if (mtu < MIN_MTU) throw new RangeError(`an MTU of at least ${MIN_MTU}`);
  if (chunksFor(message.length, mtu) > MAX_SEQUENCE + 1) {
    throw new FramingError("too_many_chunks", `a message of ${message.length} bytes needs more than ${MAX_SEQUENCE + 1} chunks at MTU ${mtu}`);
  }
  const chunks: Uint8Array[] = [];
  let offset = 0;
  for (let seq = 0; seq === 0 || offset < message.length; seq++) {
    const headerBytes = seq === 0 ? FIRST_HEADER_BYTES : HEADER_BYTES;
    const take = Math.min(chunkBytes(mtu) - headerBytes, message.length - offset);
    const last = offset + take === message.length;
    const chunk = new Uint8Array(headerBytes + take);
    const view = new DataView(chunk.buffer);
    view.setUint8(0, (seq === 0 ? FLAG_FIRST : 0) | (last ? FLAG_LAST : 0));
    view.setUint16(1, seq);
    if (seq === 0) view.setUint32(3, message.length);
    chunk.set(message.subarray(offset, offset + take), headerBytes);
    chunks.push(chunk);
    offset += take;
  }
  return chunks;
}

export interface ReassemblyLimits {
  /** The largest message accepted. */
  maxBytes: number;
  /** How long a message may take from its first chunk to its last. */
  timeoutMs: number;
  now?: () => number;
}

interface Unfinished {
  total: number;
  parts: Uint8Array[];
  received: number;
  nextSeq: number;
  /** The chunks this message may take: as many as it needs at the smallest MTU, no more. */
  maxChunks: number;
  startedAt: number;
}

/**
 * Collects the chunks of one message at a time from one sender. `push` returns the message when
 * its last chunk arrives; on any error it throws a FramingError and forgets the message.
 */
export class Reassembler {
  private partial: Unfinished | undefined;
  private readonly now: () => number;

  constructor(private readonly limits: ReassemblyLimits) {
    this.now = limits.now ?? Date.now;
  }

  /** A message is under way. */
  get pending(): boolean {
    return this.partial !== undefined;
  }

  /** The message under way has taken longer than allowed (the sender went away or lost a chunk). */
  expired(): boolean {
    return this.partial !== undefined && this.now() - this.partial.startedAt > this.limits.timeoutMs;
  }

  /** Forgets the message under way. */
  reset(): void {
    this.partial = undefined;
  }

  /** `maxChunkBytes`: the most one chunk may carry on this link (MTU − 3). */
  push(chunk: Uint8Array, maxChunkBytes: number): Uint8Array | undefined {
    try {
      return this.accept(chunk, maxChunkBytes);
    } catch (error) {
      this.partial = undefined;
      throw error;
    }
  }

  private accept(chunk: Uint8Array, maxChunkBytes: number): Uint8Array | undefined {
    if (chunk.length > maxChunkBytes) {
      throw new FramingError("chunk_oversized", `a chunk of ${chunk.length} bytes, more than the ${maxChunkBytes} this link carries`);
    }
    if (chunk.length < HEADER_BYTES) throw new FramingError("header_malformed", "a chunk shorter than its header");
    const view = new DataView(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    const flags = view.getUint8(0);
    const seq = view.getUint16(1);
    if (this.expired()) throw new FramingError("timed_out", `the message took longer than ${this.limits.timeoutMs} ms`);
    if ((flags & FLAG_FIRST) !== 0) {
      // A first chunk while a message is under way: the sender lost track, or someone interleaves.
      if (this.partial !== undefined) throw new FramingError("out_of_order", "a new message began before the last one ended");
      if (seq !== 0 || chunk.length < FIRST_HEADER_BYTES) throw new FramingError("header_malformed", "a first chunk needs sequence 0 and the total length");
      const total = view.getUint32(3);
      if (total > this.limits.maxBytes) {
        throw new FramingError("message_too_large", `a message of ${total} bytes, more than the ${this.limits.maxBytes} accepted`);
      }
      this.partial = { total, parts: [], received: 0, nextSeq: 0, maxChunks: chunksFor(total, MIN_MTU), startedAt: this.now() };
    }
    const partial = this.partial;
    if (partial === undefined) throw new FramingError("out_of_order", `chunk ${seq} without a first chunk`);
    if (seq !== partial.nextSeq) throw new FramingError("out_of_order", `chunk ${seq} where chunk ${partial.nextSeq} was due (missing, repeated or reordered)`);
    if (seq + 1 > partial.maxChunks) throw new FramingError("too_many_chunks", `more chunks than a message of ${partial.total} bytes needs`);
    const body = chunk.subarray(seq === 0 ? FIRST_HEADER_BYTES : HEADER_BYTES);
    partial.received += body.length;
    if (partial.received > partial.total) throw new FramingError("length_mismatch", `more than the ${partial.total} bytes announced`);
    partial.parts.push(body.slice());
    partial.nextSeq += 1;
    if ((flags & FLAG_LAST) === 0) return undefined;
    this.partial = undefined;
    if (partial.received !== partial.total) {
      throw new FramingError("length_mismatch", `the last chunk came after ${partial.received} of the ${partial.total} bytes announced`);
    }
    return Buffer.concat(partial.parts);
  }
}
