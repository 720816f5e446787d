/**
 * The one stopwatch of every timed opening, MQTT or BLE, app or web relay: it sits between the
 * real companion app (provisioning/app/) and its transport, so what it times is from the sealed
 * request's publication (or first BLE write) to its verified answer — the IQ's round trip, without
 * the app's own sealing and profile writes. Every timed opening must succeed: a refusal or a
 * wrong answer throws, so a broken path can never pass for a fast one.
 */
import type { AcceptAnswer, MessageHandler, OutgoingRequest, Requester } from "../provisioning/app/client.js";
import { DEFAULT_LOCK, type Companion, type LockState } from "../provisioning/app/companion.js";

/** Sealed commands travel as op "app" (web Codes too: the relay seals them). */
const SEALED_OP = "app";

export class WireStopwatch implements Requester {
  readonly topicPrefix: string;
  private totalMs = 0;
  private count = 0;

  constructor(private readonly inner: Requester) {
    this.topicPrefix = inner.topicPrefix;
  }

  async request<T>(iqId: string, request: OutgoingRequest, accept: AcceptAnswer<T>): Promise<T> {
    const start = performance.now();
    try {
      return await this.inner.request(iqId, request, accept);
    } finally {
      if (request.op === SEALED_OP) {
        this.totalMs += performance.now() - start;
        this.count += 1;
      }
    }
  }

  watch(filter: string, onMessage: MessageHandler): Promise<() => Promise<void>> {
    return this.inner.watch(filter, onMessage);
  }

  /**
   * Runs one command and returns its wire time. A command the app sends twice (its challenge had
   * gone stale, as after a hub restart) counts both trips: the person waited for both.
   */
  async time(command: () => Promise<unknown>): Promise<{ ms: number; trips: number }> {
    const [totalBefore, countBefore] = [this.totalMs, this.count];
    await command();
    return { ms: this.totalMs - totalBefore, trips: this.count - countBefore };
  }
}

/** A companion app whose sealed commands are timed on the wire. */
export class TimedApp {
  constructor(
    readonly app: Companion,
    private readonly wire: WireStopwatch,
  ) {}

  /** One opening with the PIN; its wire time in ms. */
  async open(iqId: string, pin: string): Promise<number> {
    return this.timedOpening(() => this.app.open({ iqId, pin }));
  }

  /** On a web relay's app: passes on a person's Code; its wire time in ms. */
  async webOpen(iqId: string, userId: string, code: string): Promise<number> {
    return this.timedOpening(() => this.app.webOpen({ iqId, userId, code }));
  }

  private async timedOpening(opening: () => Promise<LockState>): Promise<number> {
    let state: LockState | undefined;
    const { ms, trips } = await this.wire.time(async () => (state = await opening()));
    // The companion resolves only with a verified, ok answer; the lock it names must be ours.
    if (state?.lock !== DEFAULT_LOCK || state.officeMode) throw new Error(`an opening answered ${JSON.stringify(state)}, not the door opened`);
    if (trips === 0) throw new Error("an opening sent no sealed request: the stopwatch saw nothing to time");
    return ms;
  }
}
