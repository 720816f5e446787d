/**
 * Small byte helpers shared by the Code, CPace and sealing modules (and by anyone else who
 * handles secrets): checks at the door, unambiguous length-prefixed encoding, constant-time
 * comparison and zeroing.
 *
 * Every check throws `IqError("crypto_input_invalid")` naming the argument, so that a bad value
 * that slipped through a transport's schema ends as a clear refusal, not a stack trace.
 */
import { IqError } from "../../common/errors.js";

const encoder = new TextEncoder();

/** UTF-8 bytes of a fixed label or an already checked string. */
export function utf8(text: string): Uint8Array {
  return encoder.encode(text);
}

function invalid(name: string, expected: string): IqError {
  return new IqError("crypto_input_invalid", `${name}: expected ${expected}`, { argument: name });
}

/** The value as a Uint8Array, optionally of an exact length or within [min, max] bytes. */
export function requireBytes(
  name: string,
  value: unknown,
  size: number | { min: number; max: number },
): Uint8Array {
  if (!(value instanceof Uint8Array)) throw invalid(name, "a Uint8Array");
  const [min, max] = typeof size === "number" ? [size, size] : [size.min, size.max];
  if (value.length < min || value.length > max) {
    throw invalid(name, min === max ? `${min} bytes` : `${min} to ${max} bytes`);
  }
  return value;
}

/** A counter or time value: a safe integer ≥ 0, so that it encodes exactly in 8 bytes. */
export function requireUint(name: string, value: unknown): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
    throw invalid(name, "a safe integer ≥ 0");
  }
  return value;
}

// Identifiers end up in tweaks and associated data; control characters there only ever mean a
// bug or an attack, and a cap keeps a hostile id from making every FF1 round encrypt kilobytes.
const MAX_TEXT_BYTES = 128;
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROL = /[\u0000-\u001f\u007f]/;

/** UTF-8 bytes of a non-empty identifier (IQ id, app id, purpose) of at most 128 bytes. */
export function requireText(name: string, value: unknown): Uint8Array {
  if (typeof value !== "string" || value.length === 0 || CONTROL.test(value)) {
    throw invalid(name, "a non-empty string without control characters");
  }
  const bytes = utf8(value);
  if (bytes.length > MAX_TEXT_BYTES) throw invalid(name, `at most ${MAX_TEXT_BYTES} UTF-8 bytes`);
  return bytes;
}

/** 8-byte big-endian encoding of a counter or time step. */
export function u64be(value: number): Uint8Array {
  const out = new Uint8Array(8);
  // Two 32-bit halves, not a BigInt: a safe integer fits, and a Code check encodes a dozen of these.
  writeU64be(requireUint("value", value), out, 0);
  return out;
}

function writeU64be(value: number, out: Uint8Array, at: number): void {
  let high = Math.floor(value / 2 ** 32);
  let low = value % 2 ** 32;
  for (let k = 7; k >= 4; k--, low = Math.floor(low / 256), high = Math.floor(high / 256)) {
    out[at + k] = low % 256;
    out[at + k - 4] = high % 256;
  }
}

/** Bytes of the LEB128 encoding of `length`. */
function lengthPrefixSize(length: number): number {
  let size = 1;
  for (let rest = Math.floor(length / 128); rest > 0; rest = Math.floor(rest / 128)) size++;
  return size;
}

/** Writes the LEB128 encoding of `length` into `out` at `at`; returns the offset after it. */
function writeLengthPrefix(length: number, out: Uint8Array, at: number): number {
  let rest = length;
  do {
    const low = rest % 128;
    rest = Math.floor(rest / 128);
    out[at++] = rest > 0 ? low | 0x80 : low;
  } while (rest > 0);
  return at;
}

/**
 * The LEB128 encoding of a length, as CPace's prepend_len uses it (draft-irtf-cfrg-cpace
 * §A.1.1): 7 bits per byte, least significant first, bit 7 set while more follow.
 */
export function lengthPrefix(length: number): Uint8Array {
  const checked = requireUint("length", length);
  const out = new Uint8Array(lengthPrefixSize(checked));
  writeLengthPrefix(checked, out, 0);
  return out;
}

/**
 * lv_cat(a0, a1, …) of draft-irtf-cfrg-cpace §A.1.3: each part prefixed with its LEB128 length.
 * The encoding is prefix-free, so distinct tuples never encode to the same bytes; every tweak,
 * associated data and MAC input in this folder is built with it. Written into one buffer: a Code
 * check builds a dozen of these, and a small typed array per prefix showed in its profile.
 */
export function lvCat(...parts: Uint8Array[]): Uint8Array {
  let size = 0;
  for (const part of parts) size += lengthPrefixSize(part.length) + part.length;
  const out = new Uint8Array(size);
  let at = 0;
  for (const part of parts) {
    at = writeLengthPrefix(part.length, out, at);
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** The parts back to back, without lengths: for fixed-layout envelopes and transcripts. */
export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((total, part) => total + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/**
 * The inverse of lvCat for exactly `count` parts, or undefined if `data` is not such an
 * encoding (truncated, trailing bytes, or a non-minimal length that would make two encodings of
 * one tuple). Parts are views into `data`.
 */
export function splitLv(data: Uint8Array, count: number): Uint8Array[] | undefined {
  const parts: Uint8Array[] = [];
  let offset = 0;
  while (parts.length < count) {
    let length = 0;
    let scale = 1;
    let byte: number;
    const start = offset;
    do {
      const next = data[offset++];
      if (next === undefined || scale > 2 ** 28) return undefined;
      byte = next;
      length += (byte & 0x7f) * scale;
      scale *= 128;
    } while (byte & 0x80);
    if (offset - start > 1 && byte === 0) return undefined;
    if (offset + length > data.length) return undefined;
    parts.push(data.subarray(offset, offset + length));
    offset += length;
  }
  return offset === data.length ? parts : undefined;
}

/**
 * Constant-time equality: the time depends on the lengths only, never on where the bytes
 * differ, so a tag or verifier cannot be found byte by byte.
 */
export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= (a[i] ?? 0) ^ (b[i] ?? 0);
  return diff === 0;
}

/** Overwrite buffers that held keys, passwords or intermediate secrets once they are done with. */
export function zeroize(...buffers: Uint8Array[]): void {
  for (const buffer of buffers) buffer.fill(0);
}
