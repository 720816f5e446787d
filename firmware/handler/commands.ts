/**
 * Sealed commands from an activated app (story 6, the management stories 2, 7, 8, 9, and the web
 * relay's Codes, story 5; protocol v2). Each command is sealed for itself: an ephemeral X25519
 * key against the IQ's static key, mixed with the app's message key (command-seal.ts), so neither
 * the cloud nor a later thief of the app's key file reads the PIN or the command. A cheap MAC is
 * checked first, so junk under a known app id never costs an X25519. Freshness is a single-use
 * challenge the IQ issued within the last 30 s of its monotonic clock; the answer, sealed the same
 * way, carries the next one.
 */
import type { z } from "zod";
import { utf8 } from "../../provisioning/crypto/bytes.js";
import { CODE_PARAMS } from "../../provisioning/crypto/code.js";
import { checkCommandMac, openCommand, sealAnswer } from "../../provisioning/crypto/command-seal.js";
import { fromB64u, toB64u } from "../../provisioning/pairing.js";
import { checkPin } from "../../provisioning/pin-policy.js";
import {
  backupSchema,
  commandArgs,
  commandBox,
  type Backup,
  type CommandOp,
  type ErrorBody,
  type SealedAnswerBody,
} from "../../provisioning/protocol/messages.js";
import type { EventSource } from "../audit.js";
import { IqError } from "../errors.js";
import { RateLimiter } from "../rate-limit.js";
import type { AppRecord, User } from "../users.js";
import type { Challenges } from "./challenges.js";
import type { IqContext } from "./context.js";
import { errorBody } from "./error-body.js";
import type { Pairing } from "./pairing.js";
import { requireAllowed, requireManages } from "./roles.js";
import { acceptUserCode, clearLockoutOps, lockedError, lockoutKey, requireClock, requirePin, samePin, type WrongPinCodes } from "./refusals.js";

interface Caller {
  user: User;
  app: AppRecord;
  source: EventSource;
}

/** What a command that proved its app key comes to: the sealed answer, and the refusal if any. */
export interface SealedOutcome {
  box: string;
  error?: ErrorBody;
  /** The op inside the box, for the audit trail. */
  op?: CommandOp;
  user?: User;
  args?: Record<string, unknown>;
}

/**
 * Web Codes checked per second for the whole IQ, whatever relay sends them: the speed limit on
 * guessing (the per-user WEB_BUDGET bounds the total). 20 in a burst, then 1 a second.
 */
const WEB_CODE_RATE = { capacity: 20, refillPerSecond: 1 } as const;

export class Commands {
  private readonly webCodes: RateLimiter;

  constructor(
    private readonly ctx: IqContext,
    private readonly pairing: Pairing,
    private readonly wrongPins: WrongPinCodes,
    private readonly challenges: Challenges,
  ) {
    this.webCodes = new RateLimiter(ctx.now, WEB_CODE_RATE);
  }

  /**
   * Opens the box; throws IqError while nothing is proved (unknown app, bad MAC, a box that does
   * not open). From then on every outcome, refusals included, is a sealed answer.
   */
  async handle(args: { appId: string; epk: string; mac: string; box: string }, requestId: string, source: EventSource): Promise<SealedOutcome> {
    const { ctx } = this;
    const app = await ctx.users.app(args.appId);
    if (app === undefined) {
      throw new IqError("not_activated", "this app is not activated on this IQ (any more): activate it again");
    }
    const appKey = fromB64u(app.messageKey);
    const sealed = { iqId: ctx.iqId, appId: app.appId, appKey, requestId, epk: fromB64u(args.epk, "epk"), box: fromB64u(args.box, "box") };
    if (!checkCommandMac({ ...sealed, mac: fromB64u(args.mac, "mac") })) throw sealInvalid();
    const keys = ctx.keys();
    const { payload, answerKey } = openCommand({ ...sealed, iqStatic: { secretKey: keys.staticSecret, publicKey: keys.staticPublic } });
    const answer = (body: SealedAnswerBody): string =>
      toB64u(sealAnswer({ answerKey, iqId: ctx.iqId, appId: app.appId, requestId, payload: utf8(JSON.stringify(body)) }));
    let op: CommandOp | undefined;
    let user: User | undefined;
    let opArgs: Record<string, unknown> | undefined;
    try {
      const parsed = commandBox.safeParse(parseJson(payload));
      if (!parsed.success) throw new IqError("request_malformed", `command: ${parsed.error.issues[0]?.message ?? "invalid"}`);
      ({ op } = parsed.data);
      opArgs = parsed.data.args;
      // The app proved its key, so its user is known: a refusal names them (whose command was held back).
      user = await ctx.users.require(app.userId);
      // Freshness first: a held-back command is refused before its PIN is looked at.
      const { challenge } = parsed.data;
      const verdict = challenge === undefined ? "unknown" : this.challenges.consume(app.appId, challenge);
      if (verdict === "unknown") {
        throw new IqError("challenge_required", "this command carries no live challenge from the IQ (none, or one from before a restart): send it again with the challenge in this answer");
      }
      if (verdict === "stale") {
        throw new IqError("challenge_stale", "this command's challenge is used or older than 30 s (held back on the way?): send it again with the challenge in this answer");
      }
      if (user.role !== "relay") await this.checkPinOf(user, parsed.data.pin, source);
      requireAllowed(user, op);
      const valid = commandArgs[op].safeParse(parsed.data.args);
      if (!valid.success) throw new IqError("request_malformed", `${op}: ${valid.error.issues[0]?.message ?? "invalid"}`);
      const result = await this.run(op, valid.data, { user, app, source });
      return { box: answer({ ok: true, result, challenge: this.challenges.issue(app.appId) }), op, user, args: opArgs };
    } catch (error) {
      const body = errorBody(error, ctx.log, "command");
      return { box: answer({ ok: false, error: body, challenge: this.challenges.issue(app.appId) }), error: body, ...(op && { op }), ...(user && { user }), ...(opArgs && { args: opArgs }) };
    } finally {
      answerKey.fill(0);
      appKey.fill(0);
    }
  }

  private async checkPinOf(user: User, pin: string | undefined, source: EventSource): Promise<void> {
    if (pin === undefined) throw new IqError("request_malformed", "command: pin is required");
    const stored = await requirePin(this.ctx, user.userId);
    const attempt = await this.ctx.lockout.attempt(lockoutKey(user.userId, source), () => samePin(pin, stored.pin));
    if (attempt.outcome === "refused") throw lockedError(attempt.status, this.ctx.now());
    if (attempt.outcome === "wrong") {
      if (!attempt.status.allowed) {
        await this.ctx.events.record({ type: "lockout", source, user: user.userId, reason: attempt.status.reason });
        this.ctx.lifecycle.showLockedOut();
      }
      throw wrongPin(attempt.triesLeft, !attempt.status.allowed && attempt.status.reason === "disabled");
    }
  }

  private async run(op: CommandOp, args: unknown, caller: Caller): Promise<unknown> {
    const { ctx } = this;
    const actor = { userId: caller.user.userId, name: caller.user.name, source: caller.source };
    switch (op) {
      case "whoami":
        return { userId: caller.user.userId, name: caller.user.name, role: caller.user.role };
      case "open": {
        const { lock } = args as z.infer<(typeof commandArgs)["open"]>;
        return ctx.access.open(lock, actor);
      }
      case "office": {
        const { lock, on } = args as z.infer<(typeof commandArgs)["office"]>;
        return ctx.access.setOfficeMode(lock, on, actor);
      }
      case "user.add": {
        const { name, role } = args as z.infer<(typeof commandArgs)["user.add"]>;
        requireManages(caller.user, role);
        const { user, initialPin } = await ctx.users.add(name, role);
        await ctx.events.record({ type: "user_added", source: caller.source, user: caller.user.userId, details: { userId: user.userId, role } });
        return { userId: user.userId, name: user.name, role: user.role, initialPin };
      }
      case "user.remove": {
        const { userId } = args as z.infer<(typeof commandArgs)["user.remove"]>;
        const target = await ctx.users.require(userId);
        requireManages(caller.user, target.role);
        const appIds = await ctx.users.appIds(userId);
        await ctx.users.remove(userId, clearLockoutOps(ctx, userId));
        this.forgetUser(userId, appIds);
        await ctx.events.record({ type: "user_removed", source: caller.source, user: caller.user.userId, details: { userId } });
        return { userId };
      }
      case "user.list": {
        const users = await Promise.all(
          (await ctx.users.list()).map(async (u) => {
            const devices = (await ctx.users.appIds(u.userId)).length;
            return { userId: u.userId, name: u.name, role: u.role, activated: devices > 0, devices };
          }),
        );
        return { users };
      }
      case "pin.change": {
        const { newPin } = args as z.infer<(typeof commandArgs)["pin.change"]>;
        checkPin(newPin);
        await ctx.users.changePin(caller.user.userId, newPin);
        await ctx.events.record({ type: "pin_changed", source: caller.source, user: caller.user.userId });
        return {};
      }
      case "pin.reset":
        return this.resetPin(args as z.infer<(typeof commandArgs)["pin.reset"]>, caller);
      case "device.invite": {
        const { counter } = args as z.infer<(typeof commandArgs)["device.invite"]>;
        if (counter <= caller.app.codeCounter) throw new IqError("invite_invalid", "that Code counter is already used");
        requireCurrentCounter(ctx, counter);
        if ((await ctx.users.appIds(caller.user.userId)).length >= CODE_PARAMS.devicesPerUser) {
          throw new IqError(
            "too_many_devices",
            `${caller.user.name} has ${CODE_PARAMS.devicesPerUser} devices on this IQ, the most allowed; to move to a new one, ask the Owner for a PIN reset (it removes every device) and activate again`,
          );
        }
        // The Code is spent by announcing it: it can serve this one invitation and nothing else.
        await ctx.users.saveApp({ ...caller.app, codeCounter: counter });
        return this.pairing.invite(caller.user.userId, caller.app.appId, counter);
      }
      case "backup":
        return { backup: await this.backup() };
      case "restore":
        return this.restore((args as z.infer<(typeof commandArgs)["restore"]>).backup, caller);
      case "web.open":
      case "web.office":
        return this.relayWebCode(op, args as z.infer<(typeof commandArgs)["web.office"]>);
    }
  }

  /**
   * Story 5: the paired web relay passes on what a person typed. The person's role, lockout and
   * web budget decide; the relay proved only that it is the relay. Refused with `rate_limited`
   * (the relay is told, not ignored) when the IQ-wide speed limit on web Codes is reached.
   */
  private async relayWebCode(op: "web.open" | "web.office", args: { userId: string; lock: string; code: string; on?: boolean }): Promise<unknown> {
    const { ctx } = this;
    if (!this.webCodes.take()) throw new IqError("rate_limited", "too many web Codes for this IQ right now: try again in a second");
    const user = await ctx.users.require(args.userId);
    if (user.role === "relay") throw new IqError("forbidden", "a relay has no Codes of its own");
    requireAllowed(user, op === "web.open" ? "open" : "office");
    ctx.access.requireLock(args.lock);
    const actor = { userId: user.userId, name: user.name, source: "web" as const };
    if (op === "web.open") {
      const spend = await acceptUserCode(ctx, this.wrongPins, { user, purpose: "open", code: args.code, source: "web", lock: args.lock });
      return ctx.access.open(args.lock, actor, [spend]);
    }
    const on = args.on === true;
    const spend = await acceptUserCode(ctx, this.wrongPins, { user, purpose: on ? "office_on" : "office_off", code: args.code, source: "web", lock: args.lock });
    return ctx.access.setOfficeMode(args.lock, on, actor, [spend]);
  }

  /** The user's apps, invitation and challenges are gone with their PIN (reset) or with them. */
  private forgetUser(userId: string, appIds: readonly string[]): void {
    this.pairing.forgetUser(userId);
    for (const appId of appIds) this.challenges.forget(appId);
  }

  /** Story 7: only the Owner, and only with the Owner's own Code, resets a user's PIN. */
  private async resetPin(args: { userId: string; code: string }, caller: Caller): Promise<unknown> {
    const { ctx } = this;
    if (args.userId === caller.user.userId) {
      throw new IqError("forbidden", "the Owner changes their own PIN with 'pin change'; a forgotten Owner PIN needs a factory reset");
    }
    const target = await ctx.users.require(args.userId);
    const spend = await acceptUserCode(ctx, this.wrongPins, { user: caller.user, purpose: "owner_reset", code: args.code, source: caller.source });
    const appIds = await ctx.users.appIds(target.userId);
    // The Code's counter is spent in the same batch as the reset it authorises.
    const initialPin = await ctx.users.resetPin(target.userId, [...clearLockoutOps(ctx, target.userId), spend]);
    this.forgetUser(target.userId, appIds);
    await ctx.events.record({ type: "pin_reset", source: caller.source, user: caller.user.userId, details: { userId: target.userId } });
    return { userId: target.userId, initialPin };
  }

  private async backup(): Promise<Backup> {
    const { ctx } = this;
    return {
      format: "iq-hub-backup/1",
      iqId: ctx.iqId,
      createdAt: new Date(ctx.now()).toISOString(),
      users: (await ctx.users.list()).map(({ userId, name, role }) => ({ userId, name, role })),
      locks: ctx.access.lockNames().map((name) => ({ name, officeMode: ctx.access.isOfficeMode(name) })),
      settings: ctx.settings(),
    };
  }

  /**
   * Story 8: after a factory reset and a new claim, the Owner pushes back the backup. Users and
   * roles come back under their old ids, each with a new random PIN and not activated. Office
   * Mode is not restored: a door never opens because of a restore.
   */
  private async restore(raw: unknown, caller: Caller): Promise<unknown> {
    const { ctx } = this;
    const parsed = backupSchema.safeParse(raw);
    if (!parsed.success) throw new IqError("backup_invalid", `not an iq-hub backup: ${parsed.error.issues[0]?.message ?? ""}`);
    const backup = parsed.data;
    if (backup.iqId !== ctx.iqId) {
      throw new IqError("backup_invalid", `this backup belongs to IQ ${backup.iqId}, not ${ctx.iqId}`);
    }
    const restored = [];
    for (const entry of backup.users) {
      if (entry.role === "owner" || (await ctx.users.get(entry.userId)) !== undefined) continue;
      const { user, initialPin } = await ctx.users.restore(entry);
      restored.push({ userId: user.userId, name: user.name, role: user.role, initialPin });
    }
    const missingLocks = backup.locks.map((l) => l.name).filter((name) => !ctx.access.lockNames().includes(name));
    await ctx.events.record({
      type: "restored",
      source: caller.source,
      user: caller.user.userId,
      details: { users: restored.length, missingLocks },
    });
    return { users: restored, missingLocks };
  }
}

function sealInvalid(): IqError {
  return new IqError("seal_invalid", "the sealed command is damaged, or not sealed for this IQ and app");
}

/**
 * A second-device Code counter must belong to a time step the IQ would accept a Code of now: a
 * counter far ahead would burn every later Code of the app (counters only move forward).
 */
function requireCurrentCounter(ctx: IqContext, counter: number): void {
  requireClock(ctx);
  const step = Math.floor(counter / CODE_PARAMS.codesPerStep);
  const now = Math.floor(ctx.now() / (CODE_PARAMS.stepSeconds * 1000));
  if (step > now + CODE_PARAMS.stepsAhead || step < now - CODE_PARAMS.stepsBack) {
    throw new IqError("invite_invalid", "that Code counter does not belong to a current Code (is this device's clock right?)");
  }
}

function parseJson(bytes: Uint8Array): unknown {
  try {
    return JSON.parse(Buffer.from(bytes).toString("utf8"));
  } catch {
    throw new IqError("request_malformed", "the sealed command is not JSON");
  }
}

/**
 * A wrong PIN says what is left: the person can stop and think before the block, and learns that
 * wrong PINs from their other devices count too. Sealed, so only the person's own app reads it.
 */
function wrongPin(triesLeft: number, disabled: boolean): IqError {
  const left = disabled
    ? "this user is now disabled until the Owner resets the PIN"
    : triesLeft === 0
      ? "this user is now blocked for a while"
      : `${triesLeft} more ${triesLeft === 1 ? "try" : "tries"} before this user is blocked for a while`;
  return new IqError("pin_wrong", `wrong PIN: ${left} (wrong PINs from every device of the user count together)`, { triesLeft });
}
