/**
 * Secrets at rest: every value in the `secrets` sublevel is sealed with XChaCha20-Poly1305
 * under a key derived from the device key, which lives outside the database (device-key.ts).
 * A copy of the database without that file reveals no PIN and no key.
 *
 * - The associated data is the record's key, so a sealed value moved to another record (say,
 *   the Owner's app key pasted over a user's) no longer opens.
 * - Nonces are random: 24 bytes make a collision negligible for any number of writes a hub makes.
 * - The cipher key is derived with HKDF rather than being the device key itself, so anything
 *   else ever sealed under the device key gets its own key.
 * - A record that does not open (another device key, a damaged or altered record) is an
 *   IqError `secret_unreadable`, never a crash: the request that needed it gets that error code.
 */
import { openWithKey, sealWithKey } from "../provisioning/crypto/command-seal.js";
import { abytes, bytesToUtf8, utf8ToBytes } from "@noble/ciphers/utils.js";
import { hkdf } from "@noble/hashes/hkdf.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { DEVICE_KEY_BYTES } from "./device-key.js";
import { IqError } from "./errors.js";
import type { Store, StoreOp } from "./store.js";

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type SecretValue = Uint8Array | Json;

/** What the sublevel holds per secret: base64 of nonce ‖ ciphertext ‖ tag, and the format. */
interface SealedRecord {
  v: 1;
  sealed: string;
}

const KEY_INFO = utf8ToBytes("iq-hub secret store v1");
/** The first plaintext byte says how to give the value back. */
const KIND = { bytes: 0, json: 1 } as const;

/** Opened secrets kept at most (a site has a few dozen users and apps; past it the cache starts over). */
const MAX_OPENED = 4_096;

export class SecretStore {
  private readonly key: Uint8Array;
  private closed = false;
  /**
   * Opened secrets by record key, for the reads every request makes (its app, its user's PIN):
   * each costs a LevelDB read and a decryption. Creating a write's op drops the entry, and the
   * caller commits that op before anything reads the key again (the handler runs one request at a
   * time). Copies go out, so no caller can change what is cached.
   */
  private readonly opened = new Map<string, SecretValue>();

  /** Keeps no reference to `deviceKey`: the caller may zero it afterwards. */
  constructor(
    private readonly store: Store,
    deviceKey: Uint8Array,
  ) {
    abytes(deviceKey, DEVICE_KEY_BYTES, "device key");
    this.key = hkdf(sha256, deviceKey, undefined, KEY_INFO, 32);
  }

  async get(key: string): Promise<SecretValue | undefined> {
    const cached = this.opened.get(checkRecordKey(key));
    if (cached !== undefined) return structuredClone(cached);
    const record = await this.store.get("secrets", key);
    if (record === undefined) return undefined;
    const value = this.open(key, record);
    if (this.opened.size >= MAX_OPENED) this.opened.clear();
    this.opened.set(key, value);
    return structuredClone(value);
  }

  /** For secrets that are keys: anything else stored under `key` is a bug, not a user error. */
  async getBytes(key: string): Promise<Uint8Array | undefined> {
    const value = await this.get(key);
    if (value === undefined || value instanceof Uint8Array) return value;
    throw new TypeError(`the secret "${key}" holds JSON, not bytes`);
  }

  async put(key: string, value: SecretValue): Promise<void> {
    await this.putMany([[key, value]]);
  }

  /** Several secrets at once, atomically and synced. */
  async putMany(entries: Iterable<readonly [string, SecretValue]>): Promise<void> {
    await this.store.commit(Array.from(entries, ([key, value]) => this.sealOp(key, value)));
  }

  async del(key: string): Promise<void> {
    await this.store.commit([this.delOp(key)]);
  }

  /** A sealed write, to commit in one batch with plain records (a user and their app key). */
  sealOp(key: string, value: SecretValue): StoreOp {
    this.opened.delete(checkRecordKey(key));
    const plaintext = encode(value);
    try {
      const box = sealWithKey({ key: this.cipherKey(), ad: utf8ToBytes(key), payload: plaintext });
      const record: SealedRecord = { v: 1, sealed: Buffer.from(box).toString("base64") };
      return { type: "put", in: "secrets", key, value: record };
    } finally {
      plaintext.fill(0);
    }
  }

  delOp(key: string): StoreOp {
    this.opened.delete(checkRecordKey(key));
    return { type: "del", in: "secrets", key };
  }

  /** Zeroes the cipher key; the Store stays open (it belongs to the caller). */
  close(): void {
    this.key.fill(0);
    this.opened.clear();
    this.closed = true;
  }

  private open(key: string, record: unknown): SecretValue {
    const cipherKey = this.cipherKey();
    let plaintext: Uint8Array | undefined;
    try {
      const box = new Uint8Array(Buffer.from(parseRecord(record).sealed, "base64"));
      plaintext = openWithKey({ key: cipherKey, ad: utf8ToBytes(key), box });
      return decode(plaintext);
    } catch {
      throw new IqError(
        "secret_unreadable",
        `the secret "${key}" cannot be opened: it was sealed under another device key, or the record is damaged`,
        { key },
      );
    } finally {
      plaintext?.fill(0);
    }
  }

  /** Sealing under a zeroed key would look like success: a closed store refuses instead. */
  private cipherKey(): Uint8Array {
    if (this.closed) throw new Error("the SecretStore is closed: its key has been zeroed");
    return this.key;
  }
}

function encode(value: SecretValue): Uint8Array {
  if (value instanceof Uint8Array) return withKind(KIND.bytes, value);
  // JSON.stringify returns undefined for values JSON cannot hold (undefined, functions).
  const text = JSON.stringify(value) as string | undefined;
  if (text === undefined) throw new TypeError("a secret is a Uint8Array or a JSON value");
  const json = utf8ToBytes(text);
  try {
    return withKind(KIND.json, json);
  } finally {
    json.fill(0);
  }
}

function withKind(kind: number, body: Uint8Array): Uint8Array {
  const plaintext = new Uint8Array(1 + body.length);
  plaintext[0] = kind;
  plaintext.set(body, 1);
  return plaintext;
}

/** Copies out of `plaintext`, which the caller zeroes. */
function decode(plaintext: Uint8Array): SecretValue {
  const body = plaintext.subarray(1);
  switch (plaintext[0]) {
    case KIND.bytes:
      return body.slice();
    case KIND.json:
      return JSON.parse(bytesToUtf8(body)) as Json;
    default:
      throw new Error("unknown kind");
  }
}

function parseRecord(record: unknown): SealedRecord {
  const r = record as Partial<SealedRecord> | null;
  if (r?.v !== 1 || typeof r.sealed !== "string") throw new Error("not a sealed record");
  return r as SealedRecord;
}

function checkRecordKey(key: string): string {
  if (typeof key !== "string" || key.length === 0 || key.length > 256) {
    throw new TypeError("a secret's key is a string of 1 to 256 characters");
  }
  return key;
}
