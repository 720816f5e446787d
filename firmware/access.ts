/**
 * What the door does once a request has been authorised: pulse a lock open, or hold it open
 * (Office Mode, the Matter Door Lock's "Passage" operating mode) until switched off. Each
 * decision is recorded before the relay moves, so an opening never happens without its event.
 * Office Mode is not persisted on purpose: after a power cut the door comes back locked.
 */
import type { Relay } from "../hal/relay.js";
import type { Audit, AuditEventInput, EventSource } from "./audit.js";
import { IqError } from "./errors.js";
import type { StoreOp } from "./store.js";
import type { Lifecycle } from "./lifecycle.js";
import { untrusted, type Logger } from "./log.js";

export interface Actor {
  userId: string;
  /** For the log only: the event keeps the id, which a rename does not change. */
  name: string;
  source: EventSource;
}

export class Access {
  private readonly office = new Set<string>();
  private readonly pulsing = new Set<string>();
  /** Bumped by lockAll(): a decision taken before it must not move a relay after it. */
  private epoch = 0;

  constructor(
    private readonly locks: ReadonlyMap<string, Relay>,
    private readonly audit: () => Audit,
    private readonly lifecycle: Lifecycle,
    /** Called when a lock's Office Mode changes (the retained state is published again). */
    private readonly onOfficeModeChange: () => void,
    /** Who opened or held a door open: whoever reads the log asks that first. */
    private readonly log: Logger,
  ) {}

  lockNames(): string[] {
    return [...this.locks.keys()];
  }

  isOfficeMode(lock: string): boolean {
    return this.office.has(lock);
  }

  /**
   * Pulses the lock; resolves once the event (with `spend`: the Code counter the opening uses up,
   * in the same synced batch) is on disk and the relay has opened.
   */
  async open(lock: string, actor: Actor, spend: readonly StoreOp[] = []): Promise<{ lock: string; officeMode: boolean }> {
    const relay = this.relay(lock);
    await this.recordThenCheck({ type: "opened", source: actor.source, user: actor.userId, lock }, spend);
    // A name is chosen by a person: made safe for one log line like any text from outside.
    this.log.info(`${lock} opened by ${untrusted(actor.name)}`, { user: actor.userId, source: actor.source });
    const extending = this.pulsing.has(lock);
    this.pulsing.add(lock);
    const pulse = relay.pulse();
    this.lifecycle.setOpening(true);
    // A pulse during a pulse extends it and hands back the same promise: watch its end once, or
    // every opening while the door is open would add a reaction to it (memory, until it ends).
    if (!extending) {
      void pulse.finally(() => {
        this.pulsing.delete(lock);
        this.lifecycle.setOpening(this.pulsing.size > 0);
      });
    }
    return { lock, officeMode: this.office.has(lock) };
  }

  async setOfficeMode(lock: string, on: boolean, actor: Actor, spend: readonly StoreOp[] = []): Promise<{ lock: string; officeMode: boolean }> {
    const relay = this.relay(lock);
    await this.recordThenCheck({ type: on ? "office_on" : "office_off", source: actor.source, user: actor.userId, lock }, spend);
    this.log.info(`${lock}: Office Mode ${on ? "on" : "off"} by ${untrusted(actor.name)}`, { user: actor.userId, source: actor.source });
    if (on) {
      this.office.add(lock);
      relay.hold();
    } else {
      this.office.delete(lock);
      relay.lock();
    }
    this.lifecycle.setOfficeMode(this.office.size > 0);
    this.onOfficeModeChange();
    return { lock, officeMode: on };
  }

  /** Every lock to its safe state (factory reset; a store that cannot record what a door does). */
  lockAll(): void {
    this.epoch += 1;
    this.office.clear();
    for (const relay of this.locks.values()) relay.lock();
    this.lifecycle.setOfficeMode(false);
    this.onOfficeModeChange();
  }

  /**
   * The decision is on disk before the relay moves; if every lock was forced safe meanwhile (a
   * factory reset began while the event was being written), the relay does not move at all.
   */
  private async recordThenCheck(event: AuditEventInput, alongside: readonly StoreOp[]): Promise<void> {
    const epoch = this.epoch;
    await this.audit().record(event, alongside);
    if (epoch !== this.epoch || this.lifecycle.phase !== "activated") {
      throw new IqError("resetting", "the IQ is being reset: nothing opens now");
    }
  }

  /** Refuses an unknown lock before anything else is spent on the request. */
  requireLock(lock: string): void {
    this.relay(lock);
  }

  private relay(lock: string): Relay {
    const relay = this.locks.get(lock);
    if (relay === undefined) {
      throw new IqError("lock_unknown", `no lock "${lock}" on this IQ; locks: ${this.lockNames().join(", ")}`);
    }
    return relay;
  }
}
