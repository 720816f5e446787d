/** A stand-in for the onoff module: records what the backend asks of it and fails on demand like the kernel. */
import type { BinaryValue, Direction, Edge, ValueCallback } from "onoff";
import type { OnoffModule, OnoffPin } from "../../hal/onoff-backend.js";

export interface FakeOnoff extends OnoffModule {
  /** Every pin constructed, in order. */
  pins: FakePin[];
  /** Make the next constructions throw this errno, as onoff does when the kernel refuses the export. */
  failWith(code: string): void;
}

export interface FakePin extends OnoffPin {
  gpio: number;
  direction: Direction;
  edge?: Edge;
  value: BinaryValue;
  unexported: boolean;
  /** Change the level and call the watchers, as an epoll interrupt would. */
  interrupt(value: BinaryValue): void;
}

/** @param inputLevel what an input reads when exported: high by default, as the pull-up holds it. */
export function fakeOnoff(inputLevel: BinaryValue = 1): FakeOnoff {
  const pins: FakePin[] = [];
  let failure: string | undefined;

  class Gpio implements FakePin {
    value: BinaryValue;
    unexported = false;
    private watchers: ValueCallback[] = [];

    constructor(
      readonly gpio: number,
      readonly direction: Direction,
      readonly edge?: Edge,
    ) {
      if (failure) throw Object.assign(new Error(`${failure}: export ${gpio}`), { code: failure });
      this.value = direction === "in" ? inputLevel : direction === "high" ? 1 : 0;
      pins.push(this);
    }

    readSync(): BinaryValue {
      return this.value;
    }
    writeSync(value: BinaryValue): void {
      this.value = value;
    }
    watch(callback: ValueCallback): void {
      this.watchers.push(callback);
    }
    unwatchAll(): void {
      this.watchers = [];
    }
    unexport(): void {
      this.unexported = true;
    }
    interrupt(value: BinaryValue): void {
      this.value = value;
      for (const watcher of this.watchers) watcher(null, value);
    }
  }

  return {
    Gpio,
    pins,
    failWith: (code) => {
      failure = code;
    },
  };
}
