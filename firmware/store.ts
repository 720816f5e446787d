/**
 * The hub's persistent state: one LevelDB, opened once at start and closed on exit, divided into
 * sublevels with one job each. Values are JSON. Writes that must survive a power cut (events,
 * secrets, counters) use `sync: true` so they are on disk before the hub acts on them.
 */
import { mkdirSync } from "node:fs";
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

export type StoreOp =
  | { type: "put"; in: SublevelName; key: string; value: Json }
  | { type: "del"; in: SublevelName; key: string };

export class Store {
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
    // A new sublevel opens itself a tick later; get() reads synchronously and must not find it still opening.
    await Promise.all(Object.values(levels).map((level) => level.open()));
    return new Store(db, dir, levels);
  }

  sublevel(name: SublevelName): Sublevel {
    return this.levels[name];
  }

  /** Writes and deletes across sublevels, atomically and synced to disk. */
  async commit(ops: readonly StoreOp[]): Promise<void> {
    await this.db.batch(
      ops.map((op) =>
        op.type === "put"
          ? { type: "put" as const, sublevel: this.levels[op.in], key: op.key, value: op.value }
          : { type: "del" as const, sublevel: this.levels[op.in], key: op.key },
      ),
      SYNC,
    );
  }

  /**
   * Read synchronously: the records read per request (a user, a lockout) are small and sit in
   * LevelDB's memtable or block cache, so the read takes microseconds, while an asynchronous read
   * is a round trip through libuv's thread pool that cost an opening about 0.2 ms of CPU and two
   * thread wake-ups (docs/performance.md). Still a promise: callers need not know, and a failed
   * read rejects like an asynchronous one.
   */
  get<T>(name: SublevelName, key: string): Promise<T | undefined> {
    return new Promise((resolve) => resolve(this.levels[name].getSync(key) as T | undefined));
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
    await this.db.batch(keys.map((key) => ({ type: "del" as const, sublevel: this.levels[name], key })));
  }

  /** Wipes every sublevel but the audit trail: the store half of a factory reset. */
  async wipeForReset(): Promise<void> {
    for (const name of SUBLEVELS) {
      if (!KEPT_ON_RESET.includes(name)) await this.levels[name].clear();
    }
  }

  async close(): Promise<void> {
    if (this.db.status === "open" || this.db.status === "opening") await this.db.close();
  }
}
