/**
 * The hub's persistent state: one LevelDB, opened once at start and closed on exit, divided into
 * sublevels with one job each. Values are JSON. Writes that must survive a power cut (events,
 * secrets, counters) use `sync: true` so they are on disk before the hub acts on them.
 *
 * A write that fails (the disk is full, the file system went read-only) is a `storage_failed`
 * IqError: a batch is atomic, so nothing of it landed, and every caller acts only after its write
 * (the door moves after its event), so nothing acted on it either. The client is told so with a
 * stable code rather than `internal_error`, and the hub's listener logs it.
 *
 * After such a failure LevelDB must not append to the same log again: its log writer has counted
 * the failed record as written, so every later record is misaligned and dropped when the log is
 * replayed at the next start (measured: an opening acknowledged after a full disk was freed was
 * gone after a restart). So the store refuses writes until it has reopened the database, which
 * replays the log and starts a new one, and it tries that only once there is room for it.
 *
 * Every write to a protected sublevel goes through `commit`, which updates the integrity seal
 * (store-seal.ts) in the same batch; `protect` checks the whole seal at start. Commits are
 * serialised, since each seal update reads what the previous one wrote.
 */
import { mkdirSync } from "node:fs";
import { statfs } from "node:fs/promises";
import { join, resolve } from "node:path";
import { Level } from "level";
import { IqError } from "./errors.js";
import { emptyDigest, StoreSealKeys, type SealRecord, type SublevelDigest } from "./store-seal.js";

type Json = unknown;
export type Sublevel = ReturnType<Level<string, Json>["sublevel"]>;
/** What callers may do with a sublevel directly: read. Writes go through `commit`. */
export type ReadOnlySublevel = Pick<Sublevel, "get" | "getMany" | "getSync" | "keys" | "values" | "iterator">;

/** Names of the sublevels; factory reset wipes those not listed in KEPT_ON_RESET. */
export const SUBLEVELS = ["meta", "secrets", "users", "apps", "events", "outbox", "lockout", "webbudget", "seal"] as const;
export type SublevelName = (typeof SUBLEVELS)[number];

/**
 * The sublevels under the integrity seal: everything that decides who may open the door and how
 * often they may guess. Not the audit trail (`events`, `outbox`): it outlives a factory reset,
 * and so the device key (see docs/security.md, Keys at rest).
 */
export const PROTECTED = ["meta", "secrets", "users", "apps", "lockout", "webbudget"] as const satisfies readonly SublevelName[];
type ProtectedName = (typeof PROTECTED)[number];
/** Sublevels whose records may be dropped without a seal update. */
type UnsealedName = "events" | "outbox";

const SEAL_KEY = "set";

/**
 * The audit trail and its outbox outlive a factory reset: the reset itself is an event, and
 * the sequence must stay gap-free for subscribers. They hold no secret (Codes never appear).
 */
export const KEPT_ON_RESET: readonly SublevelName[] = ["events", "outbox"];

const SYNC = { sync: true } as const;

/**
 * LevelDB's memory, sized for a Pi Zero (512 MB for everything). The defaults (8 MB block cache,
 * 4 MB memtable) were filled and kept resident after a few thousand openings. A request reads a
 * handful of small records, mostly still in the memtable; a block missing from the cache comes
 * from the kernel's page cache for a read and a Snappy decompression (microseconds), so a 512 KiB
 * cache costs nothing measurable, even with 10,000 users (validate_ratio_10k_vs_10_users). A
 * 512 KiB memtable is written out every few hundred openings, in LevelDB's background thread. With
 * 2 MiB and 1 MiB the hub's RSS still climbed by 2–3 MiB between its 5,000th and 10,000th opening
 * (it levels off by the 12,000th); with these, by 0.4–1.5 MiB (docs/performance.md).
 */
const LEVELDB_MEMORY = { cacheSize: 512 * 1024, writeBufferSize: 512 * 1024 } as const;

/**
 * Free space needed before the store reopens after a failed write: reopening writes the replayed
 * log out as a table and starts a new log and manifest. LevelDB's write buffer is 4 MiB, but the
 * hub's log between two opens is a few hundred KiB at most (events are small and trimmed).
 */
export const REOPEN_MIN_FREE_BYTES = 1024 * 1024;

export type StoreOp =
  | { type: "put"; in: SublevelName; key: string; value: Json }
  | { type: "del"; in: SublevelName; key: string };

/** Told of every failed write, with LevelDB's own error (which names the file and the errno). */
export type WriteFailureListener = (error: unknown) => void;

export class Store {
  /** The seal's keys, the current digests and the stored seal, once `protect` has checked them. */
  private sealing: { keys: StoreSealKeys; digests: Map<string, SublevelDigest>; record: SealRecord } | undefined;
  private writes: Promise<unknown> = Promise.resolve();
  private writeFailure: WriteFailureListener | undefined;
  /** A write failed: nothing more is written through this handle of the database (see above). */
  private reopenNeeded = false;

  private constructor(
    private readonly db: Level<string, Json>,
    readonly dir: string,
    private readonly levels: Record<SublevelName, Sublevel>,
  ) {}

  /** Opens (creating if needed) the database under `<stateDir>/db`. */
  static async open(stateDir: string): Promise<Store> {
    const dir = join(stateDir, "db");
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const db = new Level<string, Json>(dir, { valueEncoding: "json", ...LEVELDB_MEMORY });
    try {
      await db.open();
    } catch (err) {
      const cause = (err as { cause?: NodeJS.ErrnoException }).cause;
      // LevelDB's lock file: another process (a second `npm start`, or the service) has this store open.
      if (cause?.code === "LEVEL_LOCKED") {
        throw new IqError(
          "hub_already_running",
          `a hub is already running with this state dir (${resolve(stateDir)}): stop it first, or give this one another stateDir`,
          { dir },
        );
      }
      throw new IqError("store_unavailable", `cannot open the store at ${dir}: ${cause?.message ?? (err as Error).message}`, { dir });
    }
    const levels = Object.fromEntries(
      SUBLEVELS.map((name) => [name, db.sublevel<string, Json>(name, { valueEncoding: "json" })]),
    ) as Record<SublevelName, Sublevel>;
    await openSublevels(levels);
    return new Store(db, dir, levels);
  }

  sublevel(name: SublevelName): ReadOnlySublevel {
    return this.levels[name];
  }

  /** One listener (the hub's log); a later call replaces it. */
  onWriteFailure(listener: WriteFailureListener): void {
    this.writeFailure = listener;
  }

  /**
   * Checks every protected record against the seal made under `deviceKey` (a fresh store gets an
   * empty seal), and from then on keeps the seal with every write. Throws `store_tampered`,
   * naming what differs, when the records are not what the hub last wrote.
   */
  async protect(deviceKey: Uint8Array): Promise<{ records: number }> {
    const keys = new StoreSealKeys(deviceKey);
    const digests = new Map<string, SublevelDigest>();
    for (const name of PROTECTED) {
      const digest = emptyDigest();
      const records = this.levels[name].iterator({ valueEncoding: "utf8" });
      try {
        // In chunks: one promise per record would cost more than the HMAC (10,000 users).
        for (let chunk = await records.nextv(1_000); chunk.length > 0; chunk = await records.nextv(1_000)) {
          for (const [key, value] of chunk) keys.toggle(digest, name, String(key), value as string, 1);
        }
      } finally {
        await records.close();
      }
      digests.set(name, digest);
    }
    const records = [...digests.values()].reduce((total, d) => total + d.count, 0);
    const stored = await this.levels.seal.get(SEAL_KEY);
    const record = keys.seal(digests);
    if (stored === undefined && records === 0) {
      await this.writing(() => this.db.batch([{ type: "put", sublevel: this.levels.seal, key: SEAL_KEY, value: record }], SYNC));
    } else {
      const findings = keys.differences(digests, stored);
      if (findings.length > 0) throw tampered(this.dir, findings);
    }
    this.sealing = { keys, digests, record };
    return { records };
  }

  /** Writes and deletes across sublevels, atomically and synced to disk with the seal's update; all or nothing. */
  commit(ops: readonly StoreOp[]): Promise<void> {
    const result = this.writes.then(() => this.write(ops));
    this.writes = result.catch(() => undefined);
    return result;
  }

  /**
   * Read synchronously: the records read per request (a user, a lockout) are small and sit in
   * LevelDB's memtable or block cache, so the read takes microseconds, while an asynchronous read
   * is a round trip through libuv's thread pool that cost an opening about 0.2 ms of CPU and two
   * thread wake-ups (docs/performance.md). Still a promise: callers need not know, and a failed
   * read rejects like an asynchronous one.
   */
  async get<T>(name: SublevelName, key: string): Promise<T | undefined> {
    // A reopen that failed halfway left the database closed: every request's first read retries it.
    if (this.reopenNeeded && this.db.status === "closed") await this.reopen();
    return this.levels[name].getSync(key) as T | undefined;
  }

  async put(name: SublevelName, key: string, value: Json): Promise<void> {
    await this.commit([{ type: "put", in: name, key, value }]);
  }

  async del(name: SublevelName, key: string): Promise<void> {
    await this.commit([{ type: "del", in: name, key }]);
  }

  /**
   * Deletes that may be lost in a power cut, for bookkeeping whose loss only repeats work:
   * acknowledged events leaving the outbox (lost, they are published once more; subscribers dedupe
   * by seq). No fsync to compete with the next request's.
   */
  async forget(name: UnsealedName, keys: readonly string[]): Promise<void> {
    await this.writing(() => this.db.batch(keys.map((key) => ({ type: "del" as const, sublevel: this.levels[name], key }))));
  }

  /** Deletes a range of keys (trimming the audit log): several batches, each atomic. */
  async clearRange(name: UnsealedName, range: { lte: string }): Promise<void> {
    await this.writing(() => this.levels[name].clear(range));
  }

  /** Whether anything the seal would cover is on disk: a store, not a fresh directory. */
  async holdsProtected(): Promise<boolean> {
    for (const name of [...PROTECTED, "seal" as const]) {
      if ((await this.levels[name].keys({ limit: 1 }).all()).length > 0) return true;
    }
    return false;
  }

  /**
   * Throws `storage_failed` unless writes go through now (after a failed write: once reopened).
   * For a check whose failure must be written, before it is made: a wrong PIN that could not be
   * counted must not be told apart from a right one.
   */
  async requireWritable(): Promise<void> {
    if (this.reopenNeeded && !(await this.reopen())) throw this.storageFailed();
  }

  private async writing(write: () => Promise<void>): Promise<void> {
    await this.requireWritable();
    try {
      await write();
    } catch (error) {
      // Closing under a write is a shutdown, not a disk problem: let it pass as it is.
      if (this.db.status !== "open") throw error;
      this.reopenNeeded = true;
      this.writeFailure?.(error);
      throw this.storageFailed();
    }
  }

  /** Reopens the database once there is room (true: writable again). */
  private async reopen(): Promise<boolean> {
    const { bavail, bsize } = await statfs(this.dir);
    if (bavail * bsize < REOPEN_MIN_FREE_BYTES) return false;
    try {
      if (this.db.status === "open") await this.db.close();
      await this.db.open();
      await openSublevels(this.levels);
    } catch (error) {
      this.writeFailure?.(error);
      return false;
    }
    this.reopenNeeded = false;
    return true;
  }

  private storageFailed(): IqError {
    return new IqError("storage_failed", "the IQ cannot write to its storage (disk full or read-only?): nothing was done; its log has the details", { dir: this.dir });
  }

  /**
   * Wipes every sublevel but the audit trail: the store half of a factory reset. The seal goes
   * with them; the next `protect`, under the new device key, starts an empty one.
   */
  async wipeForReset(): Promise<void> {
    await this.writes;
    this.sealing = undefined;
    for (const name of SUBLEVELS) {
      if (!KEPT_ON_RESET.includes(name)) await this.writing(() => this.levels[name].clear());
    }
  }

  async close(): Promise<void> {
    if (this.db.status === "open" || this.db.status === "opening") await this.db.close();
  }

  /**
   * One batch: the ops, each JSON value as the exact text the seal covers, and the new seal. The
   * seal in memory changes only once the batch is on disk.
   */
  private async write(ops: readonly StoreOp[]): Promise<void> {
    const sealed = ops.filter((op): op is StoreOp & { in: ProtectedName } => isProtected(op.in));
    // Reopened first if a write failed before: the seal's update reads the records it replaces.
    await this.requireWritable();
    const update = sealed.length > 0 ? this.sealUpdate(sealed) : undefined;
    const batch = ops.map((op) =>
      op.type === "put"
        ? { type: "put" as const, sublevel: this.levels[op.in], key: op.key, value: JSON.stringify(op.value), valueEncoding: "utf8" }
        : { type: "del" as const, sublevel: this.levels[op.in], key: op.key },
    );
    if (update !== undefined) {
      batch.push({ type: "put", sublevel: this.levels.seal, key: SEAL_KEY, value: JSON.stringify(update.record), valueEncoding: "utf8" });
    }
    await this.writing(() => this.db.batch(batch, SYNC));
    if (update === undefined) return;
    for (const [name, digest] of update.changed) update.sealing.digests.set(name, digest);
    update.sealing.record = update.record;
  }

  /**
   * The new digests of the sublevels `ops` touch (each touched record's old value out, its final
   * value in) and the seal record that goes with them.
   */
  private sealUpdate(ops: readonly (StoreOp & { in: ProtectedName })[]) {
    const sealing = this.sealing;
    if (sealing === undefined) {
      throw new Error(`a write to ${ops[0]!.in} before the store was unlocked with the device key (Store.protect)`);
    }
    // The final value of each touched record (undefined: deleted); a later op on a key wins.
    const touched = new Map<ProtectedName, Map<string, string | undefined>>();
    for (const op of ops) {
      const records = touched.get(op.in) ?? touched.set(op.in, new Map()).get(op.in)!;
      records.set(op.key, op.type === "put" ? JSON.stringify(op.value) : undefined);
    }
    const changed = new Map<string, SublevelDigest>();
    for (const [name, records] of touched) {
      const { count, digest: current } = sealing.digests.get(name)!;
      const digest = { count, digest: current.slice() };
      changed.set(name, digest);
      for (const [key, value] of records) {
        // Read synchronously, as `get` reads (see there): the old value sits in the memtable or cache.
        const old = this.levels[name].getSync<string, string>(key, { valueEncoding: "utf8" });
        if (old !== undefined) sealing.keys.toggle(digest, name, key, old, -1);
        if (value !== undefined) sealing.keys.toggle(digest, name, key, value, 1);
      }
    }
    return { sealing, changed, record: sealing.keys.seal(changed, sealing.record) };
  }
}

/** A sublevel opens itself a tick after its database; get() reads synchronously and must not find it still opening. */
async function openSublevels(levels: Record<SublevelName, Sublevel>): Promise<void> {
  await Promise.all(Object.values(levels).map((level) => level.open()));
}

function isProtected(name: SublevelName): name is ProtectedName {
  return (PROTECTED as readonly string[]).includes(name);
}

function tampered(dir: string, findings: string[]): IqError {
  return new IqError(
    "store_tampered",
    `the store ${dir} does not match its integrity seal: ${findings.join("; ")}. Someone changed it without the ` +
      `device key, or device.key is not this store's. The hub will not start on it. Fix: restore the state directory ` +
      `(db/ together with device.key) from a backup, or start over: stop the hub, delete db/ and device.key, start it, ` +
      `claim the IQ again and push the Owner's backup back (iq restore)`,
    { dir, findings },
  );
}
