/**
 * The handler's queue: one task at a time (so two copies of a Code or a sealed command can never
 * both pass their check), taken from lanes in priority order. Sealed commands have a lane of their
 * own ahead of everything anyone can send without a key, so a flood of `status`, pairing starts or
 * junk never delays a user's command; each lane is bounded, so a flood cannot exhaust a Pi Zero's
 * memory either. The exclusive lane (a factory reset) goes before both.
 */
export const LANE = { exclusive: 0, sealed: 1, plain: 2 } as const;
export type Lane = (typeof LANE)[keyof typeof LANE];

interface Queued {
  run: () => Promise<void>;
}

export class Lanes {
  private readonly queues: Queued[][] = [[], [], []];
  private pumping = false;

  constructor(private readonly maxQueued: number) {}

  /** Runs `task` in its turn; undefined (dropped unread) when its lane is full. */
  run<T>(lane: Lane, task: () => Promise<T>): Promise<T> | undefined {
    const queue = this.queues[lane]!;
    if (lane !== LANE.exclusive && queue.length >= this.maxQueued) return undefined;
    const result = new Promise<T>((resolve, reject) => queue.push({ run: () => task().then(resolve, reject) }));
    void this.pump();
    return result;
  }

  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    try {
      for (let next = this.next(); next !== undefined; next = this.next()) await next.run();
    } finally {
      this.pumping = false;
    }
  }

  private next(): Queued | undefined {
    for (const queue of this.queues) if (queue.length > 0) return queue.shift();
    return undefined;
  }
}
