/**
 * What the request handler needs of the IQ. Hub implements it; the getters always return the
 * current objects (a factory reset replaces the secret store and everything built on it).
 */
import type { Access } from "../access.js";
import type { KeyProtection } from "../device-key.js";
import type { Audit } from "../audit.js";
import type { Lifecycle } from "../lifecycle.js";
import type { Lockout } from "../lockout.js";
import type { Logger } from "../log.js";
import type { RateLimiter } from "../rate-limit.js";
import type { Store, StoreOp } from "../store.js";
import type { Users } from "../users.js";
import type { IqKeys } from "../iq-keys.js";
import type { WebBudget } from "./web-budget.js";

export interface StatusResult {
  iqId: string;
  version: string;
  phase: string;
  state: string;
  claimed: boolean;
  claimWindowOpen: boolean;
  /** null: cannot be told on this machine. */
  clockSynced: boolean | null;
  /** `otp-wrapped`: the device key is wrapped with the board's OTP key; `file-only`: it is a plain file. */
  keyProtection: KeyProtection;
  locks: { name: string; unlocked: boolean; officeMode: boolean }[];
}

export interface IqContext {
  readonly iqId: string;
  readonly log: Logger;
  readonly now: () => number;
  readonly store: Store;
  readonly events: Audit;
  readonly users: Users;
  readonly lockout: Lockout;
  /** The per-IQ limiter for web Codes (before they are checked) and for refusals of requests that proved no app key. */
  readonly junk: RateLimiter;
  readonly access: Access;
  readonly lifecycle: Lifecycle;
  /** Where responses may go: the IQ's response tree (replyTo must start with it). */
  readonly responsesTopic: string;
  /** False while the clock is known not to be synchronised: time-bound Codes are refused then. */
  clockSynced(): boolean;
  status(): StatusResult;
  /** The setup secret while unclaimed (story 1); undefined once claimed. */
  setupSecret(): Promise<string | undefined>;
  /** The writes that mark the IQ claimed and forget its setup secret, committed with the owner. */
  claimOps(): StoreOp[];
  /** After the claim is on disk: the setup secret's file goes, the IQ is activated. */
  afterClaim(): Promise<void>;
  /** Settings that a backup carries (story 8). */
  settings(): Record<string, unknown>;
  /** The IQ's identity and static keys (made with the setup secret, replaced by a factory reset). */
  keys(): IqKeys;
  /** A document signed by the IQ's identity key (answers, state, events). */
  sign(kind: "answer" | "state" | "event", body: unknown): { signed: string; sig: string };
  /** Failed web Codes per user in a rolling window. */
  readonly webBudget: WebBudget;
  /** How long an unused random initial PIN stays good. */
  readonly initialPinTtlMs: number;
}
