/**
 * Activation by CPace (stories 1, 3 and 9): the app proves it knows the setup secret, the random
 * initial PIN, or the second-device Code together with the PIN, without sending it; both ends get
 * fresh per-app keys. The IQ is the responder. A run is bounded like a PASE session: a timer,
 * one run per user at a time, a cap on runs in flight, and each run counted as one guess
 * against the user before the IQ answers (the IQ's confirmation tag lets the peer test exactly
 * one password, so the guess is spent whether or not the peer finishes).
 */
import { randomBytes } from "node:crypto";
import {
  cpaceFinish,
  cpaceStart,
  cpaceVerifyConfirm,
  deriveAppKeys,
  type CpaceResult,
} from "../../provisioning/crypto/cpace.js";
import { CODE_PARAMS } from "../../provisioning/crypto/code.js";
import { open as openSealed, seal } from "../../provisioning/crypto/seal.js";
import { checkPin } from "../../provisioning/pin-policy.js";
import {
  fromB64u,
  pairingCi,
  pairingPassword,
  secondDeviceCode,
  toB64u,
  type PairKind,
} from "../../provisioning/pairing.js";
import { pairFinishBox, SEAL_PURPOSE, type plainArgs } from "../../provisioning/protocol/messages.js";
import type { z } from "zod";
import { IqError } from "../errors.js";
import type { AppRecord, PinRecord, User } from "../users.js";
import type { IqContext } from "./context.js";
import { countWrong, lockoutKey, requireMayTry, requirePin, samePin } from "./refusals.js";

export const PAIRING = {
  /** A run not finished within this is forgotten (its guess stays counted). */
  sessionTtlMs: 60_000,
  maxSessions: 8,
  /** A second-device invitation is good for one run within the Code's validity. */
  inviteTtlMs: (CODE_PARAMS.stepsBack + 1) * CODE_PARAMS.stepSeconds * 1000,
} as const;

interface Session {
  kind: PairKind;
  appId: string;
  /** The user the run activates; undefined for a claim (the owner is created at the end). */
  user: User | undefined;
  pin: PinRecord | undefined;
  result: CpaceResult;
  expiresAt: number;
}

interface Invite {
  fromAppId: string;
  counter: number;
  expiresAt: number;
}

type StartArgs = z.infer<(typeof plainArgs)["pair.start"]>;
type FinishArgs = z.infer<(typeof plainArgs)["pair.finish"]>;

export class Pairing {
  private readonly sessions = new Map<string, Session>();
  private readonly invites = new Map<string, Invite>();

  constructor(private readonly ctx: IqContext) {}

  /** The first device asked for a second one (story 9): one run, within the Code's validity. */
  invite(userId: string, fromAppId: string, counter: number): { expiresAt: number } {
    const expiresAt = this.ctx.now() + PAIRING.inviteTtlMs;
    this.invites.set(userId, { fromAppId, counter, expiresAt });
    return { expiresAt };
  }

  /** Everything pending is void (factory reset). */
  clear(): void {
    for (const session of this.sessions.values()) session.result.isk.fill(0);
    this.sessions.clear();
    this.invites.clear();
  }

  /** A PIN reset or removal voids the user's runs and invitation (they were for the old PIN). */
  forgetUser(userId: string): void {
    for (const [id, session] of this.sessions) {
      if (session.user?.userId !== userId) continue;
      session.result.isk.fill(0);
      this.sessions.delete(id);
    }
    this.invites.delete(userId);
  }

  async start(args: StartArgs): Promise<{ session: string; share: string; confirm: string }> {
    const { ctx } = this;
    this.sweep();
    if (this.sessions.size >= PAIRING.maxSessions) {
      throw new IqError("pair_busy", "too many activations in progress: try again in a minute");
    }
    if ((await ctx.users.app(args.appId)) !== undefined) {
      throw new IqError("request_malformed", "this app id is already activated on this IQ: use a new one");
    }
    const { password, user, pin } = await this.passwordFor(args);
    if (user !== undefined && [...this.sessions.values()].some((s) => s.user?.userId === user.userId)) {
      throw new IqError("pair_busy", "an activation for this user is already in progress");
    }
    const sid = fromB64u(args.sid, "sid");
    const responder = cpaceStart("responder", {
      password,
      ci: pairingCi(args.kind, ctx.iqId, args.appId, user?.userId ?? ""),
      sid,
    });
    password.fill(0);
    const result = cpaceFinish(responder, fromB64u(args.share, "share"));
    // The guess is spent now: our confirmation tag lets the peer test this one password.
    try {
      if (user !== undefined) await countWrong(ctx, user, "app");
    } catch (error) {
      result.isk.fill(0);
      throw error;
    }
    const session = randomBytes(12).toString("base64url");
    this.sessions.set(session, {
      kind: args.kind,
      appId: args.appId,
      user,
      pin,
      result,
      expiresAt: ctx.now() + PAIRING.sessionTtlMs,
    });
    return { session, share: toB64u(responder.message), confirm: toB64u(result.confirm) };
  }

  async finish(args: FinishArgs): Promise<{ box: string; user: User; kind: PairKind }> {
    const { ctx } = this;
    const session = this.sessions.get(args.session);
    this.sessions.delete(args.session);
    if (session === undefined || session.expiresAt < ctx.now()) {
      throw new IqError("pair_session_unknown", "no such activation in progress (it may have timed out): start again");
    }
    try {
      cpaceVerifyConfirm(session.result, fromB64u(args.confirm, "confirm"));
    } catch {
      session.result.isk.fill(0);
      throw new IqError("pair_failed", failureMessage(session.kind));
    }
    const keys = deriveAppKeys(session.result.isk, { iqId: ctx.iqId, appId: session.appId });
    session.result.isk.fill(0);
    try {
      const sealContext = { key: keys.messageKey, iqId: ctx.iqId, appId: session.appId };
      const opened = openSealed({ ...sealContext, purpose: SEAL_PURPOSE.pair, sealed: fromB64u(args.box, "box"), lastCounter: 0 });
      const box = pairFinishBox.safeParse(JSON.parse(Buffer.from(opened.payload).toString("utf8")));
      if (!box.success) throw new IqError("request_malformed", `pair.finish box: ${box.error.issues[0]?.message ?? "invalid"}`);
      const app: AppRecord = {
        appId: session.appId,
        userId: "",
        codeKey: toB64u(keys.codeKey),
        messageKey: toB64u(keys.messageKey),
        commandCounter: opened.counter,
        codeCounter: 0,
        activatedAt: new Date(ctx.now()).toISOString(),
      };
      const user = await this.complete(session, app, box.data);
      const result = { userId: user.userId, role: user.role, name: user.name };
      const sealed = seal({
        ...sealContext,
        purpose: SEAL_PURPOSE.pairResult,
        counter: opened.counter,
        payload: Buffer.from(JSON.stringify(result)),
      });
      return { box: toB64u(sealed), user, kind: session.kind };
    } finally {
      keys.codeKey.fill(0);
      keys.messageKey.fill(0);
    }
  }

  private async complete(session: Session, app: AppRecord, box: z.infer<typeof pairFinishBox>): Promise<User> {
    const { ctx } = this;
    if (session.kind === "claim") {
      if (box.name === undefined || box.pin === undefined) {
        throw new IqError("request_malformed", "a claim must carry the owner's name and chosen PIN");
      }
      checkPin(box.pin);
      if (ctx.lifecycle.phase !== "unclaimed") throw new IqError("already_claimed", "this IQ was claimed meanwhile");
      // One batch: a crash leaves either an unclaimed IQ or a claimed one with its owner, never half.
      const { user } = await ctx.users.add(box.name, "owner", box.pin, (owner) => [
        ...ctx.users.appOps({ ...app, userId: owner.userId }, undefined),
        ...ctx.claimOps(),
      ]);
      await ctx.afterClaim();
      await ctx.events.record({ type: "claimed", source: "app", user: user.userId });
      return user;
    }
    // The user may have been removed, or their PIN reset, while this run was open.
    const user = await ctx.users.require(session.user!.userId);
    const pin = await ctx.users.pin(user.userId);
    if (pin === undefined || !samePin(pin.pin, session.pin!.pin) || (session.kind === "activate" && !pin.pending)) {
      throw new IqError("pair_failed", "this activation is out of date (the PIN was reset meanwhile): start again");
    }
    await ctx.lockout.recordSuccess(lockoutKey(user.userId, "app"));
    if ((await ctx.users.appIds(user.userId)).length >= CODE_PARAMS.devicesPerUser) {
      throw new IqError("too_many_devices", `a user may have at most ${CODE_PARAMS.devicesPerUser} devices on an IQ`);
    }
    await ctx.users.addApp({ ...app, userId: user.userId }, session.kind === "activate" ? pin : undefined);
    await ctx.events.record({
      type: session.kind === "activate" ? "activated" : "device_added",
      source: "app",
      user: user.userId,
      details: { appId: app.appId },
    });
    return user;
  }

  private async passwordFor(args: StartArgs): Promise<{ password: Uint8Array; user?: User; pin?: PinRecord }> {
    const { ctx } = this;
    if (args.kind === "claim") {
      if (ctx.lifecycle.phase !== "unclaimed") throw new IqError("already_claimed", "this IQ is already claimed");
      if (!ctx.lifecycle.isClaimWindowOpen()) {
        throw new IqError(
          "claim_window_closed",
          "the claim window is closed: press the IQ's button briefly (or restart it), then claim while its LED blinks blue fast",
        );
      }
      const secret = await ctx.setupSecret();
      if (secret === undefined) throw new IqError("already_claimed", "this IQ is already claimed");
      return { password: pairingPassword({ kind: "claim", setupSecret: secret }) };
    }
    if (args.userId === undefined) throw new IqError("request_malformed", `pair.start ${args.kind} needs userId`);
    const user = await ctx.users.require(args.userId);
    await requireMayTry(ctx, user.userId, "app");
    const pin = await requirePin(ctx, user.userId);
    if (args.kind === "activate") {
      if (!pin.pending) {
        throw new IqError(
          "not_pending",
          "this user has already activated with the initial PIN: add a device with a Code (iq device invite), or ask the Owner for a PIN reset",
        );
      }
      return { password: pairingPassword({ kind: "activate", pin: pin.pin }), user, pin };
    }
    const invite = this.invites.get(user.userId);
    this.invites.delete(user.userId);
    const from = invite && invite.expiresAt >= ctx.now() ? await ctx.users.app(invite.fromAppId) : undefined;
    if (invite === undefined || from === undefined) {
      throw new IqError("invite_invalid", "no second-device invitation for this user: run 'iq device invite' on the first device");
    }
    const code = secondDeviceCode({
      key: fromB64u(from.codeKey),
      iqId: ctx.iqId,
      appId: from.appId,
      pin: pin.pin,
      counter: invite.counter,
    });
    return { password: pairingPassword({ kind: "duplicate", code, pin: pin.pin }), user, pin };
  }

  private sweep(): void {
    const now = this.ctx.now();
    for (const [id, session] of this.sessions) {
      if (session.expiresAt >= now) continue;
      session.result.isk.fill(0);
      this.sessions.delete(id);
    }
    for (const [id, invite] of this.invites) if (invite.expiresAt < now) this.invites.delete(id);
  }
}

function failureMessage(kind: PairKind): string {
  switch (kind) {
    case "claim":
      return "claim refused: wrong setup secret";
    case "activate":
      return "activation refused: wrong PIN";
    case "duplicate":
      return "second device refused: wrong Code or PIN";
  }
}
