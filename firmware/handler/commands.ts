/**
 * Sealed commands from an activated app (story 6 and the management stories 2, 7, 8, 9): the
 * command and the PIN arrive under the app's message key with a strictly increasing counter;
 * the answer goes back under the same key, so the cloud in between reads neither, not even the
 * random PINs the IQ hands out.
 */
import type { z } from "zod";
import { open as openSealed, seal } from "../../provisioning/crypto/seal.js";
import { fromB64u, toB64u } from "../../provisioning/pairing.js";
import { checkPin } from "../../provisioning/pin-policy.js";
import { CODE_PARAMS } from "../../provisioning/crypto/code.js";
import {
  backupSchema,
  commandArgs,
  commandBox,
  SEAL_PURPOSE,
  type Backup,
  type CommandOp,
} from "../../provisioning/protocol/messages.js";
import type { EventSource } from "../audit.js";
import { IqError } from "../errors.js";
import type { AppRecord, User } from "../users.js";
import type { IqContext } from "./context.js";
import type { Pairing } from "./pairing.js";
import { assertUnexpired } from "./expiry.js";
import { requireAllowed, requireManages } from "./roles.js";
import { acceptUserCode, clearLockoutOps, lockedError, lockoutKey, requirePin, samePin, type WrongPinCodes } from "./refusals.js";

interface Caller {
  user: User;
  app: AppRecord;
  source: EventSource;
}

export class Commands {
  constructor(
    private readonly ctx: IqContext,
    private readonly pairing: Pairing,
    private readonly wrongPins: WrongPinCodes,
  ) {}

  /** Opens the box, checks counter, PIN and role, runs the command, seals the answer. */
  async handle(args: { appId: string; box: string }, source: EventSource, authenticated: () => void): Promise<{ box: string }> {
    const { ctx } = this;
    const app = await ctx.users.app(args.appId);
    if (app === undefined) {
      throw new IqError("not_activated", "this app is not activated on this IQ (any more): activate it again");
    }
    const sealContext = { key: fromB64u(app.messageKey), iqId: ctx.iqId, appId: app.appId };
    const opened = openSealed({
      ...sealContext,
      purpose: SEAL_PURPOSE.command,
      sealed: fromB64u(args.box, "box"),
      lastCounter: app.commandCounter,
    });
    authenticated();
    // The counter is spent before anything else happens: the same box never runs twice.
    const current: AppRecord = { ...app, commandCounter: opened.counter };
    await ctx.users.saveApp(current);
    const parsed = commandBox.safeParse(parseJson(opened.payload));
    if (!parsed.success) throw new IqError("request_malformed", `command: ${parsed.error.issues[0]?.message ?? "invalid"}`);
    assertUnexpired([parsed.data.expiresAt], ctx.now(), ctx.clockSynced());
    const user = await ctx.users.require(app.userId);
    await this.checkPinOf(user, parsed.data.pin, source);
    const { op } = parsed.data;
    requireAllowed(user, op);
    const opArgs = commandArgs[op].safeParse(parsed.data.args);
    if (!opArgs.success) throw new IqError("request_malformed", `${op}: ${opArgs.error.issues[0]?.message ?? "invalid"}`);
    const result = await this.run(op, opArgs.data, { user, app: current, source });
    const sealed = seal({
      ...sealContext,
      purpose: SEAL_PURPOSE.response,
      counter: opened.counter,
      payload: Buffer.from(JSON.stringify(result)),
    });
    return { box: toB64u(sealed) };
  }

  private async checkPinOf(user: User, pin: string, source: EventSource): Promise<void> {
    const stored = await requirePin(this.ctx, user.userId);
    const attempt = await this.ctx.lockout.attempt(lockoutKey(user.userId, source), () => samePin(pin, stored.pin));
    if (attempt.outcome === "refused") throw lockedError(attempt.status, this.ctx.now());
    if (attempt.outcome === "wrong") {
      if (!attempt.status.allowed) {
        await this.ctx.events.record({ type: "lockout", source, user: user.userId, reason: attempt.status.reason });
        this.ctx.lifecycle.showLockedOut();
      }
      throw new IqError("pin_wrong", "wrong PIN");
    }
  }

  private async run(op: CommandOp, args: unknown, caller: Caller): Promise<unknown> {
    const { ctx } = this;
    const actor = { userId: caller.user.userId, source: caller.source };
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
        await ctx.users.remove(userId, clearLockoutOps(ctx, userId));
        this.pairing.forgetUser(userId);
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
    }
  }

  /** Story 7: only the Owner, and only with the Owner's own Code, resets a user's PIN. */
  private async resetPin(args: { userId: string; code: string }, caller: Caller): Promise<unknown> {
    const { ctx } = this;
    if (args.userId === caller.user.userId) {
      throw new IqError("forbidden", "the Owner changes their own PIN with 'pin change'; a forgotten Owner PIN needs a factory reset");
    }
    const target = await ctx.users.require(args.userId);
    await acceptUserCode(ctx, this.wrongPins, { user: caller.user, purpose: "owner_reset", code: args.code, source: caller.source });
    const initialPin = await ctx.users.resetPin(target.userId, clearLockoutOps(ctx, target.userId));
    this.pairing.forgetUser(target.userId);
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

function parseJson(bytes: Uint8Array): unknown {
  try {
    return JSON.parse(Buffer.from(bytes).toString("utf8"));
  } catch {
    throw new IqError("request_malformed", "the sealed command is not JSON");
  }
}

