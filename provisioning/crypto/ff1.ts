/**
 * FF1 (NIST SP 800-38G, Algorithms 7 and 8) for the shape the Codes use: a radix that is a power
 * of two and strings short enough that each half fits in 32 bits, on OpenSSL's AES.
 *
 * Why not @noble/ciphers' FF1, which the known-answer tests still run: the IQ decrypts a Code 8
 * times per check (4 time steps × 2 devices), and noble's general FF1 expands the AES key in
 * JavaScript for every decryption, runs every round's PRF over the whole P ‖ Q (8 AES blocks here,
 * for a 100-byte tweak) and does the round arithmetic with BigInts. That held a check at about
 * 2,500 a second on the reference machine, half the target of 5,000 (docs/performance.md). Here:
 *
 * - P ‖ T ‖ pad is the same in all ten rounds; only the last block of P ‖ Q (round number and
 *   the other half) changes. Its CBC-MAC state is computed once per tweak, and each round
 *   encrypts one block. (code.ts picks a tweak length that makes P ‖ Q two blocks.)
 * - With radix 2^k, NUM_radix and STR_radix are bit concatenation, and y mod radix^m keeps the
 *   low k·m bits of S: plain 32-bit arithmetic, no BigInt.
 * - The AES key is expanded once per key, by OpenSSL (AES-NI where the CPU has it, constant time).
 *
 * The property tests check this module against @noble/ciphers' FF1 (itself checked against the
 * NIST samples) on random keys, tweaks and inputs.
 */
import { createCipheriv, type Cipher } from "node:crypto";
import { IqError } from "../../common/errors.js";

const BLOCK = 16;
const ROUNDS = 10;
/** Each half of the string, as a number, must fit in 32 bits for the arithmetic below. */
const MAX_HALF_BITS = 30;

const AES_BY_KEY_LENGTH: Readonly<Record<number, string>> = { 16: "aes-128", 24: "aes-192", 32: "aes-256" };

function unsupported(what: string): IqError {
  return new IqError("crypto_input_invalid", `FF1: ${what}`);
}

/** A numeral string of `length` digits in radix 2^bitsPerDigit, as one number (NUM_radix). */
function num(digits: readonly number[], from: number, to: number, bitsPerDigit: number): number {
  let value = 0;
  for (let i = from; i < to; i++) value = value * 2 ** bitsPerDigit + digits[i]!;
  return value;
}

/** STR^m_radix: `value` as m digits, most significant first, into `out` at `at`. */
function str(value: number, m: number, radix: number, out: number[], at: number): void {
  for (let i = m - 1; i >= 0; i--) {
    out[at + i] = value % radix;
    value = Math.floor(value / radix);
  }
}

/** FF1 under one AES key, for numeral strings of `length` digits in `radix`. */
export class Ff1 {
  private readonly ecb: Cipher;
  private readonly bitsPerDigit: number;
  private readonly u: number;
  private readonly v: number;
  /** Bytes of NUM_radix(B) in Q (the spec's b), and of S that matter (the spec's d ≤ 16). */
  private readonly b: number;
  /** CIPH_K(P) by tweak length, for tweaks that leave P alone in front of the last block. */
  private readonly pStates = new Map<number, Uint8Array>();

  constructor(
    key: Uint8Array,
    private readonly radix: number,
    private readonly length: number,
  ) {
    const aes = AES_BY_KEY_LENGTH[key.length];
    if (aes === undefined) throw unsupported("the key must be 16, 24 or 32 bytes");
    this.bitsPerDigit = Math.log2(radix);
    if (!Number.isInteger(this.bitsPerDigit) || radix < 2 || radix > 2 ** 16) throw unsupported("the radix must be a power of two up to 2^16");
    // SP 800-38G: radix^minlen ≥ 100 (and minlen ≥ 2).
    if (radix ** length < 100 || length < 2) throw unsupported(`${length} digits of radix ${radix} are fewer than 100 values`);
    this.u = Math.floor(length / 2);
    this.v = length - this.u;
    if (this.v * this.bitsPerDigit > MAX_HALF_BITS) throw unsupported(`${length} digits of radix ${radix} are too long for this implementation`);
    this.b = Math.ceil((this.v * this.bitsPerDigit) / 8);
    this.ecb = createCipheriv(`${aes}-ecb`, key, null).setAutoPadding(false);
  }

  /** The cipher for one tweak: precomputes the part of every round's PRF input that does not change. */
  withTweak(tweak: Uint8Array): { encrypt(digits: readonly number[]): number[]; decrypt(digits: readonly number[]): number[] } {
    const rounds = [new Rounds(this, tweak)];
    return {
      encrypt: (digits) => feistel(this, rounds, this.check(digits), false)[0]!,
      decrypt: (digits) => feistel(this, rounds, this.check(digits), true)[0]!,
    };
  }

  /**
   * The same digits decrypted under each of `tweaks` (a Code tried against every time step): the
   * networks run in lockstep, so each round is one call into OpenSSL for all of them. A call costs
   * far more than the AES block it encrypts.
   */
  decryptUnder(tweaks: readonly Uint8Array[], digits: readonly number[]): number[][] {
    return feistel(this, tweaks.map((tweak) => new Rounds(this, tweak)), this.check(digits), true);
  }

  /** AES of each 16-byte block of `blocks` (the PRF's CIPH_K, ECB over independent blocks). */
  encryptBlocks(blocks: Uint8Array): Buffer {
    return this.ecb.update(blocks);
  }

  /** FF1's block P for a tweak of `t` bytes (step 5 of Algorithms 7 and 8). */
  p(t: number): Uint8Array {
    const p = new Uint8Array(BLOCK);
    const view = new DataView(p.buffer);
    p.set([1, 2, 1]);
    view.setUint16(4, this.radix);
    p[6] = 10;
    p[7] = this.u % 256;
    view.setUint32(8, this.length);
    view.setUint32(12, t);
    return p;
  }

  /** CBC-MAC of whole blocks with a zero IV: the PRF's state after `data`. */
  cbcMac(data: Uint8Array): Uint8Array {
    let state: Uint8Array = new Uint8Array(BLOCK);
    for (let at = 0; at < data.length; at += BLOCK) {
      for (let k = 0; k < BLOCK; k++) state[k] = state[k]! ^ data[at + k]!;
      state = this.encryptBlocks(state);
    }
    return state;
  }

  /** CIPH_K(P) for tweaks of `t` bytes: computed once per length. */
  pState(t: number): Uint8Array {
    let state = this.pStates.get(t);
    if (state === undefined) this.pStates.set(t, (state = this.cbcMac(this.p(t))));
    return state;
  }

  get shape(): { radix: number; bitsPerDigit: number; length: number; u: number; v: number; b: number } {
    return { radix: this.radix, bitsPerDigit: this.bitsPerDigit, length: this.length, u: this.u, v: this.v, b: this.b };
  }

  private check(digits: readonly number[]): readonly number[] {
    if (digits.length !== this.length || digits.some((digit) => !Number.isInteger(digit) || digit < 0 || digit >= this.radix)) {
      throw unsupported(`expected ${this.length} digits below ${this.radix}`);
    }
    return digits;
  }
}

/** The ten Feistel rounds under one key and tweak. */
class Rounds {
  /** CBC-MAC state after P ‖ Q but its last block (all zero when P ‖ Q is a single block). */
  private readonly state: Uint8Array;
  /** The last block of P ‖ Q with the round number and NUM(B) still zero. */
  private readonly lastBlock: Uint8Array;

  constructor(
    private readonly ff1: Ff1,
    tweak: Uint8Array,
  ) {
    const { b } = ff1.shape;
    const t = tweak.length;
    const pad = (((-t - b - 1) % BLOCK) + BLOCK) % BLOCK;
    const qLength = t + pad + 1 + b;
    if (qLength === BLOCK) {
      // The Codes' case: P ‖ Q is two blocks, P alone in front, the same for every tweak of this length.
      this.state = ff1.pState(t);
      this.lastBlock = new Uint8Array(BLOCK);
      this.lastBlock.set(tweak);
      return;
    }
    const pq = new Uint8Array(BLOCK + qLength);
    pq.set(ff1.p(t));
    pq.set(tweak, BLOCK);
    this.state = ff1.cbcMac(pq.subarray(0, pq.length - BLOCK));
    this.lastBlock = pq.subarray(pq.length - BLOCK);
  }

  /** The last block of P ‖ Q for round i and the half NUM(B) (or NUM(A) decrypting), XORed with the head's state. */
  block(i: number, half: number, into: Uint8Array, at: number): void {
    const { b } = this.ff1.shape;
    into.set(this.lastBlock, at);
    into[at + BLOCK - b - 1] = i;
    for (let k = 0, value = half; k < b; k++, value = Math.floor(value / 256)) into[at + BLOCK - 1 - k] = value % 256;
    for (let k = 0; k < BLOCK; k++) into[at + k] = into[at + k]! ^ this.state[k]!;
  }
}

/**
 * Algorithms 7 and 8 for each of `rounds` (one per tweak) over the same digits, in lockstep.
 * Algorithm 7 carries (A, B) forward; Algorithm 8 runs the rounds backwards from (B, A).
 */
function feistel(ff1: Ff1, rounds: readonly Rounds[], digits: readonly number[], decrypt: boolean): number[][] {
  const { radix, bitsPerDigit, length, u, v, b } = ff1.shape;
  // d = 4·⌈b/4⌉ + 4 bytes of R are S (d ≤ 16 here: no extra blocks); its last four are the low 32
  // bits of y, the only ones y mod radix^m needs.
  const yAt = 4 * Math.ceil(b / 4);
  const count = rounds.length;
  const as = new Array<number>(count).fill(num(digits, 0, u, bitsPerDigit));
  const bs = new Array<number>(count).fill(num(digits, u, length, bitsPerDigit));
  const blocks = new Uint8Array(count * BLOCK);
  for (let step = 0; step < ROUNDS; step++) {
    const i = decrypt ? ROUNDS - 1 - step : step;
    const m = i % 2 === 0 ? u : v;
    const modulus = 2 ** (m * bitsPerDigit);
    for (let n = 0; n < count; n++) rounds[n]!.block(i, decrypt ? as[n]! : bs[n]!, blocks, n * BLOCK);
    const r = ff1.encryptBlocks(blocks);
    for (let n = 0; n < count; n++) {
      const y = r.readUInt32BE(n * BLOCK + yAt) % modulus;
      const a = as[n]!;
      const bValue = bs[n]!;
      if (decrypt) {
        as[n] = (((bValue - y) % modulus) + modulus) % modulus;
        bs[n] = a;
      } else {
        as[n] = bValue;
        bs[n] = (a + y) % modulus;
      }
    }
  }
  return as.map((a, n) => {
    const out = new Array<number>(length);
    str(a, u, radix, out, 0);
    str(bs[n]!, v, radix, out, u);
    return out;
  });
}
