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
 */
import { mkdirSync } from "node:fs";
import { statfs } from "node:fs/promises";
import { join, resolve } from "node:path";
import { Level } from "level";
import { IqError } from "./errors.js";

type Json = unknown;
export type Sublevel = ReturnType<Level<string, Json>["sublevel"]>;

/** Names of the sublevels; factory reset wipes those not listed in KEPT_ON_RESET. */
export const SUBLEVELS = ["meta", "secrets", "users", "apps", "events", "outbox", "lockout", "webbudget"] as const;
export type SublevelName = (typeof SUBLEVELS)[number];

/**
 * The audit trail and its outbox outlive a factory reset: the reset itself is an event, and
 * the sequence must stay gap-free for subscribers. They hold no secret (Codes never appear).
 */
export const KEPT_ON_RESET: readonly SublevelName[] = ["events", "outbox"];

const SYNC = { sync: true } as const;

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
    const db = new Level<string, Json>(dir, { valueEncoding: "json" });
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

  sublevel(name: SublevelName): Sublevel {
    return this.levels[name];
  }

  /** One listener (the hub's log); a later call replaces it. */
  onWriteFailure(listener: WriteFailureListener): void {
    this.writeFailure = listener;
  }

  /** Writes and deletes across sublevels, atomically and synced to disk; all or nothing. */
  async commit(ops: readonly StoreOp[]): Promise<void> {
    await this.writing(() =>
      this.db.batch(
        ops.map((op) =>
          op.type === "put"
            ? { type: "put" as const, sublevel: this.levels[op.in], key: op.key, value: op.value }
            : { type: "del" as const, sublevel: this.levels[op.in], key: op.key },
        ),
        SYNC,
      ),
    );
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
  async forget(name: SublevelName, keys: readonly string[]): Promise<void> {
    await this.writing(() => this.db.batch(keys.map((key) => ({ type: "del" as const, sublevel: this.levels[name], key }))));
  }

  /** Deletes a range of keys (trimming the audit log): several batches, each atomic. */
  async clearRange(name: SublevelName, range: { lte: string }): Promise<void> {
    await this.writing(() => this.levels[name].clear(range));
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

  /** Wipes every sublevel but the audit trail: the store half of a factory reset. */
  async wipeForReset(): Promise<void> {
    for (const name of SUBLEVELS) {
      if (!KEPT_ON_RESET.includes(name)) await this.writing(() => this.levels[name].clear());
    }
  }

  async close(): Promise<void> {
    if (this.db.status === "open" || this.db.status === "opening") await this.db.close();
  }
}

/** A sublevel opens itself a tick after its database; get() reads synchronously and must not find it still opening. */
async function openSublevels(levels: Record<SublevelName, Sublevel>): Promise<void> {
  await Promise.all(Object.values(levels).map((level) => level.open()));
}
