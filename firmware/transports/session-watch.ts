/**
 * Notices another client using the hub's MQTT client id. The broker then closes the hub's
 * connection to hand the session over, the hub connects again and takes it back, and so on.
 * MQTT 5 brokers may say so (a DISCONNECT with reason 0x8E, session taken over); MQTT 3.1.1 and
 * some MQTT 5 brokers (mosquitto 2.0.11) just close, so connections closed soon after CONNACK
 * several times in a row count too. A contest is recorded once (a `session_takeover` event), shown
 * on the LED until the hub has held its session for a while, and logged at most once per
 * LOG_EVERY_MS however often it changes hands: the hub never stops reclaiming.
 */
import type { Audit } from "../audit.js";
import type { Logger } from "../log.js";

/** MQTT 5 reason code of the DISCONNECT a broker sends the client whose session someone else took. */
export const SESSION_TAKEN_OVER = 0x8e;
/** A connection closed sooner than this after CONNACK was cut short. */
export const CUT_SHORT_MS = 5_000;
/** Cut short this many times in a row: contested. Once or twice is a flaky network or a restarting broker. */
const CUT_SHORT_IN_A_ROW = 3;
/** A session held this long is the hub's again. */
const HELD_MS = 60_000;
const LOG_EVERY_MS = 10 * 60_000;

export interface SessionWatchOptions {
  audit: Audit;
  log: Logger;
  /** Drives the LED. */
  onContested: (contested: boolean) => void;
  now?: () => number;
}

export class SessionWatch {
  private connectedAt: number | undefined;
  private toldTakenOver = false;
  private cutShort = 0;
  private contested = false;
  private takeoversUnlogged = 0;
  private loggedAt = 0;
  private heldTimer: NodeJS.Timeout | undefined;
  private readonly now: () => number;

  constructor(private readonly options: SessionWatchOptions) {
    this.now = options.now ?? (() => performance.now());
  }

  /** CONNACK: the session is the hub's, for now. */
  connected(): void {
    this.connectedAt = this.now();
    clearTimeout(this.heldTimer);
    this.heldTimer = setTimeout(() => this.held(), HELD_MS);
    this.heldTimer.unref();
  }

  /** The broker's DISCONNECT said the session was taken over; the close follows. */
  takenOver(): void {
    this.toldTakenOver = true;
  }

  closed(): void {
    clearTimeout(this.heldTimer);
    const { connectedAt, toldTakenOver } = this;
    this.connectedAt = undefined;
    this.toldTakenOver = false;
    // A connection attempt that failed says nothing about the session.
    if (connectedAt === undefined) return;
    if (toldTakenOver) return this.takenAway("the broker said the session was taken over (MQTT 5 reason 0x8E)");
    if (this.now() - connectedAt >= CUT_SHORT_MS) {
      this.cutShort = 0;
      return;
    }
    this.cutShort += 1;
    if (this.cutShort >= CUT_SHORT_IN_A_ROW) {
      this.takenAway(`the broker closed the connection within ${CUT_SHORT_MS / 1000} s of accepting it, ${this.cutShort} times in a row`);
    }
  }

  stop(): void {
    clearTimeout(this.heldTimer);
  }

  private takenAway(evidence: string): void {
    if (this.contested) {
      this.takeoversUnlogged += 1;
      if (this.now() - this.loggedAt < LOG_EVERY_MS) return;
      this.options.log.warn("the hub's MQTT session is still contested; reclaiming", { takeovers: this.takeoversUnlogged });
      this.takeoversUnlogged = 0;
      this.loggedAt = this.now();
      return;
    }
    this.contested = true;
    this.loggedAt = this.now();
    this.options.log.warn(
      "another client is using the hub's MQTT client id (session takeover?); reclaiming. If mqtt.clientId is set, " +
        "make it unguessable; otherwise the id in the state directory was read by someone: delete mqtt-client-id and restart",
      { evidence },
    );
    this.options.onContested(true);
    this.options.audit.record({ type: "session_takeover", source: "system", details: { evidence } }).catch((error: unknown) =>
      this.options.log.error("cannot record the session takeover", { error }),
    );
  }

  private held(): void {
    this.cutShort = 0;
    if (!this.contested) return;
    this.contested = false;
    this.takeoversUnlogged = 0;
    this.options.log.info(`the hub has held its MQTT session for ${HELD_MS / 1000} s: no longer contested`);
    this.options.onContested(false);
  }
}
