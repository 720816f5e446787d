/**
 * The shared steps of every authenticated request: who is asking, whether they may try, and
 * what a wrong attempt costs. One place, so the web Code path, the sealed-command path and the
 * pairing path cannot drift apart on lockout or on what counts as junk.
 */
import { CODE_PARAMS, validateCodeForUser, type CodePurpose } from "../../provisioning/crypto/code.js";
import { decodeCrockford, encodeCrockford } from "../../provisioning/crypto/crockford.js";
import { equalBytes, utf8 } from "../../provisioning/crypto/bytes.js";
import { fromB64u } from "../../provisioning/pairing.js";
import type { EventSource } from "../audit.js";
import { IqError } from "../errors.js";
import { PAIR_SUFFIX, type LockoutStatus } from "../lockout.js";
import type { StoreOp } from "../store.js";
import type { PinRecord, User } from "../users.js";
import type { IqContext } from "./context.js";
import { WEB_BUDGET } from "./web-budget.js";


/** The error for a user who may not try now. */
export function lockedError(status: Exclude<LockoutStatus, { allowed: true }>, now: number): IqError {
  if (status.reason === "disabled") {
    return new IqError("credential_disabled", "too many wrong PINs or Codes: this user is disabled until the Owner resets the PIN");
  }
  const seconds = Math.max(1, Math.ceil((status.until - now) / 1000));
  const wait = seconds < 120 ? `${seconds} s` : `${Math.ceil(seconds / 60)} minutes`;
  // A person locked out from the phone they did not use deserves to know why.
  return new IqError("locked_out", `too many wrong PINs or Codes for this user (wrong ones from every device of the user count together): try again in ${wait}`, {
    until: status.until,
  });
}

/**
 * Which of a user's counters a wrong attempt goes to. The phone's (`app`, also BLE): sealed
 * commands and Codes inside them. The web counter: Codes relayed by the web relay, which is the
 * cloud and may itself guess, so its failures must not disable the user's phone. The pairing
 * counter: activation and second-device runs, which anyone who knows a pending user's id can
 * start, so they must never touch the phone's counter and never disable (Lockout's policy for
 * `/pair` keys).
 */
export type CounterPath = EventSource | "pair";

export function lockoutKey(userId: string, path: CounterPath): string {
  if (path === "web") return `${userId}/web`;
  if (path === "pair") return `${userId}${PAIR_SUFFIX}`;
  return userId;
}

/** Every counter of the user: what an Owner's PIN reset or a removal clears. */
export function clearLockoutOps(ctx: IqContext, userId: string): StoreOp[] {
  return [
    ...(["app", "web", "pair"] as const).map((path) => ctx.lockout.clearOp(lockoutKey(userId, path))),
    ctx.webBudget.clearOp(userId),
  ];
}

/** Refuses up front if the user is blocked or disabled on this path. */
export async function requireMayTry(ctx: IqContext, userId: string, path: CounterPath): Promise<void> {
  const status = await ctx.lockout.check(lockoutKey(userId, path));
  if (!status.allowed) throw lockedError(status, ctx.now());
}

/** Counts a wrong PIN/Code (or a failed pairing run); records and shows a lockout it causes. */
export async function countWrong(ctx: IqContext, user: User, path: CounterPath): Promise<LockoutStatus> {
  const status = await ctx.lockout.recordFailure(lockoutKey(user.userId, path));
  if (!status.allowed) {
    const source: EventSource = path === "pair" ? "app" : path;
    await ctx.events.record({ type: "lockout", source, user: user.userId, reason: status.reason, details: { counter: path } });
    ctx.lifecycle.showLockedOut();
  }
  return status;
}

export async function requirePin(ctx: IqContext, userId: string): Promise<PinRecord> {
  const pin = await ctx.users.pin(userId);
  if (pin === undefined) throw new IqError("not_activated", `user ${userId} has no PIN on this IQ`);
  return pin;
}

export function samePin(a: string, b: string): boolean {
  return equalBytes(utf8(a), utf8(b));
}

export function requireClock(ctx: IqContext): void {
  if (!ctx.clockSynced()) {
    throw new IqError(
      "clock_unsynced",
      "the IQ's clock is not synchronised yet, so it cannot check time-bound Codes; use the app's PIN, or wait for time sync",
    );
  }
}

/**
 * Checks a Code that names a user but not a device (web app, Owner's reset): every device of the
 * user is tried. On success the device's Code counter is stored before the caller acts, which is
 * what makes the Code single-use.
 */
/**
 * Codes refused as made with a wrong PIN, remembered for as long as a Code can be valid. A wrong
 * PIN spends no counter, so without this one mistyped Code, replayed by whoever saw it (the cloud
 * sees every web Code), would count again and again against its user. A repeat is a replay.
 */
export class WrongPinCodes {
  private readonly seen = new Map<string, number>();

  constructor(private readonly now: () => number) {}

  has(userId: string, purpose: CodePurpose, code: string): boolean {
    const now = this.now();
    for (const [key, until] of this.seen) if (until < now) this.seen.delete(key);
    return this.seen.has(keyOf(userId, purpose, code));
  }

  add(userId: string, purpose: CodePurpose, code: string): void {
    const validMs = (CODE_PARAMS.stepsBack + CODE_PARAMS.stepsAhead + 1) * CODE_PARAMS.stepSeconds * 1000;
    this.seen.set(keyOf(userId, purpose, code), this.now() + validMs);
  }
}

/** Codes are case-insensitive with look-alikes (O→0, I/L→1): compare their canonical form. */
function keyOf(userId: string, purpose: CodePurpose, code: string): string {
  return `${userId}\u0000${purpose}\u0000${encodeCrockford(decodeCrockford(code, CODE_PARAMS.symbols))}`;
}

export interface CodeAttempt {
  user: User;
  purpose: CodePurpose;
  code: string;
  source: EventSource;
  /** The lock an open or Office Mode Code is bound to. */
  lock?: string;
}

/**
 * Checks a Code; on success returns the write that spends its counter. The caller commits it
 * before it acts (with the event of the action, in one synced batch): that is what makes the Code
 * single-use, and nothing but the one request in flight runs meanwhile.
 */
export async function acceptUserCode(ctx: IqContext, wrongPins: WrongPinCodes, attempt: CodeAttempt): Promise<StoreOp> {
  const { user, purpose, code, source, lock } = attempt;
  const apps = await ctx.users.apps(user.userId);
  if (apps.length === 0) throw new IqError("not_activated", `user ${user.userId} has no activated app on this IQ`);
  requireClock(ctx);
  if (wrongPins.has(user.userId, purpose, code)) {
    throw new IqError("code_replay", "this Code was already refused: make a new Code");
  }
  await requireMayTry(ctx, user.userId, source);
  const web = source === "web";
  if (web) await requireWebBudget(ctx, user.userId);
  const { pin } = await requirePin(ctx, user.userId);
  const verdict = validateCodeForUser({
    iqId: ctx.iqId,
    purpose,
    ...(lock === undefined ? {} : { lock }),
    code,
    now: ctx.now(),
    expectedPin: pin,
    devices: apps.map((app) => ({ appId: app.appId, key: fromB64u(app.codeKey), lastCounter: app.codeCounter })),
  });
  if (verdict.ok) {
    const app = apps.find((a) => a.appId === verdict.appId)!;
    await ctx.lockout.recordSuccess(lockoutKey(user.userId, source));
    return ctx.users.saveAppOp({ ...app, codeCounter: verdict.counter });
  }
  // A guess that failed (not a replay, which proves nothing new) spends the web budget.
  if (web && verdict.reason !== "replay") await spendWebBudget(ctx, user);
  switch (verdict.reason) {
    case "wrong_pin":
      wrongPins.add(user.userId, purpose, code);
      await countWrong(ctx, user, source);
      throw new IqError("pin_wrong", "the Code was made with a wrong PIN");
    case "replay":
      throw new IqError("code_replay", "this Code was already used (or a newer one was): make a new Code");
    case "not_ours":
      // An expired Code and a mistyped one decrypt to noise alike: the IQ cannot say which.
      throw new IqError(
        "code_rejected",
        "this Code does not check out: it has expired (a Code lasts about 3 minutes) or it was mistyped, or it was made for another user, lock or purpose. Make a new Code; if this one was typed within 3 minutes, check it for a typo",
      );
  }
}

async function requireWebBudget(ctx: IqContext, userId: string): Promise<void> {
  const budget = await ctx.webBudget.check(userId);
  if (budget.allowed) return;
  const hours = Math.max(1, Math.ceil((budget.until - ctx.now()) / 3_600_000));
  throw new IqError(
    "locked_out",
    `too many wrong web Codes for this user in 24 hours: web Codes are refused for up to ${hours} h (the app's PIN still works)`,
    { until: budget.until },
  );
}

async function spendWebBudget(ctx: IqContext, user: User): Promise<void> {
  const remaining = await ctx.webBudget.spend(user.userId);
  if (remaining === WEB_BUDGET.warnAtRemaining) {
    await ctx.events.record({ type: "web_budget_low", source: "web", user: user.userId, details: { remaining } });
  }
}
