/**
 * The paths a person waits for, on one claimed IQ through the run's broker: activations, app
 * openings with the PIN and remote openings with a Code via the paired web relay — and the hub's
 * memory over 10,000 app openings, which are the same ones that give app_open_rtt_ms.
 *
 * The IQ checks web Codes at 20 in a burst then 1 a second (commands.ts, WEB_CODE_RATE), and a user
 * makes 2 Codes a minute: so many users each pass on two Codes, and the remote openings are slipped
 * in between the app openings whenever the IQ has a token for one (one at a time, never at once),
 * instead of idling a second before each.
 */
import { RateLimiter } from "../firmware/rate-limit.js";
import type { Floors } from "./floors.js";
import { percentiles, sleep, type Results } from "./measure.js";
import { IQ_ID, type ActivatedUser, type Site } from "./site.js";
import type { TimedApp } from "./stopwatch.js";

/** Users activated (each a timed activation), each passing on 2 Codes through the relay. */
const USERS = 60;
const CODES_PER_USER = 2;
const APP_OPENS = 10_000;
const WARMUP = 100;
/** RSS is read after this many timed openings too: the growth between it and the end. */
const RSS_MIDPOINT = APP_OPENS / 2;
/**
 * The bench's copy of the IQ's web Code bucket, a little slower to refill than the IQ's (20, then
 * 1/s) so that the IQ always has the token the bench thinks it has: a refused Code fails the run.
 */
const WEB_CODE_MIRROR = { capacity: 20, refillPerSecond: 0.9 };
const PACE_MS = 100;
/** The floors are sampled after every this many app openings (1,000 samples of each). */
const FLOOR_EVERY = 10;

/** After the IQ is claimed: USERS activations, timed as the app sees them. */
async function activateUsers(site: Site, results: Results): Promise<ActivatedUser[]> {
  const users: ActivatedUser[] = [];
  for (let i = 0; i < USERS; i++) users.push(await site.addActivatedUser(`user-${i}`));
  results.set("activation_ms", percentiles(users.map((user) => user.activationMs)));
  return users;
}

/** The relay's Codes to pass on, two per user, each made just before it is sent (Codes live ~3 minutes). */
function remoteOpenings(users: readonly ActivatedUser[]) {
  const queue = users.flatMap((user) => Array.from({ length: CODES_PER_USER }, () => user));
  const bucket = new RateLimiter(Date.now, WEB_CODE_MIRROR);
  const samples: number[] = [];
  return {
    samples,
    get left(): number {
      return queue.length;
    },
    /** Passes on one Code if the IQ has a token for it; true when it did. */
    async tryOne(relay: TimedApp): Promise<boolean> {
      if (queue.length === 0 || !bucket.take()) return false;
      const user = queue.shift()!;
      const { code } = await user.phone.app.code({ iqId: IQ_ID, pin: user.pin });
      samples.push(await relay.webOpen(IQ_ID, user.userId, code));
      return true;
    },
  };
}

/**
 * Activations, then 10,000 app openings with the remote openings and the floors slipped in
 * between them; returns the measuring user for what follows.
 */
export async function measureOpenings(site: Site, floors: Floors, results: Results): Promise<ActivatedUser> {
  const users = await activateUsers(site, results);
  const relay = (await site.addActivatedUser("cloud", "relay")).phone;
  const remote = remoteOpenings(users);
  const me = users[0]!;
  for (let i = 0; i < WARMUP; i++) await me.phone.open(IQ_ID, me.pin);
  const appSamples: number[] = [];
  let rssMid = 0;
  while (appSamples.length < APP_OPENS) {
    appSamples.push(await me.phone.open(IQ_ID, me.pin));
    await remote.tryOne(relay);
    if (appSamples.length % FLOOR_EVERY === 0) await floors.sample();
    if (appSamples.length === RSS_MIDPOINT) rssMid = site.hub.rssMiB();
  }
  const rss = site.hub.rssMiB();
  results.set("app_open_rtt_ms", percentiles(appSamples));
  results.set("rss_mb", { value: rss, after_opens: APP_OPENS + WARMUP + remote.samples.length, at_5000: rssMid });
  results.set("rss_growth_mb", { value: rss - rssMid, from_opens: RSS_MIDPOINT, to_opens: APP_OPENS });
  // The Codes the app openings left no time for, each waiting for the IQ's next token.
  while (remote.left > 0) if (!(await remote.tryOne(relay))) await sleep(PACE_MS);
  results.set("remote_open_rtt_ms", { ...percentiles(remote.samples), users: USERS, codes_per_user: CODES_PER_USER });
  return me;
}
