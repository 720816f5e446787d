/**
 * Activation by CPace (stories 1, 3 and 9; protocol v2): the app proves it knows the setup
 * secret, the random initial PIN, or the second-device Code together with the PIN, without
 * sending it; both ends get fresh per-app keys. The IQ is the responder, and it keeps **no state
 * between the two messages**: everything it needs to finish travels in a ticket sealed under a
 * key that exists only in its memory (new at every start). So strangers on the broker cannot fill
 * pairing slots (there are none), and a `pair.finish` can end nothing but its own run:
 *
 * - the app commits to a random `reveal` in `pair.start` (`commit` = SHA-256 of it) and shows it
 *   in `pair.finish`: someone who read the ticket off the broker cannot finish the run;
 * - a ticket is finished once, within PAIRING.ticketTtlMs on the monotonic clock;
 * - the app confirms first, so the IQ learns at `pair.finish` whether the password was right, and
 *   only a wrong confirmation from the run's own starter counts, on the user's pairing counter
 *   (`<userId>/pair`: throttled by doubling blocks, never disabled, never the phone's counter).
 *
 * The pairing result (the IQ's public keys, the user, the first challenge) and the claim's PIN
 * travel under transport keys derived from ISK and never stored: a later thief of the app's key
 * file, holding a recording, reads neither.
 */
import { createHash, randomBytes } from "node:crypto";
import type { z } from "zod";
import { equalBytes, lvCat, utf8, zeroize } from "../../provisioning/crypto/bytes.js";
import { CODE_PARAMS } from "../../provisioning/crypto/code.js";
import { openWithKey, pairTransportKeys, sealWithKey } from "../../provisioning/crypto/command-seal.js";
import { cpaceExpectedConfirm, cpaceFinish, cpaceStart, deriveAppKeys } from "../../provisioning/crypto/cpace.js";
import { checkPin } from "../../provisioning/pin-policy.js";
import { fromB64u, pairBoxAd, pairingCi, pairingPassword, secondDeviceCode, toB64u, type PairKind } from "../../provisioning/pairing.js";
import { pairFinishBox, type PairResultBox, type plainArgs } from "../../provisioning/protocol/messages.js";
import type { EventSource } from "../audit.js";
import { IqError } from "../errors.js";
import type { AppRecord, PinRecord, User } from "../users.js";
import type { Challenges } from "./challenges.js";
import type { IqContext } from "./context.js";
import { countWrong, lockoutKey, requireMayTry, requirePin } from "./refusals.js";

export const PAIRING = {
  /** A ticket not finished within this (monotonic clock) is void. */
  ticketTtlMs: 60_000,
  /** A second-device invitation is good within the Code's validity (several tries, counted). */
  inviteTtlMs: (CODE_PARAMS.stepsBack + 1) * CODE_PARAMS.stepSeconds * 1000,
} as const;

/** What the IQ needs to finish a run, sealed into the ticket it hands the app. */
interface Ticket {
  /** Ticket id: each is finished once. */
  id: string;
  kind: PairKind;
  appId: string;
  userId: string;
  /** CPace ISK, the app's expected confirmation tag and the IQ's own (base64url). */
  isk: string;
  expect: string;
  confirm: string;
  /** SHA-256 of the app's reveal (base64url). */
  commit: string;
  /** Digest of the PIN the run used: a PIN reset or change meanwhile voids the run. */
  pin: string;
  /** Monotonic ms when issued (meaningful only within this process: the ticket key is too). */
  issued: number;
}

interface Invite {
  fromAppId: string;
  counter: number;
  expiresAt: number;
}

type StartArgs = z.infer<(typeof plainArgs)["pair.start"]>;
type FinishArgs = z.infer<(typeof plainArgs)["pair.finish"]>;

export class Pairing {
  /** Lives in memory only: a restart voids every ticket. */
  private readonly ticketKey = randomBytes(32);
  /** Finished ticket ids until they would have expired anyway. */
  private readonly used = new Map<string, number>();
  private readonly invites = new Map<string, Invite>();

  constructor(
    private readonly ctx: IqContext,
    private readonly challenges: Challenges,
    private readonly monotonic: () => number,
  ) {}

  /** The first device asked for a second one (story 9): good within the Code's validity. */
  invite(userId: string, fromAppId: string, counter: number): { expiresAt: number } {
    const expiresAt = this.ctx.now() + PAIRING.inviteTtlMs;
    this.invites.set(userId, { fromAppId, counter, expiresAt });
    return { expiresAt };
  }

  /** Everything pending is void (factory reset). */
  clear(): void {
    this.invites.clear();
    this.used.clear();
  }

  /** A PIN reset or removal voids the user's invitation; open runs fail on the PIN digest. */
  forgetUser(userId: string): void {
    this.invites.delete(userId);
  }

  async start(args: StartArgs): Promise<{ share: string; ticket: string }> {
    const { ctx } = this;
    if ((await ctx.users.app(args.appId)) !== undefined) {
      throw new IqError("request_malformed", "this app id is already activated on this IQ: use a new one");
    }
    const commit = fromB64u(args.commit, "commit");
    if (commit.length !== 32) throw new IqError("request_malformed", "commit: expected 32 bytes (SHA-256)");
    const { password, user, pin } = await this.passwordFor(args);
    const responder = cpaceStart("responder", {
      password,
      ci: pairingCi(args.kind, ctx.iqId, args.appId, user?.userId ?? ""),
      sid: fromB64u(args.sid, "sid"),
    });
    zeroize(password);
    const result = cpaceFinish(responder, fromB64u(args.share, "share"));
    const expect = cpaceExpectedConfirm(result);
    const ticket: Ticket = {
      id: randomBytes(12).toString("base64url"),
      kind: args.kind,
      appId: args.appId,
      userId: user?.userId ?? "",
      isk: toB64u(result.isk),
      expect: toB64u(expect),
      confirm: toB64u(result.confirm),
      commit: args.commit,
      pin: pinDigest(pin?.pin),
      issued: this.monotonic(),
    };
    zeroize(result.isk, expect);
    const sealed = sealWithKey({ key: this.ticketKey, ad: this.ticketAd(), payload: utf8(JSON.stringify(ticket)) });
    return { share: toB64u(responder.message), ticket: toB64u(sealed) };
  }

  /**
   * Finishes a run. Returns the answer, or throws: `pair_session_unknown` for anything that is not
   * this run's own finish (junk: nothing is counted and nothing ends), `pair_failed` for a wrong
   * password (counted), and the refusals of `complete`.
   */
  async finish(args: FinishArgs, source: EventSource = "app"): Promise<{ confirm: string; box: string }> {
    const { ctx } = this;
    const ticket = this.openTicket(args);
    const isk = fromB64u(ticket.isk);
    try {
      const user = ticket.userId === "" ? undefined : await ctx.users.require(ticket.userId);
      if (user !== undefined) await requireMayTry(ctx, user.userId, "pair");
      if (!equalBytes(fromB64u(args.confirm, "confirm"), fromB64u(ticket.expect))) {
        if (user !== undefined) await countWrong(ctx, user, "pair");
        throw new IqError("pair_failed", failureMessage(ticket.kind));
      }
      const transport = pairTransportKeys(isk, { iqId: ctx.iqId, appId: ticket.appId });
      try {
        const opened = openBox(transport.toIq, pairBoxAd(ctx.iqId, ticket.appId, "pair.finish"), args.box);
        const box = pairFinishBox.safeParse(opened);
        if (!box.success) throw new IqError("request_malformed", `pair.finish box: ${box.error.issues[0]?.message ?? "invalid"}`);
        const keys = deriveAppKeys(isk, { iqId: ctx.iqId, appId: ticket.appId });
        const app: AppRecord = {
          appId: ticket.appId,
          userId: "",
          codeKey: toB64u(keys.codeKey),
          messageKey: toB64u(keys.messageKey),
          codeCounter: 0,
          activatedAt: new Date(ctx.now()).toISOString(),
        };
        zeroize(keys.codeKey, keys.messageKey);
        const paired = await this.complete(ticket, app, box.data, source);
        const result: PairResultBox = {
          userId: paired.userId,
          role: paired.role,
          name: paired.name,
          identityKey: toB64u(ctx.keys().identityPublic),
          staticKey: toB64u(ctx.keys().staticPublic),
          challenge: this.challenges.issue(ticket.appId),
        };
        const sealed = sealWithKey({ key: transport.toApp, ad: pairBoxAd(ctx.iqId, ticket.appId, "pair.result"), payload: utf8(JSON.stringify(result)) });
        return { confirm: ticket.confirm, box: toB64u(sealed) };
      } finally {
        zeroize(transport.toIq, transport.toApp);
      }
    } finally {
      zeroize(isk);
    }
  }

  /** The run's own ticket, unexpired and unused, or junk. */
  private openTicket(args: FinishArgs): Ticket {
    const unknown = new IqError("pair_session_unknown", "no such activation in progress (it may have timed out): start again");
    let ticket: Ticket;
    try {
      const opened = openWithKey({ key: this.ticketKey, ad: this.ticketAd(), box: fromB64u(args.ticket, "ticket") });
      ticket = JSON.parse(Buffer.from(opened).toString("utf8")) as Ticket;
    } catch {
      throw unknown;
    }
    const now = this.monotonic();
    for (const [id, until] of this.used) if (until < now) this.used.delete(id);
    const commit = createHash("sha256").update(fromB64u(args.reveal, "reveal")).digest();
    if (now - ticket.issued > PAIRING.ticketTtlMs || this.used.has(ticket.id) || !equalBytes(commit, fromB64u(ticket.commit))) {
      throw unknown;
    }
    this.used.set(ticket.id, ticket.issued + PAIRING.ticketTtlMs);
    return ticket;
  }

  private async complete(ticket: Ticket, app: AppRecord, box: z.infer<typeof pairFinishBox>, source: EventSource): Promise<User> {
    const { ctx } = this;
    if (ticket.kind === "claim") {
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
      await ctx.events.record({ type: "claimed", source, user: user.userId });
      return user;
    }
    // The user may have been removed, or their PIN reset or changed, while this run was open.
    const user = await ctx.users.require(ticket.userId);
    const pin = await ctx.users.pin(user.userId);
    if (pin === undefined || pinDigest(pin.pin) !== ticket.pin || (ticket.kind === "activate" && !pin.pending)) {
      throw new IqError("pair_failed", "this activation is out of date (the PIN was reset or changed meanwhile): start again");
    }
    if (ticket.kind === "duplicate" && !this.takeInvite(user.userId)) {
      throw new IqError("invite_invalid", "the second-device invitation was used or has expired: run 'iq device invite' on the first device");
    }
    await ctx.lockout.recordSuccess(lockoutKey(user.userId, "pair"));
    const appIds = await ctx.users.appIds(user.userId);
    if (appIds.length >= CODE_PARAMS.devicesPerUser) {
      throw new IqError("too_many_devices", `a user may have at most ${CODE_PARAMS.devicesPerUser} devices on an IQ`);
    }
    // The app and its event in one synced batch: one fsync, and a crash keeps both or neither.
    await ctx.events.record(
      { type: ticket.kind === "activate" ? "activated" : "device_added", source, user: user.userId, details: { appId: app.appId } },
      ctx.users.appOps({ ...app, userId: user.userId }, ticket.kind === "activate" ? pin : undefined, appIds),
    );
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
    await requireMayTry(ctx, user.userId, "pair");
    const pin = await requirePin(ctx, user.userId);
    if (args.kind === "activate") {
      if (!pin.pending) {
        throw new IqError(
          "not_pending",
          "this user has already activated with the initial PIN: add a device with a Code (iq device invite), or ask the Owner for a PIN reset",
        );
      }
      if (pin.issuedAt !== undefined && ctx.now() - pin.issuedAt > ctx.initialPinTtlMs) {
        throw new IqError("initial_pin_expired", "this initial PIN has expired: ask the Owner or an Admin for a new one (iq pin reset)");
      }
      return { password: pairingPassword({ kind: "activate", pin: pin.pin }), user, pin };
    }
    const invite = this.invites.get(user.userId);
    const from = invite && invite.expiresAt >= ctx.now() ? await ctx.users.app(invite.fromAppId) : undefined;
    if (invite === undefined || from === undefined) {
      throw new IqError("invite_invalid", "no second-device invitation for this user: run 'iq device invite' on the first device");
    }
    const code = secondDeviceCode({ key: fromB64u(from.codeKey), iqId: ctx.iqId, appId: from.appId, pin: pin.pin, counter: invite.counter });
    return { password: pairingPassword({ kind: "duplicate", code, pin: pin.pin }), user, pin };
  }

  /** Uses up the user's invitation, if it is still good. */
  private takeInvite(userId: string): boolean {
    const invite = this.invites.get(userId);
    this.invites.delete(userId);
    return invite !== undefined && invite.expiresAt >= this.ctx.now();
  }

  private ticketAd(): Uint8Array {
    return lvCat(utf8("iq-hub/v2/pair-ticket"), utf8(this.ctx.iqId));
  }

}

/** A digest, so the ticket (sealed anyway) never holds the PIN itself. */
function pinDigest(pin: string | undefined): string {
  return pin === undefined ? "" : createHash("sha256").update(`iq-hub/v2/pin\0${pin}`).digest("base64url");
}

function openBox(key: Uint8Array, ad: Uint8Array, box: string): unknown {
  let bytes: Uint8Array;
  try {
    bytes = openWithKey({ key, ad, box: fromB64u(box, "box") });
  } catch {
    throw new IqError("seal_invalid", "the pairing box does not open for this run");
  }
  try {
    return JSON.parse(Buffer.from(bytes).toString("utf8"));
  } catch {
    throw new IqError("request_malformed", "the pairing box is not JSON");
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
