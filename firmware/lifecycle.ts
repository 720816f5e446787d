/**
 * The IQ's lifecycle: a small state machine for the phase the device is in (booting, unclaimed,
 * activated, resetting, error) plus the facts that colour it (claim window, broker, clock, door,
 * reset armed, a refusal just now). What the LED shows is derived from both by one priority
 * list, so no combination of events can leave the LED saying something stale.
 */
import { EventEmitter } from "node:events";
import { LED_TABLE, type DisplayState } from "./led-table.js";

export type Phase = "booting" | "unclaimed" | "activated" | "resetting" | "error";

export interface LifecycleFacts {
  phase: Phase;
  claimWindowUntil: number | undefined;
  /** undefined until a transport reports: no broker configured yet means nothing to complain about. */
  brokerConnected: boolean | undefined;
  /** Another client is using the hub's MQTT client id, and the two take the session from each other. */
  brokerContested: boolean;
  clockSynced: boolean | undefined;
  opening: boolean;
  officeMode: boolean;
  resetArmed: boolean;
  /** A Code or PIN was refused / a user was locked out: shown briefly, then the state returns. */
  refusedUntil: number | undefined;
  lockedOutUntil: number | undefined;
}

export interface LifecycleEvents {
  change: [state: DisplayState, facts: Readonly<LifecycleFacts>];
  /** The claim window ran out (not when a claim or a reset ended it). */
  claimWindowClosed: [];
}

/** Highest first: the first state whose condition holds is what the LED shows. */
const PRIORITY: readonly [DisplayState, (f: LifecycleFacts, now: number) => boolean][] = [
  ["error", (f) => f.phase === "error"],
  ["resetting", (f) => f.phase === "resetting"],
  ["resetArmed", (f) => f.resetArmed],
  ["booting", (f) => f.phase === "booting"],
  // An open outranks a refusal or lockout: those belong to one person (the lock counts per
  // user), and a door that is unlocked must never show red to the next person in line.
  ["opening", (f) => f.opening],
  ["refused", (f, now) => (f.refusedUntil ?? 0) > now],
  ["lockedOut", (f, now) => (f.lockedOutUntil ?? 0) > now],
  ["officeMode", (f) => f.officeMode],
  ["claimWindow", (f, now) => f.phase === "unclaimed" && (f.claimWindowUntil ?? 0) > now],
  ["unclaimed", (f) => f.phase === "unclaimed"],
  ["brokerContested", (f) => f.brokerContested],
  ["offline", (f) => f.brokerConnected === false],
  ["clockUnsynced", (f) => f.clockSynced === false],
  ["ready", () => true],
];

const REFUSED_SHOW_MS = LED_TABLE.refused.times * LED_TABLE.refused.periodMs;
const LOCKED_OUT_SHOW_MS = 10_000;

export class Lifecycle extends EventEmitter<LifecycleEvents> {
  private facts: LifecycleFacts = {
    phase: "booting",
    claimWindowUntil: undefined,
    brokerConnected: undefined,
    brokerContested: false,
    clockSynced: undefined,
    opening: false,
    officeMode: false,
    resetArmed: false,
    refusedUntil: undefined,
    lockedOutUntil: undefined,
  };
  private shown: DisplayState = "booting";
  /** Re-evaluates when a timed fact (claim window, refusal) runs out. */
  private expiry: NodeJS.Timeout | undefined;

  /**
   * `now` times the claim window and the brief states: monotonic by default, because time sync
   * at boot steps the wall clock (a Pi without RTC), which would close the claim window at once.
   */
  constructor(private readonly now: () => number = () => performance.now()) {
    super();
  }

  get state(): DisplayState {
    return this.shown;
  }

  get phase(): Phase {
    return this.facts.phase;
  }

  snapshot(): Readonly<LifecycleFacts> {
    return { ...this.facts };
  }

  isClaimWindowOpen(): boolean {
    return this.facts.phase === "unclaimed" && (this.facts.claimWindowUntil ?? 0) > this.now();
  }

  /** Moves to a phase. Leaving "error" is not allowed: a fatal error ends the process. */
  enter(phase: Exclude<Phase, "booting">): void {
    if (this.facts.phase === "error") return;
    this.update({ phase, resetArmed: false, ...(phase === "unclaimed" ? {} : { claimWindowUntil: undefined }) });
  }

  openClaimWindow(durationMs: number): void {
    if (this.facts.phase !== "unclaimed") return;
    this.update({ claimWindowUntil: this.now() + durationMs });
  }

  closeClaimWindow(): void {
    this.update({ claimWindowUntil: undefined });
  }

  setBrokerConnected(connected: boolean): void {
    this.update({ brokerConnected: connected });
  }

  setBrokerContested(contested: boolean): void {
    this.update({ brokerContested: contested });
  }

  setClockSynced(synced: boolean): void {
    this.update({ clockSynced: synced });
  }

  setOpening(opening: boolean): void {
    this.update({ opening });
  }

  setOfficeMode(on: boolean): void {
    this.update({ officeMode: on });
  }

  setResetArmed(armed: boolean): void {
    this.update({ resetArmed: armed });
  }

  showRefused(): void {
    this.update({ refusedUntil: this.now() + REFUSED_SHOW_MS });
  }

  showLockedOut(): void {
    this.update({ lockedOutUntil: this.now() + LOCKED_OUT_SHOW_MS });
  }

  /** Stops the expiry timer; the process is ending. */
  close(): void {
    clearTimeout(this.expiry);
    this.removeAllListeners();
  }

  private update(patch: Partial<LifecycleFacts>): void {
    this.facts = { ...this.facts, ...patch };
    this.reevaluate();
  }

  private reevaluate(): void {
    const now = this.now();
    if (this.facts.claimWindowUntil !== undefined && this.facts.claimWindowUntil <= now) {
      this.facts = { ...this.facts, claimWindowUntil: undefined };
      this.emit("claimWindowClosed");
    }
    const next = PRIORITY.find(([, holds]) => holds(this.facts, now))![0];
    this.scheduleExpiry(now);
    if (next === this.shown) return;
    this.shown = next;
    this.emit("change", next, this.snapshot());
  }

  private scheduleExpiry(now: number): void {
    clearTimeout(this.expiry);
    const deadlines = [this.facts.claimWindowUntil, this.facts.refusedUntil, this.facts.lockedOutUntil].filter(
      (t): t is number => t !== undefined && t > now,
    );
    if (deadlines.length === 0) return;
    this.expiry = setTimeout(() => this.reevaluate(), Math.min(...deadlines) - now);
    this.expiry.unref();
  }
}
