/**
 * The audit trail: every decision the hub makes becomes an event with a gap-free sequence
 * number. The event and its outbox copy are written in one synced batch before the caller goes
 * on, so a crash right after can lose neither; the MQTT transport empties the outbox only when
 * the broker acknowledges. The next sequence number is derived from the last stored event, so
 * there is no separate counter that could drift from the log.
 */
import type { Store, StoreOp } from "./store.js";

export type EventSource = "web" | "app" | "ble" | "button" | "system";

export interface AuditEventInput {
  type: string;
  source: EventSource;
  user?: string;
  lock?: string;
  /** Machine-readable reason for refusals (the error code). */
  reason?: string;
  details?: Record<string, unknown>;
}

export interface AuditEvent extends AuditEventInput {
  seq: number;
  /** ISO 8601 time of the decision. */
  at: string;
}

const SEQ_DIGITS = 15;
export const seqKey = (seq: number): string => String(seq).padStart(SEQ_DIGITS, "0");

export type AuditListener = (event: AuditEvent) => void;

export class Audit {
  private tail: Promise<unknown> = Promise.resolve();
  private readonly listeners = new Set<AuditListener>();

  private constructor(
    private readonly store: Store,
    private readonly maxEvents: number,
    private readonly now: () => number,
    private lastSeq: number,
  ) {}

  static async open(store: Store, maxEvents: number, now: () => number = Date.now): Promise<Audit> {
    const [last] = await store.sublevel("events").keys({ reverse: true, limit: 1 }).all();
    return new Audit(store, maxEvents, now, last === undefined ? 0 : Number(last));
  }

  /**
   * Records an event durably; resolves once it is on disk. Concurrent calls are serialised.
   * `alongside`: writes that must land in the same synced batch (the Code counter that an opening
   * spends), so one fsync covers both and a crash keeps both or neither.
   */
  record(input: AuditEventInput, alongside: readonly StoreOp[] = []): Promise<AuditEvent> {
    const result = this.tail.then(() => this.append(input, alongside));
    this.tail = result.catch(() => undefined);
    return result;
  }

  /** Called after each durable append (the transport wakes its outbox sender). */
  onRecord(listener: AuditListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  get lastSequence(): number {
    return this.lastSeq;
  }

  /** Events after `afterSeq`, oldest first. */
  async list(options: { afterSeq?: number; limit?: number } = {}): Promise<AuditEvent[]> {
    const events = this.store.sublevel("events");
    const values = await events
      .values({ gt: seqKey(options.afterSeq ?? 0), limit: options.limit ?? 100 })
      .all();
    return values as AuditEvent[];
  }

  /** Events not yet acknowledged by the broker, oldest first. */
  async pending(limit = 100): Promise<AuditEvent[]> {
    return (await this.store.sublevel("outbox").values({ limit }).all()) as AuditEvent[];
  }

  /** The broker has the event: it leaves the outbox (unsynced: lost in a power cut, it is sent again). */
  async acknowledge(seq: number): Promise<void> {
    await this.store.forget("outbox", seqKey(seq));
  }

  private async append(input: AuditEventInput, alongside: readonly StoreOp[]): Promise<AuditEvent> {
    const seq = this.lastSeq + 1;
    const event: AuditEvent = { seq, at: new Date(this.now()).toISOString(), ...input };
    const key = seqKey(seq);
    await this.store.commit([
      { type: "put", in: "events", key, value: event },
      { type: "put", in: "outbox", key, value: event },
      ...alongside,
    ]);
    this.lastSeq = seq;
    // The outbox keeps its own copy, so trimming the log never drops an undelivered event. A trim
    // that fails (disk full) must not turn a recorded event into a failed one: the caller would
    // refuse what is already on disk. The next append trims everything older anyway.
    const trimmed = seq - this.maxEvents;
    if (trimmed > 0) await this.store.clearRange("events", { lte: seqKey(trimmed) }).catch(() => undefined);
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch {
        // A failing listener (a transport) must not undo or block a recorded decision.
      }
    }
    return event;
  }
}
