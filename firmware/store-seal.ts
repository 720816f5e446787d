/**
 * The integrity seal of the store's plain records (issue 8 item 5): users, roles, lockouts, web
 * budgets, `meta` (claimed, last trusted time) and the sealed secrets (Code counters) carry no
 * secret, but editing them without the device key must not go unnoticed.
 *
 * What is kept: for each protected sublevel, the number of records and a set digest, the XOR of
 * HMAC(setKey, lv_cat(sublevel, key, value)) over its records. The digest is updated with every
 * write (Store.commit) and checked in full at start. It is never stored: only an HMAC of it
 * (under tagKey) is, per sublevel and over all of them, in the `seal` sublevel. So:
 * - an edit, a deletion, an insertion, or one record put back to an older, once valid value
 *   (a rolled-back counter) changes the digest, and nobody without the key can compute the
 *   stored tag that would match it;
 * - the key name is inside each summand, so values cannot be swapped between keys;
 * - the per-sublevel tags and counts only say *where* the difference is; the tag over all of
 *   them is what decides, so sublevels from two copies of the card cannot be mixed either.
 * Why not a MAC stored with each record: it detects edits only, not a deletion or a record put
 * back with its old MAC, and a stored per-record MAC would hand an attacker the summands. The
 * digest alone detects all four, at one HMAC per record at start.
 *
 * What it cannot detect: the whole of `db/` put back to an older copy (records and seal
 * together). That needs state outside the card (docs/security.md, Keys at rest).
 */
import { createHmac, createSecretKey, type KeyObject } from "node:crypto";
import { hkdf } from "@noble/hashes/hkdf.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { utf8ToBytes } from "@noble/hashes/utils.js";
import { lvCat } from "../provisioning/crypto/bytes.js";

const DIGEST_BYTES = 32;

/** One sublevel's part of the seal, in memory. */
export interface SublevelDigest {
  count: number;
  digest: Uint8Array;
}

/** What the `seal` sublevel holds (base64 tags); only the hub writes it. */
export interface SealRecord {
  v: 1;
  counts: Record<string, number>;
  tags: Record<string, string>;
  tag: string;
}

export const emptyDigest = (): SublevelDigest => ({ count: 0, digest: new Uint8Array(DIGEST_BYTES) });

export class StoreSealKeys {
  private readonly setKey: KeyObject;
  private readonly tagKey: KeyObject;

  /** Keeps no reference to `deviceKey`. Separate keys: a stored tag is never a summand. */
  constructor(deviceKey: Uint8Array) {
    this.setKey = createSecretKey(hkdf(sha256, deviceKey, undefined, utf8ToBytes("iq-hub/store-seal/set v1"), 32));
    this.tagKey = createSecretKey(hkdf(sha256, deviceKey, undefined, utf8ToBytes("iq-hub/store-seal/tag v1"), 32));
  }

  /**
   * Adds (or, being XOR, removes) one record's summand to `into`. `value`: the stored JSON text.
   * The input is sublevel, key and value, each after its length (not lvCat: at start this runs
   * once per record, and the strings go to the hash without being copied).
   */
  toggle(into: SublevelDigest, sublevel: string, key: string, value: string, delta: 1 | -1): void {
    const lengths = Buffer.alloc(12);
    lengths.writeUInt32BE(Buffer.byteLength(sublevel), 0);
    lengths.writeUInt32BE(Buffer.byteLength(key), 4);
    lengths.writeUInt32BE(Buffer.byteLength(value), 8);
    const summand = createHmac("sha256", this.setKey).update(lengths).update(sublevel).update(key).update(value).digest();
    for (let i = 0; i < DIGEST_BYTES; i++) into.digest[i]! ^= summand[i]!;
    into.count += delta;
  }

  /**
   * The record to store: `previous` with the tags of the `changed` sublevels made anew, and the
   * tag over all. A write touches one or two sublevels, so it recomputes only theirs.
   */
  seal(changed: ReadonlyMap<string, SublevelDigest>, previous?: SealRecord): SealRecord {
    const counts = { ...previous?.counts };
    const tags = { ...previous?.tags };
    for (const [name, { count, digest }] of changed) {
      counts[name] = count;
      tags[name] = this.tag(utf8ToBytes("sublevel"), utf8ToBytes(name), utf8ToBytes(String(count)), digest);
    }
    const all = Object.keys(tags)
      .sort()
      .map((name) => utf8ToBytes(`${name}=${tags[name]}`));
    return { v: 1, counts, tags, tag: this.tag(utf8ToBytes("all"), ...all) };
  }

  /**
   * What differs between the records found (`digests`) and the stored seal, one line per
   * finding; empty when they match.
   */
  differences(digests: ReadonlyMap<string, SublevelDigest>, stored: unknown): string[] {
    const expected = this.seal(digests);
    const seal = stored as Partial<SealRecord> | null | undefined;
    if (seal?.v !== 1 || typeof seal.tag !== "string" || typeof seal.counts !== "object" || typeof seal.tags !== "object") {
      return ["the seal record itself is missing or damaged"];
    }
    const findings: string[] = [];
    for (const [name, { count }] of digests) {
      if (seal.tags[name] === expected.tags[name]) continue;
      const sealed = seal.counts[name];
      if (typeof sealed !== "number" || sealed === count) {
        findings.push(`${name}: a record was changed, or put back to an older copy`);
      } else {
        const n = Math.abs(count - sealed);
        findings.push(`${name}: ${n} record${n === 1 ? "" : "s"} ${count < sealed ? "fewer than sealed (deleted)" : "more than sealed (added)"}`);
      }
    }
    if (findings.length === 0 && seal.tag !== expected.tag) findings.push("the seal record was altered");
    return findings;
  }

  private tag(...parts: Uint8Array[]): string {
    return createHmac("sha256", this.tagKey).update(lvCat(...parts)).digest("base64");
  }
}
