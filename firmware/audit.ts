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

/** How long acknowledged events may wait in the outbox for an event's batch to delete them. */
const FORGET_AFTER_MS = 1_000;

export class Audit {
  private tail: Promise<unknown> = Promise.resolve();
  private readonly listeners = new Set<AuditListener>();
  /**
   * Outbox keys of events the broker has acknowledged but that are still on disk. Their deletes
   * ride in the next event's synced batch (an opening then costs one LevelDB write, not two), or
   * go on their own after FORGET_AFTER_MS. Lost in a crash, they are only sent once more.
   */
  private readonly acknowledged = new Set<string>();
  private forgetTimer: NodeJS.Timeout | undefined;

  private constructor(
    private readonly store: Store,
    private readonly maxEvents: number,
    private readonly now: () => number,
    private lastSeq: number,
  ) {}

  static async open(store: Store, maxEvents: number, now: () => number = Date.now): Promise<Audit> {
    const [last] = await store.sublevel("events").keys({ reverse: true, limit: 1 }).all();
    const lastSeq = last === undefined ? 0 : Number(last);
    // Whatever a smaller maxEvents leaves over; from here on each append keeps the size. A trim that
    // fails (disk full) is no reason not to start: the log is only longer than asked.
    if (lastSeq > maxEvents) await store.clearRange("events", { lte: seqKey(lastSeq - maxEvents) }).catch(() => undefined);
    return new Audit(store, maxEvents, now, lastSeq);
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
    const head = (await this.store.sublevel("outbox").values({ limit: limit + this.acknowledged.size }).all()) as AuditEvent[];
    return head.filter((event) => !this.acknowledged.has(seqKey(event.seq))).slice(0, limit);
  }

  /** The broker has the event: it leaves the outbox, with the next event or within a second (unsynced either way). */
  acknowledge(seq: number): void {
    this.acknowledged.add(seqKey(seq));
    this.forgetTimer ??= setTimeout(() => void this.forgetAcknowledged(), FORGET_AFTER_MS).unref();
  }

  private async forgetAcknowledged(): Promise<void> {
    this.forgetTimer = undefined;
    const keys = [...this.acknowledged];
    try {
      await this.store.forget("outbox", keys);
      for (const key of keys) this.acknowledged.delete(key);
    } catch {
      // A closed or failing store: the keys stay, for the next event's batch or the next start.
    }
  }

  private async append(input: AuditEventInput, alongside: readonly StoreOp[]): Promise<AuditEvent> {
    const seq = this.lastSeq + 1;
    const event: AuditEvent = { seq, at: new Date(this.now()).toISOString(), ...input };
    const key = seqKey(seq);
    const forgotten = [...this.acknowledged];
    await this.store.commit([
      { type: "put", in: "events", key, value: event },
      { type: "put", in: "outbox", key, value: event },
      ...alongside,
      ...forgotten.map((done) => ({ type: "del" as const, in: "outbox" as const, key: done })),
      // One in, one out: the log stays at maxEvents without a write of its own (open() trims the
      // rest once). The outbox keeps its own copy, so trimming never drops an undelivered event.
      ...(seq > this.maxEvents ? [{ type: "del" as const, in: "events" as const, key: seqKey(seq - this.maxEvents) }] : []),
    ]);
    for (const done of forgotten) this.acknowledged.delete(done);
    this.lastSeq = seq;
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
