/**
 * Answers the IQ remembers, so that a repeated request (a QoS 1 duplicate, an app retrying after
 * a lost answer) gets the first answer again instead of running twice. A remembered answer is
 * returned only to an exact repeat: the key is a digest of the request id, the op, the arguments
 * and the reply route. A stranger who names someone else's request id, with other arguments or
 * another reply topic, gets nothing of it (it is a different request to the IQ), and a junk
 * request sent first with a predictable id cannot block the real one.
 *
 * The memory is in RAM, bounded in count and bytes. It is a convenience, not what keeps a command
 * from running twice: a sealed command spends a challenge and a Code its counter (on disk) before
 * anything acts, and a restart voids every challenge and pairing ticket, so a repeat after a
 * restart is refused anyway. Keeping it off the disk spares every opening a synced write (and an
 * SD card the wear).
 */
import { createHash } from "node:crypto";
import type { RequestEnvelope } from "../../provisioning/protocol/messages.js";
import { REQUESTS } from "./limits.js";

interface Remembered {
  at: number;
  /** The answer exactly as it was sent (signed or sealed JSON text). */
  answer: string;
}

export class AnswerMemory {
  /** Oldest first (a Map keeps insertion order). */
  private readonly answers = new Map<string, Remembered>();
  private bytes = 0;

  constructor(private readonly now: () => number) {}

  /** The key of a request: everything that makes it this request and sends its answer somewhere. */
  static keyOf(envelope: RequestEnvelope, route: string | undefined): string {
    const digest = createHash("sha256");
    for (const part of [envelope.id, envelope.op, JSON.stringify(envelope.args), route ?? ""]) {
      digest.update(`${Buffer.byteLength(part)}:`).update(part);
    }
    return digest.digest("base64url");
  }

  recall(key: string): string | undefined {
    this.forgetOld();
    return this.answers.get(key)?.answer;
  }

  remember(key: string, answer: string): void {
    this.forget(key);
    this.answers.set(key, { at: this.now(), answer });
    this.bytes += answer.length;
    this.forgetOld();
  }

  /** Drops answers older than REQUESTS.rememberMs, then the oldest while over the caps. */
  private forgetOld(): void {
    const cutoff = this.now() - REQUESTS.rememberMs;
    for (const [key, value] of this.answers) {
      const over = this.answers.size > REQUESTS.maxRemembered || this.bytes > REQUESTS.maxRememberedBytes;
      if (value.at >= cutoff && !over) break;
      this.forget(key);
    }
  }

  private forget(key: string): void {
    const old = this.answers.get(key);
    if (old === undefined) return;
    this.bytes -= old.answer.length;
    this.answers.delete(key);
  }
}
