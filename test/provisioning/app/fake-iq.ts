/**
 * A small stand-in for the IQ's side of the protocol, built from the same crypto as the hub:
 * the responder of every pairing and the opener of every sealed command. It lets the app's tests
 * pin what the app sends (counters, boxes, Codes) without a hub, a store or a broker.
 */
import { cpaceFinish, cpaceStart, cpaceVerifyConfirm, deriveAppKeys, type CpaceResult } from "../../../provisioning/crypto/cpace.js";
import { validateCode, type CodePurpose } from "../../../provisioning/crypto/code.js";
import { open, seal } from "../../../provisioning/crypto/seal.js";
import type { Requester } from "../../../provisioning/app/client.js";
import { AppError } from "../../../provisioning/app/errors.js";
import { fromB64u, pairingCi, pairingPassword, secondDeviceCode, toB64u, type PairKind } from "../../../provisioning/pairing.js";
import { SEAL_PURPOSE, type Role } from "../../../provisioning/protocol/messages.js";

interface FakeUser {
  name: string;
  role: Role;
  pin: string;
}

interface FakeApp {
  appId: string;
  userId: string;
  codeKey: Uint8Array;
  messageKey: Uint8Array;
  commandCounter: number;
  codeCounter: number;
}

export interface SentRequest {
  op: string;
  args: Record<string, unknown>;
}

const json = (bytes: Uint8Array): Record<string, unknown> => JSON.parse(Buffer.from(bytes).toString("utf8")) as Record<string, unknown>;
const bytes = (value: unknown): Uint8Array => Buffer.from(JSON.stringify(value));

export class FakeIq implements Requester {
  readonly topicPrefix = "iq/v1";
  readonly sent: SentRequest[] = [];
  /** The sealed commands as the IQ opened them, with their counters. */
  readonly commands: { counter: number; op: string; args: Record<string, unknown>; pin: string; expiresAt: number }[] = [];
  readonly users = new Map<string, FakeUser>();
  readonly apps = new Map<string, FakeApp>();
  /** Called with each request before it is handled (tests look at the profile on disk here). */
  onRequest: (request: SentRequest) => Promise<void> | void = () => undefined;
  private readonly sessions = new Map<string, { kind: PairKind; appId: string; userId?: string; run: CpaceResult }>();
  private readonly invites = new Map<string, { appId: string; counter: number }>();
  private nextSession = 1;

  constructor(
    readonly iqId: string,
    private readonly setupSecret: string,
    private readonly now: () => number,
  ) {}

  async request(iqId: string, op: string, args: Record<string, unknown>): Promise<unknown> {
    if (iqId !== this.iqId) throw new AppError("no_answer", `no answer from IQ ${iqId}`);
    const request = { op, args };
    this.sent.push(request);
    await this.onRequest(request);
    switch (op) {
      case "pair.start":
        return this.pairStart(args as { kind: PairKind; appId: string; userId?: string; sid: string; share: string });
      case "pair.finish":
        return this.pairFinish(args as { session: string; confirm: string; box: string });
      case "app":
        return this.command(args as { appId: string; box: string });
      default:
        throw new AppError("op_unknown", `the fake IQ does not know ${op}`);
    }
  }

  watch(): Promise<() => Promise<void>> {
    return Promise.reject(new Error("the fake IQ has no topics"));
  }

  /** Adds a user waiting to activate with `pin`, as user.add would. */
  addUser(name: string, role: Role, pin: string): string {
    const userId = `u-${this.users.size + 1}`;
    this.users.set(userId, { name, role, pin });
    return userId;
  }

  private pairStart(args: { kind: PairKind; appId: string; userId?: string; sid: string; share: string }): unknown {
    const password = this.passwordFor(args.kind, args.userId);
    const start = cpaceStart("responder", {
      password,
      ci: pairingCi(args.kind, this.iqId, args.appId, args.userId ?? ""),
      sid: fromB64u(args.sid),
    });
    const run = cpaceFinish(start, fromB64u(args.share));
    const session = `s${this.nextSession++}`;
    this.sessions.set(session, { kind: args.kind, appId: args.appId, userId: args.userId, run });
    return { session, share: toB64u(start.message), confirm: toB64u(run.confirm) };
  }

  private passwordFor(kind: PairKind, userId: string | undefined): Uint8Array {
    if (kind === "claim") return pairingPassword({ kind, setupSecret: this.setupSecret });
    const user = this.users.get(userId ?? "");
    if (user === undefined) throw new AppError("user_unknown", "no such user");
    if (kind === "activate") return pairingPassword({ kind, pin: user.pin });
    const invite = this.invites.get(userId ?? "");
    const from = invite && this.apps.get(invite.appId);
    if (invite === undefined || from === undefined) throw new AppError("invite_invalid", "no invitation");
    const code = secondDeviceCode({ key: from.codeKey, iqId: this.iqId, appId: invite.appId, pin: user.pin, counter: invite.counter });
    return pairingPassword({ kind, code, pin: user.pin });
  }

  private pairFinish(args: { session: string; confirm: string; box: string }): unknown {
    const session = this.sessions.get(args.session);
    if (session === undefined) throw new AppError("pair_session_unknown", "no such session");
    this.sessions.delete(args.session);
    try {
      cpaceVerifyConfirm(session.run, fromB64u(args.confirm));
    } catch {
      throw new AppError("pair_failed", "wrong secret");
    }
    const keys = deriveAppKeys(session.run.isk, { iqId: this.iqId, appId: session.appId });
    const context = { key: keys.messageKey, iqId: this.iqId, appId: session.appId };
    const opened = open({ ...context, purpose: SEAL_PURPOSE.pair, sealed: fromB64u(args.box), lastCounter: 0 });
    const box = json(opened.payload) as { name?: string; pin?: string };
    const userId = session.kind === "claim" ? this.addUser(box.name ?? "", "owner", box.pin ?? "") : (session.userId ?? "");
    this.apps.set(session.appId, { appId: session.appId, userId, ...keys, commandCounter: opened.counter, codeCounter: 0 });
    const user = this.users.get(userId)!;
    const result = { userId, role: user.role, name: user.name };
    return { box: toB64u(seal({ ...context, purpose: SEAL_PURPOSE.pairResult, counter: opened.counter, payload: bytes(result) })) };
  }

  private command(args: { appId: string; box: string }): unknown {
    const app = this.apps.get(args.appId);
    if (app === undefined) throw new AppError("not_activated", "this app is not activated on this IQ (any more): activate it again");
    const context = { key: app.messageKey, iqId: this.iqId, appId: args.appId };
    const opened = open({ ...context, purpose: SEAL_PURPOSE.command, sealed: fromB64u(args.box), lastCounter: app.commandCounter });
    app.commandCounter = opened.counter;
    const command = json(opened.payload) as { op: string; args: Record<string, unknown>; pin: string; expiresAt: number };
    this.commands.push({ counter: opened.counter, ...command });
    const user = this.users.get(app.userId)!;
    if (command.pin !== user.pin) throw new AppError("pin_wrong", "wrong PIN");
    const result = this.run(command.op, command.args, app, user);
    return { box: toB64u(seal({ ...context, purpose: SEAL_PURPOSE.response, counter: opened.counter, payload: bytes(result) })) };
  }

  private run(op: string, args: Record<string, unknown>, app: FakeApp, user: FakeUser): unknown {
    switch (op) {
      case "whoami":
        return { userId: app.userId, name: user.name, role: user.role };
      case "open":
        return { lock: args.lock, officeMode: false };
      case "user.add": {
        const userId = this.addUser(args.name as string, args.role as Role, "480516");
        return { userId, name: args.name, role: args.role, initialPin: "480516" };
      }
      case "pin.reset": {
        this.acceptCode(app, "owner_reset", args.code as string, user.pin);
        const target = this.users.get(args.userId as string)!;
        target.pin = "730419";
        for (const [appId, other] of this.apps) if (other.userId === args.userId) this.apps.delete(appId);
        return { userId: args.userId, initialPin: target.pin };
      }
      case "device.invite":
        app.codeCounter = args.counter as number;
        this.invites.set(app.userId, { appId: app.appId, counter: app.codeCounter });
        return { expiresAt: this.now() + 180_000 };
      case "backup":
        return {
          backup: {
            format: "iq-hub-backup/1",
            iqId: this.iqId,
            createdAt: new Date(this.now()).toISOString(),
            users: [...this.users].map(([userId, u]) => ({ userId, name: u.name, role: u.role })),
            locks: [{ name: "door", officeMode: false }],
            settings: {},
          },
        };
      case "restore":
        return { users: [], missingLocks: [] };
      default:
        throw new AppError("op_unknown", `the fake IQ does not run ${op}`);
    }
  }

  private acceptCode(app: FakeApp, purpose: CodePurpose, code: string, pin: string): void {
    const verdict = validateCode({ key: app.codeKey, iqId: this.iqId, appId: app.appId, purpose, code, now: this.now(), expectedPin: pin, lastCounter: app.codeCounter });
    if (!verdict.ok) throw new AppError("code_rejected", `Code refused: ${verdict.reason}`);
    app.codeCounter = verdict.counter;
  }
}
