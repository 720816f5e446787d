/**
 * The companion app: what the phone app and the web app do, one method per story of
 * shared/DESIGN.md, over a Requester (the MQTT client) and a Profile (the keys and counters).
 * The CLI is a thin shell around it; tests drive it directly with their own clock.
 *
 * - Pairing (stories 1, 3, 9): CPace with the app as initiator and first to confirm, then the
 *   per-app keys and, sealed under a key the profile never keeps, the IQ's public keys.
 * - Sealed commands (stories 2, 6, 7, 8, 9): `{op, args, pin, challenge}` sealed for this command
 *   alone against the IQ's static key; the answer carries the next challenge, kept beside the profile.
 * - Codes (stories 4, 7, 9): made here, offline, with the next Code counter, persisted before the
 *   Code is shown or sent.
 * - Web relay (story 5): a paired party of its own (role relay) that passes on what a person typed.
 * - Everything the IQ says is checked: signed by its identity key, or sealed for this request.
 *
 * PINs are parameters of the calls that need them and are never stored.
 */
import { z } from "zod";

import { createHash, randomBytes as nodeRandomBytes } from "node:crypto";
import { IqError } from "../../common/errors.js";
import { zeroize } from "../crypto/bytes.js";
import { CODE_PARAMS, generateCode, type CodePurpose } from "../crypto/code.js";
import { openWithKey, pairTransportKeys, sealCommand, sealWithKey } from "../crypto/command-seal.js";
import { cpaceFinish, cpaceStart, cpaceVerifyConfirm, deriveAppKeys } from "../crypto/cpace.js";
import { verifyDocument } from "../crypto/identity.js";
import { fromB64u, pairBoxAd, pairingCi, pairingPassword, toB64u, type PairKind } from "../pairing.js";
import { PIN_LENGTH, checkPin } from "../pin-policy.js";
import {
  EVENTS_PAGE,
  ROLES,
  backupSchema,
  commandArgs,
  pairResultBox,
  plainArgs,
  type Backup,
  type CommandOp,
  type PairFinishBox,
  type PlainOp,
  type Role,
} from "../protocol/messages.js";
import { topicsFor } from "../protocol/topics.js";
import { acceptSealed, acceptSigned, IqRefusal, parseResult } from "./answers.js";
import type { Requester } from "./client.js";
import { AppError } from "./errors.js";
import { BACKUPS_KEPT, type Activation, type KeptBackup, type Profile } from "./profile.js";

/** The lock a command addresses when none is named (the hub's default configuration has one). */
export const DEFAULT_LOCK = "door";
/** Codes for these purposes are bound to one lock (see CodeContext.lock). */
export const LOCK_PURPOSES: ReadonlySet<CodePurpose> = new Set(["open", "office_on", "office_off"]);

const role = z.enum(ROLES);
const pairStartResult = z.object({ share: z.string(), ticket: z.string() });
const pairFinishResult = z.object({ confirm: z.string(), box: z.string() });
const pairedAs = z.object({ userId: z.string(), role, name: z.string() });
const statusResult = z.object({
  iqId: z.string(),
  version: z.string(),
  phase: z.string(),
  state: z.string(),
  claimed: z.boolean(),
  claimWindowOpen: z.boolean(),
  /** null: the hub cannot tell on its machine. */
  clockSynced: z.boolean().nullable(),
  keyProtection: z.enum(["otp-wrapped", "file-only"]),
  locks: z.array(z.object({ name: z.string(), unlocked: z.boolean(), officeMode: z.boolean() })),
});
// Events keep every field the hub sends: a newer hub may add some, and the CLI prints them all.
const iqEvent = z.looseObject({ seq: z.number().int().min(1), at: z.string(), type: z.string() });
/** Each event comes signed: `{ signed, sig }`, checked one by one. */
const eventsResult = z.object({ events: z.array(z.unknown()) });
const newUser = z.object({ userId: z.string(), name: z.string(), role, initialPin: z.string() });
const userList = z.object({
  users: z.array(
    z.object({ userId: z.string(), name: z.string(), role, activated: z.boolean(), devices: z.number().int() }),
  ),
});
const pinResetResult = z.object({ userId: z.string(), initialPin: z.string() });
const restoreResult = z.object({
  users: z.array(newUser),
  /** Locks the backup names that this IQ does not have (configure them, then restore again). */
  missingLocks: z.array(z.string()).default([]),
});
const lockState = z.object({ lock: z.string(), officeMode: z.boolean() });
const anyResult = z.unknown();

export type PairedAs = z.infer<typeof pairedAs>;
export type IqStatus = z.infer<typeof statusResult>;
export type IqEvent = z.infer<typeof iqEvent>;
export type NewUser = z.infer<typeof newUser>;
export type UserList = z.infer<typeof userList>;
export type PinReset = z.infer<typeof pinResetResult>;
export type RestoreResult = z.infer<typeof restoreResult>;
export type LockState = z.infer<typeof lockState>;

export interface MadeCode {
  code: string;
  purpose: CodePurpose;
  counter: number;
  /** ms since the epoch after which the IQ no longer accepts it (if its clock agrees with ours). */
  validUntil: number;
}

export interface DiscoveredIq {
  iqId: string;
  /** `online` / `offline` from the retained availability topic, if the hub published one. */
  availability?: string;
  /** The retained state document, as the hub published it. */
  state?: unknown;
  /** True if the state's signature checked out against the identity key in this profile. */
  verified?: boolean;
}

export interface CompanionOptions {
  profile: Profile;
  client: Requester;
  /** The clock that dates Codes; tests pass their own. */
  now?: () => number;
}

/** The IQ and the PIN of the person at the app: what every sealed command needs (a relay has no PIN). */
interface AsUser {
  iqId: string;
  pin?: string;
}

const PIN_FORMAT = new RegExp(`^[0-9]{${PIN_LENGTH.min},${PIN_LENGTH.max}}$`);

/**
 * A PIN used to prove who one is only needs the right shape here (the IQ judges it); a PIN being
 * chosen goes through the full policy, so the app says no before anything is sent.
 */
function requirePinShape(pin: string | undefined): asserts pin is string {
  if (pin === undefined || !PIN_FORMAT.test(pin)) throw new AppError("pin_invalid", `a PIN is ${PIN_LENGTH.min} to ${PIN_LENGTH.max} digits (0-9)`);
}

function describeIssue(error: z.ZodError): string {
  const issue = error.issues[0];
  return issue === undefined ? "invalid" : `${issue.path.join(".") || "value"}: ${issue.message}`;
}

/** Checks arguments as the IQ will, so a typo is refused here with the same code. */
function checkArgs(schema: z.ZodType, op: string, args: Record<string, unknown>): void {
  const parsed = schema.safeParse(args);
  if (!parsed.success) throw new AppError("request_malformed", `${op}: ${describeIssue(parsed.error)}`);
}

/** What each pairing is called in messages. */
const PAIRING_NAMES: Record<PairKind, string> = { claim: "claim", activate: "activation", duplicate: "second-device activation" };

const WRONG_SECRET: Record<PairKind, string> = {
  claim: "wrong setup secret",
  activate: "wrong initial PIN",
  // pair_failed leaves the invitation standing (only a success uses it up): say so, or a person
  // makes a new Code for nothing, or gives up.
  duplicate:
    "wrong Code or PIN, or the Code has expired. The invitation still stands for the right Code and PIN until it expires (about 3 minutes after 'iq device invite'): try again, else make a new one with: iq device invite",
};

export class Companion {
  private readonly profile: Profile;
  private readonly client: Requester;
  private readonly now: () => number;

  constructor(options: CompanionOptions) {
    this.profile = options.profile;
    this.client = options.client;
    this.now = options.now ?? Date.now;
  }

  // ── Story 1: claim ────────────────────────────────────────────────────────────────────────

  /** Claims an unclaimed IQ inside its claim window; the person becomes its Owner with `pin`. */
  async claim(input: { iqId: string; setupSecret: string; name: string; pin: string }): Promise<PairedAs> {
    checkPin(input.pin);
    return await this.pair({
      kind: "claim",
      iqId: input.iqId,
      password: pairingPassword({ kind: "claim", setupSecret: input.setupSecret }),
      box: { name: input.name, pin: input.pin },
    });
  }

  // ── Story 2: users ────────────────────────────────────────────────────────────────────────

  /** Owner or Admin: the IQ creates the user and a random initial PIN to hand over in person. */
  addUser(input: AsUser & { name: string; role: Exclude<Role, "owner"> }): Promise<NewUser> {
    return this.command(input, "user.add", { name: input.name, role: input.role }, newUser);
  }

  async removeUser(input: AsUser & { userId: string }): Promise<void> {
    await this.command(input, "user.remove", { userId: input.userId }, anyResult);
  }

  listUsers(input: AsUser): Promise<UserList> {
    return this.command(input, "user.list", {}, userList);
  }

  /**
   * The user id for what a person typed: an id, or a name (any case) that only one user has. People
   * know names; the ids are the IQ's. Costs a user.list, so Owner or Admin.
   */
  async findUser(input: AsUser & { who: string }): Promise<string> {
    const { users } = await this.listUsers(input);
    if (users.some((u) => u.userId === input.who)) return input.who;
    const named = users.filter((u) => u.name.toLowerCase() === input.who.toLowerCase());
    if (named.length === 1) return named[0]!.userId;
    if (named.length === 0) {
      throw new AppError("user_unknown", `no user with the id or name ${input.who} on ${input.iqId} (iq user list shows them)`);
    }
    throw new AppError(
      "user_ambiguous",
      `${named.length} users are called ${input.who} on ${input.iqId}: ${named.map((u) => `${u.name} (${u.role}, ${u.userId})`).join(", ")}; give the user id`,
    );
  }

  // ── Story 3: activate, change the PIN ─────────────────────────────────────────────────────

  /** Activates this app for `userId` with the initial PIN the person who added them handed over. */
  async activate(input: { iqId: string; userId: string; pin: string }): Promise<PairedAs> {
    requirePinShape(input.pin);
    return await this.pair({
      kind: "activate",
      iqId: input.iqId,
      userId: input.userId,
      password: pairingPassword({ kind: "activate", pin: input.pin }),
      box: {},
    });
  }

  async changePin(input: AsUser & { newPin: string }): Promise<void> {
    checkPin(input.newPin);
    await this.command(input, "pin.change", { newPin: input.newPin }, anyResult);
  }

  // ── Story 4: Codes ────────────────────────────────────────────────────────────────────────

  /** Makes a Code offline, for opening by default; the counter is saved before it is returned. */
  code(input: AsUser & { purpose?: CodePurpose; lock?: string }): Promise<MadeCode> {
    const purpose = input.purpose ?? "open";
    return this.makeCode(input, purpose, LOCK_PURPOSES.has(purpose) ? (input.lock ?? DEFAULT_LOCK) : undefined);
  }

  // ── Story 5: the web app ──────────────────────────────────────────────────────────────────

  /** The Owner pairs a web relay: like a user, with an initial PIN the relay activates with once. */
  addRelay(input: AsUser & { name: string }): Promise<NewUser> {
    return this.command(input, "user.add", { name: input.name, role: "relay" }, newUser);
  }

  /** On the web relay's profile: passes on a person's Code (only a paired relay may). */
  async webOpen(input: { iqId: string; userId: string; code: string; lock?: string }): Promise<LockState> {
    await this.requireRelay(input.iqId);
    return this.command(input, "web.open", { userId: input.userId, lock: input.lock ?? DEFAULT_LOCK, code: input.code }, lockState);
  }

  async webOffice(input: { iqId: string; userId: string; code: string; on: boolean; lock?: string }): Promise<LockState> {
    await this.requireRelay(input.iqId);
    const args = { userId: input.userId, lock: input.lock ?? DEFAULT_LOCK, on: input.on, code: input.code };
    return this.command(input, "web.office", args, lockState);
  }

  private async requireRelay(iqId: string): Promise<void> {
    const entry = activeEntry((await this.profile.read()).iqs[iqId], iqId, this.profile.name);
    if (entry.role !== "relay") {
      throw new AppError(
        "not_relay",
        `profile ${this.profile.name} is ${entry.name} (${entry.role}) on ${iqId}, not a web relay: the Owner pairs one with 'iq relay add', and it activates in a profile of its own`,
      );
    }
  }

  // ── Story 6: open and Office Mode from the app ───────────────────────────────────────────

  open(input: AsUser & { lock?: string }): Promise<LockState> {
    return this.command(input, "open", { lock: input.lock ?? DEFAULT_LOCK }, lockState);
  }

  /**
   * Office Mode on or off. An `off` is sent again until the IQ acknowledges it (each try a new
   * request, so a lost answer is not taken for a lost command): a door left held open is the
   * failure that matters. Still unacknowledged, it is reported as what it is: the state is unknown.
   */
  async office(input: AsUser & { on: boolean; lock?: string }): Promise<LockState> {
    const args = { lock: input.lock ?? DEFAULT_LOCK, on: input.on };
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.command(input, "office", args, lockState);
      } catch (error) {
        if (input.on || !(error instanceof AppError && error.code === "no_answer")) throw error;
        if (attempt >= OFFICE_OFF_TRIES) {
          throw new AppError(
            "office_state_unknown",
            `IQ ${input.iqId} did not acknowledge Office Mode off after ${OFFICE_OFF_TRIES} tries: the state is unknown, the door may be held open. Check the door, then try again`,
          );
        }
      }
    }
  }

  // ── Story 7: the Owner resets a user's PIN ───────────────────────────────────────────────

  /** Authorised by a fresh owner_reset Code made from the Owner's PIN (`pin`). */
  async resetPin(input: AsUser & { userId: string }): Promise<PinReset> {
    const made = await this.makeCode(input, "owner_reset");
    return this.command(input, "pin.reset", { userId: input.userId, code: made.code }, pinResetResult);
  }

  // ── Story 8: backup before, restore after a factory reset ────────────────────────────────

  /**
   * Fetches the IQ's configuration and keeps it in the profile (newest last, earlier ones kept),
   * for restore after a reset. A backup with fewer users than the last one, which was never
   * restored, is refused unless `force`: that is what a backup made after a re-claim and before the
   * restore looks like, and the restore would then bring back nobody.
   */
  async backup(input: AsUser & { force?: boolean }): Promise<Backup> {
    const { backup } = await this.command(input, "backup", {}, z.object({ backup: backupSchema }));
    return this.profile.update((data) => {
      const kept = data.backups[input.iqId] ?? [];
      const last = kept.at(-1);
      if (input.force !== true && last !== undefined && !last.restored && backup.users.length < last.backup.users.length) {
        throw new AppError(
          "backup_would_shrink",
          `the last backup of ${input.iqId} in profile ${this.profile.name} (${last.backup.users.length} users, made ${last.backup.createdAt}) was never restored, and the IQ now has ${backup.users.length}. ` +
            "After a factory reset and a new claim, restore first (iq restore); if users were removed on purpose, pass --force (the earlier backup is kept too)",
        );
      }
      data.backups[input.iqId] = [...kept, { backup, restored: false }].slice(-BACKUPS_KEPT);
      return backup;
    });
  }

  /** The backups kept for `iqId`, oldest first. */
  async keptBackups(iqId: string): Promise<KeptBackup[]> {
    return (await this.profile.read()).backups[iqId] ?? [];
  }

  /** Pushes a backup (by default the newest kept for this IQ) to the newly claimed IQ; a kept one is then marked restored. */
  async restore(input: AsUser & { backup?: Backup }): Promise<RestoreResult> {
    const backup = input.backup ?? (await this.keptBackups(input.iqId)).at(-1)?.backup;
    if (backup === undefined) {
      throw new AppError(
        "backup_missing",
        `profile ${this.profile.name} has no backup of ${input.iqId}; a backup has to be made (iq backup) before a reset`,
      );
    }
    const restored = await this.command(input, "restore", { backup }, restoreResult);
    await this.profile.update((data) => {
      for (const kept of data.backups[input.iqId] ?? []) {
        if (JSON.stringify(kept.backup) === JSON.stringify(backup)) kept.restored = true;
      }
    });
    return restored;
  }

  // ── Story 9: a second device ─────────────────────────────────────────────────────────────

  /**
   * On the first device: makes a second_device Code, announces its counter to the IQ, and returns
   * the Code to type on the second device. The Code never travels; the IQ recomputes it.
   */
  async inviteDevice(input: AsUser): Promise<MadeCode> {
    const made = await this.makeCode(input, "second_device");
    await this.command(input, "device.invite", { counter: made.counter }, anyResult);
    return made;
  }

  /** On the second device: activates with the first device's Code and the user's PIN. */
  async joinAsDevice(input: { iqId: string; userId: string; code: string; pin: string }): Promise<PairedAs> {
    requirePinShape(input.pin);
    return await this.pair({
      kind: "duplicate",
      iqId: input.iqId,
      userId: input.userId,
      password: pairingPassword({ kind: "duplicate", code: input.code, pin: input.pin }),
      box: {},
    });
  }

  // ── Looking at an IQ ─────────────────────────────────────────────────────────────────────

  status(input: { iqId: string }): Promise<IqStatus> {
    return this.plain(input.iqId, "status", {}, statusResult);
  }

  async events(input: { iqId: string; afterSeq?: number; limit?: number }): Promise<IqEvent[]> {
    const args = { ...(input.afterSeq !== undefined && { afterSeq: input.afterSeq }), ...(input.limit !== undefined && { limit: input.limit }) };
    const { events } = await this.plain(input.iqId, "events.list", args, eventsResult);
    const identityKey = await this.identityKey(input.iqId);
    return events.flatMap((doc) => verifiedEvent(doc, input.iqId, identityKey) ?? []);
  }

  /**
   * Every event after `afterSeq`, in order and without gaps, then each new one as it happens:
   * live events come from the events topic, and whatever is missing before one (the backlog, or
   * what was published while the connection was down) is fetched with events.list first. An
   * event whose signature does not check out is dropped: a forged event can neither take a real
   * one's place nor make the follower skip it.
   * Resolves once the backlog is delivered, with the function that stops following.
   */
  async followEvents(input: {
    iqId: string;
    afterSeq?: number;
    onEvent: (event: IqEvent) => void;
    onError: (error: Error) => void;
  }): Promise<() => Promise<void>> {
    let last = input.afterSeq ?? 0;
    const identityKey = await this.identityKey(input.iqId);
    const deliver = (event: IqEvent): void => {
      if (event.seq <= last) return;
      last = event.seq;
      input.onEvent(event);
    };
    const catchUp = async (): Promise<void> => {
      for (;;) {
        const page = await this.events({ iqId: input.iqId, afterSeq: last, limit: EVENTS_PAGE.maxEvents });
        page.forEach(deliver);
        if (page.length === 0) return;
      }
    };
    // One queue, so live events and catch-up pages are delivered strictly in order.
    let queue: Promise<void> = Promise.resolve();
    const stop = await this.client.watch(topicsFor(input.iqId, this.client.topicPrefix).events, (_topic, payload) => {
      const event = verifiedEvent(parseJson(payload.toString("utf8")), input.iqId, identityKey);
      if (event === undefined) return;
      queue = queue
        .then(async () => {
          if (event.seq > last + 1) await catchUp();
          deliver(event);
        })
        .catch(input.onError);
    });
    const backlog = queue.then(catchUp);
    queue = backlog.catch(() => undefined);
    try {
      await backlog;
    } catch (error) {
      await stop();
      throw error;
    }
    return stop;
  }

  /**
   * The IQs on the broker: every retained state and availability seen within `waitMs`. A state
   * is marked verified when this profile knows the IQ's identity key and the signature checks out;
   * one that fails the check is not shown at all.
   */
  async discover(input: { waitMs: number }): Promise<DiscoveredIq[]> {
    const found = new Map<string, DiscoveredIq>();
    const known = (await this.profile.read()).iqs;
    const prefix = this.client.topicPrefix;
    const prefixLevels = prefix.split("/").length;
    const remember = (topic: string, payload: Buffer): void => {
      const levels = topic.split("/");
      const iqId = levels[prefixLevels];
      if (iqId === undefined) return;
      const entry = found.get(iqId) ?? { iqId };
      const text = payload.toString("utf8");
      if (levels[prefixLevels + 1] === "availability") entry.availability = text;
      else {
        const identity = known[iqId]?.identityKey;
        const doc = parseJson(text);
        try {
          entry.state = identity === undefined ? signedText(doc) : verifyDocument({ publicKey: fromB64u(identity), kind: "state", iqId, doc });
          entry.verified = identity !== undefined;
        } catch {
          return;
        }
      }
      found.set(iqId, entry);
    };
    const stops = await Promise.all([
      this.client.watch(`${prefix}/+/state`, remember),
      this.client.watch(`${prefix}/+/availability`, remember),
    ]);
    await new Promise((resolve) => setTimeout(resolve, input.waitMs));
    await Promise.all(stops.map((stop) => stop()));
    return [...found.values()].sort((a, b) => a.iqId.localeCompare(b.iqId));
  }

  /** Who this app is on the IQ, as the IQ sees it. */
  whoami(input: AsUser): Promise<PairedAs> {
    return this.command(input, "whoami", {}, pairedAs);
  }

  // ── The machinery ────────────────────────────────────────────────────────────────────────

  /**
   * A plain request. Its answer must be signed by the IQ's identity key, if this profile knows it.
   * Pairing runs take answers unverified (`verify: false`): a reset IQ has new keys, and the run's
   * key confirmation is what authenticates the outcome.
   */
  private async plain<T>(iqId: string, op: PlainOp, args: Record<string, unknown>, result: z.ZodType<T>, verify = true): Promise<T> {
    checkArgs(plainArgs[op], op, args);
    const requestId = newRequestId();
    const identityKey = verify ? await this.identityKey(iqId) : undefined;
    return this.client.request(iqId, { id: requestId, op, args }, acceptSigned({ iqId, requestId, op, identityKey, result }));
  }

  /** The IQ's identity key, if this profile has paired with it. */
  private async identityKey(iqId: string): Promise<Uint8Array | undefined> {
    const key = (await this.profile.read()).iqs[iqId]?.identityKey;
    return key === undefined ? undefined : fromB64u(key);
  }

  /**
   * One pairing run (claim, activate, duplicate), app = CPace initiator and first to confirm; on
   * success the new activation replaces any earlier one of this profile on the IQ. Each run gets a
   * new app id, so the IQ keeps nothing of an earlier one.
   */
  private async pair(input: {
    kind: PairKind;
    iqId: string;
    userId?: string;
    password: Uint8Array;
    box: PairFinishBox;
  }): Promise<PairedAs> {
    const { kind, iqId } = input;
    // One person and device per profile: pairing again would overwrite keys this profile still
    // uses on that IQ (an Owner's, say), with no way back but a factory reset. A claim succeeds
    // only on an unclaimed IQ, where the old keys are dead anyway (story 8: the owner claims again
    // from the profile that holds the backup); the same user activating again follows a PIN reset,
    // which killed the old keys too.
    const current = (await this.profile.read()).iqs[iqId];
    const overwrites =
      current?.activated === true && (kind === "duplicate" || (kind === "activate" && current.userId !== input.userId));
    if (overwrites) {
      zeroize(input.password);
      throw new AppError(
        "profile_in_use",
        `profile ${this.profile.name} is already ${current.name} (${current.role}) on ${iqId}: use another --profile for another person or device`,
      );
    }
    const appId = `app-${nodeRandomBytes(9).toString("base64url")}`;
    const sid = nodeRandomBytes(16);
    const reveal = nodeRandomBytes(16);
    const start = cpaceStart("initiator", { password: input.password, ci: pairingCi(kind, iqId, appId, input.userId), sid });
    zeroize(input.password);
    const startArgs = {
      kind,
      appId,
      ...(input.userId !== undefined && { userId: input.userId }),
      sid: toB64u(sid),
      share: toB64u(start.message),
      commit: createHash("sha256").update(reveal).digest("base64url"),
    };
    const started = await this.plain(iqId, "pair.start", startArgs, pairStartResult, false);
    const run = cpaceFinish(start, fromB64u(started.share, "share"));
    const transport = pairTransportKeys(run.isk, { iqId, appId });
    try {
      const box = sealWithKey({ key: transport.toIq, ad: pairBoxAd(iqId, appId, "pair.finish"), payload: encodeJson(input.box) });
      const finishArgs = { ticket: started.ticket, reveal: toB64u(reveal), confirm: toB64u(run.confirm), box: toB64u(box) };
      let finished;
      try {
        finished = await this.plain(iqId, "pair.finish", finishArgs, pairFinishResult, false);
      } catch (error) {
        if (error instanceof IqError && error.code === "pair_failed" && !/out of date/.test(error.message)) {
          throw new AppError("pair_failed", `${PAIRING_NAMES[kind]} on ${iqId} failed: ${WRONG_SECRET[kind]}`);
        }
        throw error;
      }
      try {
        cpaceVerifyConfirm(run, fromB64u(finished.confirm, "confirm"));
      } catch {
        throw new AppError("pair_failed", `${PAIRING_NAMES[kind]} on ${iqId} failed: the answer did not come from the IQ (its confirmation does not match)`);
      }
      let opened: unknown;
      try {
        opened = JSON.parse(Buffer.from(openWithKey({ key: transport.toApp, ad: pairBoxAd(iqId, appId, "pair.result"), box: fromB64u(finished.box, "box") })).toString("utf8"));
      } catch {
        throw new AppError("seal_invalid", `the pairing result from IQ ${iqId} does not open: it was damaged on the way`);
      }
      const result = parseResult(pairResultBox, opened, iqId, "pair.finish");
      const keys = deriveAppKeys(run.isk, { iqId, appId });
      const activation: Activation = {
        userId: result.userId,
        role: result.role,
        name: result.name,
        appId,
        codeKey: toB64u(keys.codeKey),
        messageKey: toB64u(keys.messageKey),
        codeCounter: 0,
        identityKey: result.identityKey,
        staticKey: result.staticKey,
        activated: true,
      };
      zeroize(keys.codeKey, keys.messageKey);
      await this.profile.update((data) => {
        data.iqs[iqId] = activation;
      });
      await this.profile.challenges.set(iqId, { appId, value: result.challenge, at: this.now() });
      return { userId: result.userId, role: result.role, name: result.name };
    } finally {
      zeroize(run.isk, transport.toIq, transport.toApp);
    }
  }

  /**
   * A sealed command: `{op, args, pin, challenge}` sealed for this command alone against the IQ's
   * static key. The IQ's answer carries its next challenge, kept beside the profile; a command
   * whose challenge was missing or stale is sent once more with the fresh one from the refusal.
   */
  private async command<T>(as: AsUser, op: CommandOp, args: Record<string, unknown>, result: z.ZodType<T>): Promise<T> {
    checkArgs(commandArgs[op], op, args);
    const { iqId } = as;
    const activation = activeEntry((await this.profile.read()).iqs[iqId], iqId, this.profile.name);
    if (activation.role !== "relay") requirePinShape(as.pin);
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.sendCommand(as, activation, op, args, result);
      } catch (error) {
        if (attempt === 1 && error instanceof IqRefusal && FRESHNESS_REFUSALS.has(error.code)) continue;
        // The refusal names the op in words; the op itself lets an app name its own command.
        if (error instanceof IqRefusal && error.code === "forbidden") {
          throw new IqRefusal({ code: error.code, message: error.message, details: { ...error.details, op } }, error.verified);
        }
        if (error instanceof IqRefusal && error.verified) {
          const gone = LOST_ACTIVATION[error.code];
          if (gone !== undefined) {
            await this.forget(iqId);
            throw gone(iqId);
          }
        }
        throw error;
      }
    }
  }

  private async sendCommand<T>(as: AsUser, activation: Activation, op: CommandOp, args: Record<string, unknown>, result: z.ZodType<T>): Promise<T> {
    const { iqId } = as;
    const { appId } = activation;
    const requestId = newRequestId();
    const challenge = await this.profile.challenges.get(iqId, appId, this.now(), CHALLENGE_USE_MS);
    const appKey = fromB64u(activation.messageKey, "messageKey");
    const pin = activation.role === "relay" ? undefined : as.pin;
    const sealed = sealCommand({
      iqId,
      appId,
      appKey,
      iqStaticKey: fromB64u(activation.staticKey, "staticKey"),
      requestId,
      payload: encodeJson({ op, args, ...(pin !== undefined && { pin }), ...(challenge && { challenge }) }),
    });
    zeroize(appKey);
    let next: string | undefined;
    try {
      const request = { id: requestId, op: "app", args: { appId, epk: toB64u(sealed.epk), mac: toB64u(sealed.mac), box: toB64u(sealed.box) } };
      return await this.client.request(
        iqId,
        request,
        acceptSealed({
          iqId,
          appId,
          requestId,
          op,
          identityKey: fromB64u(activation.identityKey),
          answerKey: sealed.answerKey,
          result,
          onChallenge: (value) => (next = value),
        }),
      );
    } finally {
      zeroize(sealed.answerKey);
      if (next !== undefined) await this.profile.challenges.set(iqId, { appId, value: next, at: this.now() });
    }
  }

  /** The next Code of this app for `purpose`, its counter saved before anyone sees the Code. */
  private async makeCode(as: AsUser, purpose: CodePurpose, lock?: string): Promise<MadeCode> {
    const pin = as.pin;
    requirePinShape(pin);
    const { iqId } = as;
    return this.profile.update((data) => {
      const entry = activeEntry(data.iqs[iqId], iqId, this.profile.name);
      const key = fromB64u(entry.codeKey, "codeKey");
      try {
        const made = generateCode({
          key,
          iqId,
          appId: entry.appId,
          purpose,
          ...(lock === undefined ? {} : { lock }),
          pin,
          lastCounter: entry.codeCounter,
          now: this.now(),
        });
        entry.codeCounter = made.counter;
        const step = Math.floor(made.counter / CODE_PARAMS.codesPerStep);
        const validUntil = (step + CODE_PARAMS.stepsBack + 1) * CODE_PARAMS.stepSeconds * 1000;
        return { code: made.code, purpose, counter: made.counter, validUntil };
      } finally {
        zeroize(key);
      }
    });
  }

  /** The IQ no longer knows this app: the activation stays in the profile, marked as gone. */
  private async forget(iqId: string): Promise<void> {
    await this.profile.update((data) => {
      const entry = data.iqs[iqId];
      if (entry !== undefined) entry.activated = false;
    });
  }
}

/** The IQ wants a fresher challenge: the command is sent once more with the one in the refusal. */
const FRESHNESS_REFUSALS: ReadonlySet<string> = new Set(["challenge_required", "challenge_stale"]);

/** An `office off` is sent this many times before its state is reported unknown. */
const OFFICE_OFF_TRIES = 3;
/**
 * A challenge older than this (by this app's clock) is not worth sending: the IQ allows 30 s on
 * its own clock, and a stale one costs a refusal and a second round trip.
 */
const CHALLENGE_USE_MS = 25_000;

function newRequestId(): string {
  return nodeRandomBytes(12).toString("base64url");
}

/** An event document that verifies against the IQ's key (unverified if this profile has none). */
function verifiedEvent(doc: unknown, iqId: string, identityKey: Uint8Array | undefined): IqEvent | undefined {
  try {
    const body = identityKey === undefined ? signedText(doc) : verifyDocument({ publicKey: identityKey, kind: "event", iqId, doc });
    const parsed = iqEvent.safeParse(body);
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

/** The body of a signed document, unchecked (a profile that never paired with the IQ has no key). */
function signedText(doc: unknown): unknown {
  const signed = (doc as { signed?: unknown } | null)?.signed;
  if (typeof signed !== "string") throw new AppError("response_invalid", "not a signed document");
  return JSON.parse(signed);
}

function notActivated(iqId: string): AppError {
  return new AppError(
    "not_activated",
    `not activated on ${iqId}: the IQ no longer knows this app (the Owner reset your PIN or removed you). ` +
      "Ask the Owner or an Admin for a new initial PIN, then: iq activate",
  );
}

/**
 * The IQ's refusals that mean this app's activation is gone for good, and what to tell the
 * person: its PIN was reset (the IQ forgot the app), or the IQ was reset and waits for its owner.
 */
const LOST_ACTIVATION: Partial<Record<string, (iqId: string) => AppError>> = {
  not_activated: notActivated,
  not_claimed: (iqId) =>
    new AppError("not_claimed", `${iqId} was reset and is not claimed: its owner claims it again (iq claim), then every app activates again`),
};

function activeEntry(entry: Activation | undefined, iqId: string, profileName: string): Activation {
  if (entry === undefined) {
    throw new AppError(
      "not_activated",
      `profile ${profileName} is not activated on ${iqId}: claim it, activate with the PIN you were given, or join as a second device`,
    );
  }
  if (!entry.activated) throw notActivated(iqId);
  return entry;
}

function encodeJson(value: unknown): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(value));
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}
