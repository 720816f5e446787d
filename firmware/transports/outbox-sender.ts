/**
 * Empties the audit outbox into the broker. The LevelDB outbox, not mqtt.js's in-memory queue,
 * is the source of truth: an event leaves it only once the broker has acknowledged it, and
 * after every reconnect sending starts again from the outbox head. Subscribers may therefore see
 * an event twice (they dedupe by `seq`) but never miss one, and first sightings come in order.
 */
import type { Audit, AuditEvent } from "../audit.js";
import type { Logger } from "../log.js";

export interface OutboxSenderOptions {
  audit: Audit;
  /** Publishes one event; resolves once the broker has acknowledged it, rejects otherwise. */
  publish: (event: AuditEvent) => Promise<void>;
  log: Logger;
  /** Pause after the broker refused an event, before the outbox head is sent again. */
  retryMs?: number;
}

const DEFAULT_RETRY_MS = 5_000;

export class OutboxSender {
  /** Bumped whenever what is in flight stops counting (disconnect, refusal), so late callbacks cannot move the window. */
  private epoch = 0;
  private connected = false;
  private window = 1;
  /** Highest seq handed to `publish` in this epoch. */
  private cursor = 0;
  private inFlight = 0;
  private pumping = false;
  private pumpAgain = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private unsubscribe: (() => void) | undefined;

  constructor(private readonly options: OutboxSenderOptions) {}

  /** Starts listening for new events; nothing is sent before `resume`. */
  start(): void {
    // After the current turn: the event is recorded before the relay moves, and the answer to the
    // request that caused it is sealed and published in the same turn; signing and publishing the
    // event (about 0.3 ms) must not delay that answer (docs/performance.md).
    this.unsubscribe = this.options.audit.onRecord((event) => setImmediate(() => this.onRecorded(event)));
  }

  /**
   * A new event. When everything before it is already on its way, it goes at once, without
   * reading the outbox back from disk (that read cost every opening about half a millisecond);
   * otherwise the outbox decides, from its head.
   */
  private onRecorded(event: AuditEvent): void {
    const epoch = this.epoch;
    if (!this.pumping && this.canSend(epoch) && this.inFlight < this.window && event.seq === this.cursor + 1) {
      this.cursor = event.seq;
      this.inFlight += 1;
      this.send(event, epoch);
      return;
    }
    this.pump();
  }

  stop(): void {
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    this.pause();
  }

  /**
   * The broker is reachable: send the whole outbox from its head, at most `window` events
   * unacknowledged at a time (the broker's receive maximum bounds it).
   */
  resume(window: number): void {
    this.connected = true;
    this.window = Math.max(1, window);
    this.restartFromHead();
  }

  /** The connection is gone. Whatever was in flight stays in the outbox and goes again on `resume`. */
  pause(): void {
    this.connected = false;
    this.epoch += 1;
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
  }

  private restartFromHead(): void {
    this.epoch += 1;
    this.cursor = 0;
    this.inFlight = 0;
    this.pump();
  }

  private canSend(epoch: number): boolean {
    return this.connected && this.retryTimer === undefined && epoch === this.epoch;
  }

  /** One filling loop at a time; a wake-up during it makes it look again. */
  private pump(): void {
    if (this.pumping) {
      this.pumpAgain = true;
      return;
    }
    this.pumping = true;
    void (async () => {
      try {
        do {
          this.pumpAgain = false;
          await this.fill();
        } while (this.pumpAgain);
      } catch (error) {
        // The store failed to read; the next event or reconnect tries again.
        this.options.log.error("cannot read the event outbox", { error });
      } finally {
        this.pumping = false;
      }
    })();
  }

  private async fill(): Promise<void> {
    const epoch = this.epoch;
    // Everything recorded has been handed out in this epoch: nothing to read.
    while (this.canSend(epoch) && this.inFlight < this.window && this.cursor < this.options.audit.lastSequence) {
      // Outbox entries up to the cursor are all in flight, so this many from the head covers a full window of new ones.
      const head = await this.options.audit.pending(this.inFlight + this.window);
      const due = head.filter((event) => event.seq > this.cursor);
      if (!this.canSend(epoch) || due.length === 0) return;
      for (const event of due.slice(0, this.window - this.inFlight)) {
        this.cursor = event.seq;
        this.inFlight += 1;
        this.send(event, epoch);
      }
    }
  }

  private send(event: AuditEvent, epoch: number): void {
    const { audit, publish, log } = this.options;
    publish(event)
      .then(() => {
        audit.acknowledge(event.seq);
      })
      .then(
        () => {
          if (epoch !== this.epoch) return;
          this.inFlight -= 1;
          this.pump();
        },
        (error: unknown) => {
          // After a disconnect, resume() sends from the head anyway; only a live refusal needs a retry.
          if (epoch !== this.epoch || !this.connected) return;
          const retryMs = this.options.retryMs ?? DEFAULT_RETRY_MS;
          log.warn("event not acknowledged; the outbox is sent again from its head", { seq: event.seq, error, retryMs });
          this.epoch += 1;
          this.retryTimer = setTimeout(() => {
            this.retryTimer = undefined;
            if (this.connected) this.restartFromHead();
          }, retryMs);
        },
      );
  }
}
