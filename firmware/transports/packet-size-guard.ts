/**
 * Caps the MQTT packets a client may send the embedded broker. aedes (through mqtt-packet) has no
 * such limit: it buffers a packet of any announced size (up to 256 MB) whole, then hands it on to
 * subscribers, the hub's own client among them. This sits between the socket and aedes, reads
 * only each packet's fixed header, and closes the connection as soon as a packet announces more
 * than the limit, before its body is buffered anywhere.
 */
import { Duplex } from "node:stream";
import type { Socket } from "node:net";
import { REQUESTS } from "../handler/limits.js";

/** The largest packet accepted: the largest request, with room for its topic and MQTT 5 properties. */
export const MAX_PACKET_BYTES = REQUESTS.maxBytes + 8 * 1024;

/** Follows packet boundaries in the byte stream from the fixed headers alone. */
export class PacketSizeLimit {
  private readingLength = false;
  private length = 0;
  private shift = 0;
  /** Body bytes of the current packet still to come. */
  private body = 0;

  constructor(private readonly maxBytes: number) {}

  /** False once a packet announces more than the limit (or a malformed length): the connection must close. */
  accept(chunk: Uint8Array): boolean {
    let i = 0;
    while (i < chunk.length) {
      if (this.body > 0) {
        const taken = Math.min(this.body, chunk.length - i);
        this.body -= taken;
        i += taken;
        continue;
      }
      const byte = chunk[i++]!;
      if (!this.readingLength) {
        // The type-and-flags byte: a remaining length follows, one to four bytes of 7 bits each.
        this.readingLength = true;
        this.length = 0;
        this.shift = 0;
        continue;
      }
      this.length += (byte & 0x7f) * 2 ** this.shift;
      this.shift += 7;
      if (byte & 0x80) {
        if (this.shift >= 28) return false;
        continue;
      }
      if (this.length > this.maxBytes) return false;
      this.readingLength = false;
      this.body = this.length;
    }
    return true;
  }
}

/** `socket` as aedes should see it: the same bytes both ways, closed at the first oversized packet. */
export function guardPacketSize(socket: Socket, maxBytes: number, onRefused: () => void): Duplex {
  const limit = new PacketSizeLimit(maxBytes);
  const guarded: Duplex = new Duplex({
    read: () => void socket.resume(),
    write: (chunk: Buffer, _encoding, done) => {
      if (socket.write(chunk)) done();
      else socket.once("drain", () => done());
    },
    final: (done) => void socket.end(done),
    destroy: (error, done) => {
      socket.destroy();
      done(error);
    },
  });
  socket.on("data", (chunk: Buffer) => {
    if (!limit.accept(chunk)) {
      onRefused();
      guarded.destroy();
      return;
    }
    if (!guarded.push(chunk)) socket.pause();
  });
  socket.on("end", () => guarded.push(null));
  socket.on("error", (error) => guarded.destroy(error));
  socket.on("close", () => guarded.destroy());
  return guarded;
}
