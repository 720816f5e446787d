/**
 * Does an opening slow down as the IQ fills up? App openings per second with about 10 users
 * stored, then with 10,000, on the same IQ. Adding 10,000 users through the broker would take
 * minutes (each is a sealed command, then an activation metered at 5 a second), so the hub is
 * stopped and its own state directory is filled in this process with the firmware's own classes —
 * Store, SecretStore under the IQ's device key, Users — on the paths the hub takes when the Owner
 * adds a user (Users.add) and the user's phone activates (Users.addApp): the records are exactly
 * the hub's. Then the same hub is started again on that state and timed again; a few web openings
 * through the relay, before and after, show whether a Code check (which reads all the user's apps)
 * feels the full store.
 */
import { randomBytes } from "node:crypto";
import { deviceKeyFile, readDeviceKey } from "../firmware/device-key.js";
import { SecretStore } from "../firmware/secret-store.js";
import { RpiOtpKeyTool } from "../hal/otp-key.js";
import { Store, type StoreOp } from "../firmware/store.js";
import { Users } from "../firmware/users.js";
import { durations, percentiles, progress, type Results } from "./measure.js";
import { IQ_ID, OWNER_PIN, type ActivatedUser, type Site } from "./site.js";
import type { TimedApp } from "./stopwatch.js";

/**
 * The Owner, the web relay, the measuring user and these: 10 users stored. Each passes on one
 * Code through the relay before the IQ fills up and one after: a Code check reads all the user's
 * apps, which is where a full IQ could show (a handful of samples: a p50 to look at, not judged).
 */
const OTHER_USERS = 7;
const STORED_USERS = 10_000;
const OPENS = 400;
const WARMUP = 50;
/** Users gathered into one synced batch (see fillState). */
const USERS_PER_BATCH = 500;

/** Sequential app openings per second, as the app sees them. */
async function opensPerSecond(user: ActivatedUser): Promise<number> {
  const samples = await durations(() => user.phone.open(IQ_ID, user.pin), OPENS, WARMUP);
  return (OPENS * 1000) / samples.reduce((sum, ms) => sum + ms, 0);
}

/** One stored user with one activated phone: the two writes the hub makes (user.add, then the activation). */
async function storeUser(users: Users, n: number): Promise<void> {
  const { user, initialPin } = await users.add(`stored-${n}`, "user");
  const key = () => randomBytes(32).toString("base64url");
  const app = { appId: `app-${randomBytes(9).toString("base64url")}`, userId: user.userId, codeKey: key(), messageKey: key(), codeCounter: 0, activatedAt: new Date().toISOString() };
  await users.addApp(app, { pin: initialPin, pending: true });
}

/**
 * The store as Users sees it, except that its synced batches are gathered instead of written:
 * the hub's records exactly, committed USERS_PER_BATCH users at a time by the caller, since one
 * fsync per write would make 10,000 users take a minute here.
 */
function gathering(store: Store): { store: Store; take(): StoreOp[] } {
  let ops: StoreOp[] = [];
  const commit = (batch: readonly StoreOp[]): Promise<void> => {
    ops.push(...batch);
    return Promise.resolve();
  };
  const gathered = new Proxy(store, {
    get: (target, property, receiver) => (property === "commit" ? commit : (Reflect.get(target, property, receiver) as unknown)),
  });
  return {
    store: gathered,
    take: () => {
      const taken = ops;
      ops = [];
      return taken;
    },
  };
}

/** Adds users to the stopped hub's state until it holds `total`. */
async function fillState(stateDir: string, total: number): Promise<void> {
  // As Hub.start opens its state: the device key (wrapped by the board's OTP key where there is
  // one), then the store's seal checked under it, so that the writes below keep the seal whole.
  const deviceKey = await readDeviceKey(deviceKeyFile(stateDir), await new RpiOtpKeyTool().read());
  if (deviceKey === undefined) throw new Error(`no device key in ${stateDir}: the hub was not claimed?`);
  const store = await Store.open(stateDir);
  let secrets: SecretStore | undefined;
  try {
    await store.protect(deviceKey);
    secrets = new SecretStore(store, deviceKey);
    deviceKey.fill(0);
    const batches = gathering(store);
    const users = new Users(batches.store, secrets);
    const started = performance.now();
    for (let n = (await users.list()).length; n < total; ) {
      const count = Math.min(USERS_PER_BATCH, total - n);
      for (let i = 0; i < count; i++) await storeUser(users, n + i);
      await store.commit(batches.take());
      n += count;
    }
    progress(`stored ${total} users in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  } finally {
    secrets?.close();
    await store.close();
  }
}

/** One web opening per user through the relay, each Code made just before it is passed on. */
async function remoteOpenings(relay: TimedApp, users: readonly ActivatedUser[]): Promise<number[]> {
  const samples: number[] = [];
  for (const user of users) {
    const { code } = await user.phone.app.code({ iqId: IQ_ID, pin: user.pin });
    samples.push(await relay.webOpen(IQ_ID, user.userId, code));
  }
  return samples;
}

export async function measureCapacity(site: Site, results: Results): Promise<void> {
  const owner = (await site.claimed()).app;
  const relay = (await site.addActivatedUser("cloud", "relay")).phone;
  const others: ActivatedUser[] = [];
  for (let i = 0; i < OTHER_USERS; i++) others.push(await site.addActivatedUser(`other-${i}`));
  const user = await site.addActivatedUser("measured");
  const few = (await owner.listUsers({ iqId: IQ_ID, pin: OWNER_PIN })).users.length;
  const withFew = await opensPerSecond(user);
  const remoteFew = percentiles(await remoteOpenings(relay, others));
  await site.restartHub((stateDir) => fillState(stateDir, STORED_USERS));
  const withMany = await opensPerSecond(user);
  const remoteMany = percentiles(await remoteOpenings(relay, others));
  results.set("validate_ratio_10k_vs_10_users", {
    value: withMany / withFew,
    opens_per_s_few: withFew,
    users_few: few,
    opens_per_s_many: withMany,
    users_many: STORED_USERS,
    opens_each: OPENS,
  });
  results.set("remote_open_10k_users_ms", { p50: remoteMany.p50, n: remoteMany.n, p50_with_10_users: remoteFew.p50 });
}
