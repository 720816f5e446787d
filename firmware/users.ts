/**
 * Users, their PINs and their activated apps on this IQ. Names and roles are plain records
 * (the `users` and `apps` sublevels only index who is who); everything secret — the PIN, the
 * app's keys and its counters — is sealed under the device key in the SecretStore, and a user
 * and their secrets are always written in one batch.
 */
import { randomBytes } from "node:crypto";
import type { Role } from "../provisioning/protocol/messages.js";
import { randomPin } from "../provisioning/pin-policy.js";
import { IqError } from "./errors.js";
import type { SecretStore } from "./secret-store.js";
import type { Store, StoreOp } from "./store.js";

export interface User {
  userId: string;
  name: string;
  role: Role;
  createdAt: string;
}

/** Sealed: the user's PIN, and whether it is a random one not yet used to activate an app. */
export type PinRecord = {
  pin: string;
  pending: boolean;
  /** When a random initial PIN was made (ms): it expires unused (docs/security.md). */
  issuedAt?: number;
};

/** Sealed: what the IQ knows of one activated app. */
// Type aliases, not interfaces: they must fit the SecretStore's JSON type.
export type AppRecord = {
  appId: string;
  userId: string;
  codeKey: string;
  messageKey: string;
  /** Last accepted Code counter. (Sealed commands need none: their freshness is a challenge.) */
  codeCounter: number;
  activatedAt: string;
};

export interface NewUser {
  user: User;
  /** The random initial PIN, shown once to whoever added the user. */
  initialPin: string;
}

const pinKey = (userId: string) => `pin:${userId}`;
const appKey = (appId: string) => `app:${appId}`;
/**
 * The `apps` index holds one record per user, under the user id: the ids of the user's apps. A
 * web Code is checked against each of its user's apps, so the index is read on every remote
 * opening; one record is a synchronous `get` (microseconds), where a range of `<userId>/<appId>`
 * keys needed LevelDB's iterator, a round trip through libuv's threads that cost 0.5–2 ms of a
 * remote opening here (docs/performance.md). Requests run one at a time (lanes.ts), so reading
 * the list and writing it back cannot interleave with another request's.
 */
export class Users {
  constructor(
    private readonly store: Store,
    private readonly secrets: SecretStore,
    private readonly now: () => number = Date.now,
  ) {}

  async get(userId: string): Promise<User | undefined> {
    return this.store.get<User>("users", userId);
  }

  async require(userId: string): Promise<User> {
    const user = await this.get(userId);
    if (user === undefined) throw new IqError("user_unknown", `no user ${userId} on this IQ`);
    return user;
  }

  async list(): Promise<User[]> {
    return (await this.store.sublevel("users").values().all()) as User[];
  }

  async pin(userId: string): Promise<PinRecord | undefined> {
    return (await this.secrets.get(pinKey(userId))) as PinRecord | undefined;
  }

  /** The ids of the user's activated apps. */
  async appIds(userId: string): Promise<string[]> {
    return (await this.store.get<string[]>("apps", userId)) ?? [];
  }

  async apps(userId: string): Promise<AppRecord[]> {
    const records = await Promise.all((await this.appIds(userId)).map((id) => this.app(id)));
    return records.filter((r): r is AppRecord => r !== undefined);
  }

  async app(appId: string): Promise<AppRecord | undefined> {
    return (await this.secrets.get(appKey(appId))) as AppRecord | undefined;
  }

  /** A new user with a random initial PIN (story 2), or the owner with the PIN they chose (story 1). */
  async add(name: string, role: Role, chosenPin?: string, extra: (user: User) => StoreOp[] = () => []): Promise<NewUser> {
    const user: User = { userId: `u-${randomBytes(6).toString("hex")}`, name, role, createdAt: this.isoNow() };
    const pin = chosenPin ?? randomPin();
    await this.store.commit([
      { type: "put", in: "users", key: user.userId, value: user },
      this.secrets.sealOp(pinKey(user.userId), this.pinRecord(pin, chosenPin === undefined)),
      ...extra(user),
    ]);
    return { user, initialPin: pin };
  }

  /** Restores a user from a backup under their old id, with a new random PIN. */
  async restore(user: Omit<User, "createdAt">): Promise<NewUser> {
    const restored: User = { ...user, createdAt: this.isoNow() };
    const pin = randomPin();
    await this.store.commit([
      { type: "put", in: "users", key: user.userId, value: restored },
      this.secrets.sealOp(pinKey(user.userId), this.pinRecord(pin, true)),
    ]);
    return { user: restored, initialPin: pin };
  }

  /** Removes the user, their PIN and every app they activated. */
  async remove(userId: string, extra: StoreOp[] = []): Promise<void> {
    const appIds = await this.appIds(userId);
    await this.store.commit([
      { type: "del", in: "users", key: userId },
      this.secrets.delOp(pinKey(userId)),
      ...this.appsDeleteOps(userId, appIds),
      ...extra,
    ]);
  }

  /** Owner's PIN reset (story 7): a new random PIN, and every app of the user forgotten. */
  async resetPin(userId: string, extra: StoreOp[] = []): Promise<string> {
    const appIds = await this.appIds(userId);
    const pin = randomPin();
    await this.store.commit([
      this.secrets.sealOp(pinKey(userId), this.pinRecord(pin, true)),
      ...this.appsDeleteOps(userId, appIds),
      ...extra,
    ]);
    return pin;
  }

  async changePin(userId: string, pin: string): Promise<void> {
    await this.secrets.put(pinKey(userId), this.pinRecord(pin, false));
  }

  /** Stores a newly activated app; an activation with the random PIN uses that PIN up. */
  async addApp(record: AppRecord, pinUsedUp: PinRecord | undefined): Promise<void> {
    await this.store.commit(this.appOps(record, pinUsedUp, await this.appIds(record.userId)));
  }

  /**
   * The writes that store an activated app beside the user's `current` apps, to commit alone or
   * with others (a claim, whose new Owner has none).
   */
  appOps(record: AppRecord, pinUsedUp: PinRecord | undefined, current: readonly string[] = []): StoreOp[] {
    return [
      { type: "put", in: "apps", key: record.userId, value: [...current, record.appId] },
      this.secrets.sealOp(appKey(record.appId), record),
      ...(pinUsedUp ? [this.secrets.sealOp(pinKey(record.userId), this.pinRecord(pinUsedUp.pin, false))] : []),
    ];
  }

  /** Persists an app's counters: called before acting on what they admitted, so nothing runs twice. */
  async saveApp(record: AppRecord): Promise<void> {
    await this.store.commit([this.saveAppOp(record)]);
  }

  /** The same write, to commit in one batch with the event of what it admitted. */
  saveAppOp(record: AppRecord): StoreOp {
    return this.secrets.sealOp(appKey(record.appId), record);
  }

  private appsDeleteOps(userId: string, appIds: readonly string[]): StoreOp[] {
    return [{ type: "del", in: "apps", key: userId }, ...appIds.map((id) => this.secrets.delOp(appKey(id)))];
  }

  /** A random initial PIN is pending (not yet used to activate) and dated, so that it expires. */
  private pinRecord(pin: string, pending: boolean): PinRecord {
    return pending ? { pin, pending, issuedAt: this.now() } : { pin, pending };
  }

  private isoNow(): string {
    return new Date(this.now()).toISOString();
  }
}
