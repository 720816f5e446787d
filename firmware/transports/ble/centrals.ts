/**
 * The request side of the BLE link: chunks written by each central (BlueZ names it in the
 * `device` option, with the link's `mtu`) are reassembled one message per central, within a size,
 * chunk and time limit; a finished message is handed on. Every framing error refuses the write
 * with a BlueZ error name (which BlueZ turns into an ATT error for the central) and forgets the
 * message, so a broken or hostile central costs nothing after its write.
 */
import { FramingError, Reassembler, chunkBytes, type FramingProblem } from "../../../provisioning/protocol/ble-framing.js";
import { MAX_MTU, MIN_MTU } from "../../../provisioning/protocol/ble.js";
import type { Logger } from "../../log.js";
import { BusError, type BusOptions } from "./gatt-objects.js";

/** A central that wrote a whole request, and the MTU of its link (its answer is framed for it). */
export interface Central {
  device: string;
  mtu: number;
}

export interface CentralsOptions {
  /** The largest request (the handler's limit). */
  maxBytes: number;
  /** How long a request may take from its first chunk to its last. */
  timeoutMs: number;
  log: Logger;
  onMessage: (message: Uint8Array, central: Central) => void;
}

/** Centrals with a request under way at once; BlueZ itself keeps a handful of LE links. */
const MAX_UNFINISHED = 16;

/** How BlueZ reports each framing problem to the central (BlueZ maps the name to an ATT error). */
const ERROR_NAMES: Record<FramingProblem, string> = {
  chunk_oversized: "org.bluez.Error.InvalidValueLength",
  header_malformed: "org.bluez.Error.InvalidValueLength",
  message_too_large: "org.bluez.Error.InvalidValueLength",
  too_many_chunks: "org.bluez.Error.InvalidValueLength",
  length_mismatch: "org.bluez.Error.InvalidValueLength",
  out_of_order: "org.bluez.Error.Failed",
  timed_out: "org.bluez.Error.Failed",
};

interface Unfinished {
  reassembler: Reassembler;
  timer: NodeJS.Timeout;
}

export class Centrals {
  private readonly unfinished = new Map<string, Unfinished>();

  constructor(private readonly options: CentralsOptions) {}

  /** Requests under way (for tests: nothing is kept after an error or a timeout). */
  get pending(): number {
    return this.unfinished.size;
  }

  /** WriteValue on the requests characteristic: answers at once; the request runs after. */
  write(value: Buffer, options: BusOptions): void {
    if (Number(options.offset?.value ?? 0) !== 0) throw new BusError("org.bluez.Error.InvalidOffset", "requests are written whole, chunk by chunk, at offset 0");
    // BlueZ before 5.62 passes no mtu: the smallest one is always safe.
    const mtu = Math.min(MAX_MTU, Math.max(MIN_MTU, Number(options.mtu?.value ?? MIN_MTU)));
    const device = typeof options.device?.value === "string" ? options.device.value : "unknown";
    const entry = this.unfinished.get(device) ?? this.begin(device);
    let message: Uint8Array | undefined;
    try {
      message = entry.reassembler.push(value, chunkBytes(mtu));
    } catch (error) {
      this.forget(device);
      if (!(error instanceof FramingError)) throw error;
      this.options.log.debug("BLE request refused", { device, problem: error.problem });
      throw new BusError(ERROR_NAMES[error.problem], error.message);
    }
    if (message === undefined) return;
    this.forget(device);
    this.options.onMessage(message, { device, mtu });
  }

  /** Drops every request under way (bluetoothd went away, or the transport stops). */
  clear(): void {
    for (const device of [...this.unfinished.keys()]) this.forget(device);
  }

  private begin(device: string): Unfinished {
    if (this.unfinished.size >= MAX_UNFINISHED) {
      throw new BusError("org.bluez.Error.Failed", "too many requests under way: try again shortly");
    }
    const { maxBytes, timeoutMs } = this.options;
    const timer = setTimeout(() => {
      // The central went away or lost a chunk: what it sent is dropped.
      this.options.log.debug("BLE request dropped unfinished", { device, timeoutMs });
      this.forget(device);
    }, timeoutMs);
    timer.unref();
    const entry = { reassembler: new Reassembler({ maxBytes, timeoutMs }), timer };
    this.unfinished.set(device, entry);
    return entry;
  }

  private forget(device: string): void {
    const entry = this.unfinished.get(device);
    if (entry === undefined) return;
    clearTimeout(entry.timer);
    this.unfinished.delete(device);
  }
}
