/**
 * The companion app: what the phone app and the web app do, one method per story of
 * shared/DESIGN.md, over a Requester (the MQTT client) and a Profile (the keys and counters).
 * The CLI is a thin shell around it; tests drive it directly with their own clock.
 *
 * - Pairing (stories 1, 3, 9): CPace with the app as initiator, then the per-app keys.
 * - Sealed commands (stories 2, 6, 7, 8, 9): `{op, args, pin}` sealed under the message key with
 *   the next command counter, written to the profile before the message leaves.
 * - Codes (stories 4, 7, 9): made here, offline, with the next Code counter, likewise persisted
 *   before the Code is shown or sent.
 * - Web app (story 5): plain requests carrying only what the person typed; no keys.
 *
 * PINs are parameters of the calls that need them and are never stored.
 */
import { randomBytes } from "node:crypto";
import { z } from "zod";

import { IqError } from "../../common/errors.js";
import { zeroize } from "../crypto/bytes.js";
import { CODE_PARAMS, generateCode, type CodePurpose } from "../crypto/code.js";
import { cpaceFinish, cpaceStart, cpaceVerifyConfirm, deriveAppKeys } from "../crypto/cpace.js";
import { open as openSealed, seal } from "../crypto/seal.js";
import { fromB64u, pairingCi, pairingPassword, toB64u, type PairKind } from "../pairing.js";
import { PIN_LENGTH, checkPin } from "../pin-policy.js";
import {
  ROLES,
  SEAL_PURPOSE,
  backupSchema,
  commandArgs,
  plainArgs,
  type Backup,
  type CommandOp,
  type PairFinishBox,
  type PlainOp,
  type Role,
} from "../protocol/messages.js";
import { topicsFor } from "../protocol/topics.js";
import { REQUEST_LIFETIME_MS, type Requester } from "./client.js";
import { AppError } from "./errors.js";
import type { Activation, Profile } from "./profile.js";

/** The lock a command addresses when none is named (the hub's default configuration has one). */
export const DEFAULT_LOCK = "door";
/** Codes for these purposes are bound to one lock (see CodeContext.lock). */
export const LOCK_PURPOSES: ReadonlySet<CodePurpose> = new Set(["open", "office_on", "office_off"]);

const role = z.enum(ROLES);
const pairStartResult = z.object({ session: z.string(), share: z.string(), confirm: z.string() });
const boxResult = z.object({ box: z.string() });
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
  locks: z.array(z.object({ name: z.string(), unlocked: z.boolean(), officeMode: z.boolean() })),
});
// Events keep every field the hub sends: a newer hub may add some, and the CLI prints them all.
const iqEvent = z.looseObject({ seq: z.number().int().min(1), at: z.string(), type: z.string() });
const eventsResult = z.object({ events: z.array(iqEvent) });
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
}

export interface CompanionOptions {
  profile: Profile;
  client: Requester;
  /** The clock that dates Codes; tests pass their own. */
  now?: () => number;
}

/** The IQ and the PIN of the person at the app: what every sealed command needs. */
interface AsUser {
  iqId: string;
  pin: string;
}

const PIN_FORMAT = new RegExp(`^[0-9]{${PIN_LENGTH.min},${PIN_LENGTH.max}}$`);

/**
 * A PIN used to prove who one is only needs the right shape here (the IQ judges it); a PIN being
 * chosen goes through the full policy, so the app says no before anything is sent.
 */
function requirePinShape(pin: string): void {
  if (!PIN_FORMAT.test(pin)) throw new AppError("pin_invalid", `a PIN is ${PIN_LENGTH.min} to ${PIN_LENGTH.max} digits (0-9)`);
}

function describeIssue(error: z.ZodError): string {
  const issue = error.issues[0];
  return issue === undefined ? "invalid" : `${issue.path.join(".") || "value"}: ${issue.message}`;
}

function parseResult<T>(schema: z.ZodType<T>, value: unknown, iqId: string, op: string): T {
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    throw new AppError(
      "response_invalid",
      `IQ ${iqId} answered ${op} with something this app does not understand (${describeIssue(parsed.error)}); update the app or the hub`,
    );
  }
  return parsed.data;
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
  duplicate: "wrong Code or PIN, or the Code has expired (make a new one with: iq device invite)",
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

  webOpen(input: { iqId: string; userId: string; code: string; lock?: string }): Promise<LockState> {
    return this.plain(input.iqId, "web.open", { userId: input.userId, lock: input.lock ?? DEFAULT_LOCK, code: input.code }, lockState);
  }

  webOffice(input: { iqId: string; userId: string; code: string; on: boolean; lock?: string }): Promise<LockState> {
    const args = { userId: input.userId, lock: input.lock ?? DEFAULT_LOCK, on: input.on, code: input.code };
    return this.plain(input.iqId, "web.office", args, lockState);
  }

  // ── Story 6: open and Office Mode from the app ───────────────────────────────────────────

  open(input: AsUser & { lock?: string }): Promise<LockState> {
    return this.command(input, "open", { lock: input.lock ?? DEFAULT_LOCK }, lockState);
  }

  office(input: AsUser & { on: boolean; lock?: string }): Promise<LockState> {
    return this.command(input, "office", { lock: input.lock ?? DEFAULT_LOCK, on: input.on }, lockState);
  }

  // ── Story 7: the Owner resets a user's PIN ───────────────────────────────────────────────

  /** Authorised by a fresh owner_reset Code made from the Owner's PIN (`pin`). */
  async resetPin(input: AsUser & { userId: string }): Promise<PinReset> {
    const made = await this.makeCode(input, "owner_reset");
    return this.command(input, "pin.reset", { userId: input.userId, code: made.code }, pinResetResult);
  }

  // ── Story 8: backup before, restore after a factory reset ────────────────────────────────

  /** Fetches the IQ's configuration and keeps it in the profile, for restore after a reset. */
  async backup(input: AsUser): Promise<Backup> {
    const { backup } = await this.command(input, "backup", {}, z.object({ backup: backupSchema }));
    await this.profile.update((data) => {
      data.backups[input.iqId] = backup;
    });
    return backup;
  }

  /** Pushes a backup (by default the last one kept for this IQ) to the newly claimed IQ. */
  async restore(input: AsUser & { backup?: Backup }): Promise<RestoreResult> {
    const backup = input.backup ?? (await this.profile.read()).backups[input.iqId];
    if (backup === undefined) {
      throw new AppError(
        "backup_missing",
        `profile ${this.profile.name} has no backup of ${input.iqId}; a backup has to be made (iq backup) before a reset`,
      );
    }
    return this.command(input, "restore", { backup }, restoreResult);
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
    return (await this.plain(input.iqId, "events.list", args, eventsResult)).events;
  }

  /**
   * Every event after `afterSeq`, in order and without gaps, then each new one as it happens:
   * live events come from the events topic, and whatever is missing before one (the backlog, or
   * what was published while the connection was down) is fetched with events.list first.
   * Resolves once the backlog is delivered, with the function that stops following.
   */
  async followEvents(input: {
    iqId: string;
    afterSeq?: number;
    onEvent: (event: IqEvent) => void;
    onError: (error: Error) => void;
  }): Promise<() => Promise<void>> {
    let last = input.afterSeq ?? 0;
    const deliver = (event: IqEvent): void => {
      if (event.seq <= last) return;
      last = event.seq;
      input.onEvent(event);
    };
    const catchUp = async (): Promise<void> => {
      for (;;) {
        const page = await this.events({ iqId: input.iqId, afterSeq: last, limit: EVENTS_PAGE });
        page.forEach(deliver);
        if (page.length < EVENTS_PAGE) return;
      }
    };
    // One queue, so live events and catch-up pages are delivered strictly in order.
    let queue: Promise<void> = Promise.resolve();
    const stop = await this.client.watch(topicsFor(input.iqId, this.client.topicPrefix).events, (_topic, payload) => {
      const event = parseEvent(payload);
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

  /** The IQs on the broker: every retained state and availability seen within `waitMs`. */
  async discover(input: { waitMs: number }): Promise<DiscoveredIq[]> {
    const found = new Map<string, DiscoveredIq>();
    const prefix = this.client.topicPrefix;
    const prefixLevels = prefix.split("/").length;
    const remember = (topic: string, payload: Buffer): void => {
      const levels = topic.split("/");
      const iqId = levels[prefixLevels];
      if (iqId === undefined) return;
      const entry = found.get(iqId) ?? { iqId };
      const text = payload.toString("utf8");
      if (levels[prefixLevels + 1] === "availability") entry.availability = text;
      else entry.state = parseJson(text) ?? text;
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

  private async plain<T>(iqId: string, op: PlainOp, args: Record<string, unknown>, result: z.ZodType<T>): Promise<T> {
    checkArgs(plainArgs[op], op, args);
    return parseResult(result, await this.client.request(iqId, op, args), iqId, op);
  }

  /**
   * One pairing run (claim, activate, duplicate), app = CPace initiator; on success the new
   * activation replaces any earlier one of this profile on the IQ. Each run gets a new app id,
   * so the IQ starts its counters for this app from zero.
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
    const appId = `app-${randomBytes(9).toString("base64url")}`;
    const sid = randomBytes(16);
    const start = cpaceStart("initiator", { password: input.password, ci: pairingCi(kind, iqId, appId, input.userId), sid });
    zeroize(input.password);
    const startArgs = {
      kind,
      appId,
      ...(input.userId !== undefined && { userId: input.userId }),
      sid: toB64u(sid),
      share: toB64u(start.message),
    };
    const started = await this.plain(iqId, "pair.start", startArgs, pairStartResult);
    const run = cpaceFinish(start, fromB64u(started.share, "share"));
    try {
      cpaceVerifyConfirm(run, fromB64u(started.confirm, "confirm"));
    } catch (error) {
      zeroize(run.isk);
      if (!(error instanceof IqError && error.code === "cpace_confirm_failed")) throw error;
      // Finish the run anyway (the IQ refuses it), so the IQ ends it now instead of keeping the
      // user's one pairing slot busy until it times out and refusing the retry with the right PIN.
      const finishArgs = { session: started.session, confirm: toB64u(run.confirm), box: "" };
      await this.client.request(iqId, "pair.finish", finishArgs).catch(() => undefined);
      throw new AppError("pair_failed", `${PAIRING_NAMES[kind]} on ${iqId} failed: ${WRONG_SECRET[kind]}`);
    }
    const keys = deriveAppKeys(run.isk, { iqId, appId });
    zeroize(run.isk);
    try {
      const box = seal({
        key: keys.messageKey,
        iqId,
        appId,
        purpose: SEAL_PURPOSE.pair,
        counter: 1,
        payload: encodeJson(input.box),
      });
      const finishArgs = { session: started.session, confirm: toB64u(run.confirm), box: toB64u(box) };
      const finished = await this.plain(iqId, "pair.finish", finishArgs, boxResult);
      const paired = this.openReply(keys.messageKey, { iqId, appId, op: "pair.finish" }, finished.box, SEAL_PURPOSE.pairResult, 1, pairedAs);
      const activation: Activation = {
        ...paired,
        appId,
        codeKey: toB64u(keys.codeKey),
        messageKey: toB64u(keys.messageKey),
        codeCounter: 0,
        commandCounter: 1,
        activated: true,
      };
      await this.profile.update((data) => {
        data.iqs[iqId] = activation;
      });
      return paired;
    } finally {
      zeroize(keys.codeKey, keys.messageKey);
    }
  }

  /**
   * A sealed command: the counter is bumped and saved first, then `{op, args, pin}` is sealed
   * with it; the answer must be sealed by the IQ under the same key and counter.
   */
  private async command<T>(as: AsUser, op: CommandOp, args: Record<string, unknown>, result: z.ZodType<T>): Promise<T> {
    requirePinShape(as.pin);
    checkArgs(commandArgs[op], op, args);
    const { iqId } = as;
    const activation = await this.profile.update((data) => {
      const entry = activeEntry(data.iqs[iqId], iqId, this.profile.name);
      entry.commandCounter += 1;
      return { ...entry };
    });
    const { appId, commandCounter: counter } = activation;
    const key = fromB64u(activation.messageKey, "messageKey");
    try {
      const box = seal({
        key,
        iqId,
        appId,
        purpose: SEAL_PURPOSE.command,
        counter,
        payload: encodeJson({ op, args, pin: as.pin, expiresAt: this.now() + REQUEST_LIFETIME_MS }),
      });
      let answer: unknown;
      try {
        answer = await this.client.request(iqId, "app", { appId, box: toB64u(box) });
      } catch (error) {
        const gone = error instanceof IqError ? LOST_ACTIVATION[error.code] : undefined;
        if (gone === undefined) throw error;
        await this.forget(iqId);
        throw gone(iqId);
      }
      const { box: reply } = parseResult(boxResult, answer, iqId, op);
      return this.openReply(key, { iqId, appId, op }, reply, SEAL_PURPOSE.response, counter, result);
    } finally {
      zeroize(key);
    }
  }

  /** Opens a box the IQ sealed for this app as its answer to message number `counter`. */
  private openReply<T>(
    key: Uint8Array,
    to: { iqId: string; appId: string; op: string },
    box: string,
    purpose: string,
    counter: number,
    result: z.ZodType<T>,
  ): T {
    const tampered = new AppError(
      "seal_invalid",
      `the answer to ${to.op} did not come sealed from IQ ${to.iqId} for this request: it was damaged or replayed on the way`,
    );
    let opened;
    try {
      opened = openSealed({ key, iqId: to.iqId, appId: to.appId, purpose, sealed: fromB64u(box, "box"), lastCounter: counter - 1 });
    } catch {
      throw tampered;
    }
    if (opened.counter !== counter) throw tampered;
    return parseResult(result, parseJson(new TextDecoder().decode(opened.payload)), to.iqId, to.op);
  }

  /** The next Code of this app for `purpose`, its counter saved before anyone sees the Code. */
  private async makeCode(as: AsUser, purpose: CodePurpose, lock?: string): Promise<MadeCode> {
    requirePinShape(as.pin);
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
          pin: as.pin,
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

const EVENTS_PAGE = 500;

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

function parseEvent(payload: Buffer): IqEvent | undefined {
  const parsed = iqEvent.safeParse(parseJson(payload.toString("utf8")));
  return parsed.success ? parsed.data : undefined;
}
