/**
 * Answers the IQ remembers, so that a repeated request (a QoS 1 duplicate, an app retrying after
 * a lost answer) gets the first answer again instead of running twice. A remembered answer is
 * returned only to an exact repeat: the key is a digest of the request id, the op, the arguments
 * and the reply route. A stranger who names someone else's request id, with other arguments or
 * another reply topic, gets nothing of it (it is a different request to the IQ), and a junk
 * request sent first with a predictable id cannot block the real one.
 */
import { createHash } from "node:crypto";
import type { RequestEnvelope } from "../../provisioning/protocol/messages.js";
import type { Store } from "../store.js";
import { REQUESTS } from "./limits.js";

interface Remembered {
  at: number;
  /** The answer exactly as it was sent (signed or sealed JSON text). */
  answer: string;
}

export class AnswerMemory {
  private remembered = 0;

  constructor(
    private readonly store: () => Store,
    private readonly now: () => number,
  ) {}

  /** The key of a request: everything that makes it this request and sends its answer somewhere. */
  static keyOf(envelope: RequestEnvelope, route: string | undefined): string {
    const digest = createHash("sha256");
    for (const part of [envelope.id, envelope.op, JSON.stringify(envelope.args), route ?? ""]) {
      digest.update(`${Buffer.byteLength(part)}:`).update(part);
    }
    return digest.digest("base64url");
  }

  async recall(key: string): Promise<string | undefined> {
    return (await this.store().get<Remembered>("requests", key))?.answer;
  }

  async remember(key: string, answer: string): Promise<void> {
    await this.store().put("requests", key, { at: this.now(), answer } satisfies Remembered);
    if (++this.remembered % 500 === 0) await this.forgetOld();
  }

  /** Drops answers older than REQUESTS.rememberMs. */
  async forgetOld(): Promise<void> {
    const cutoff = this.now() - REQUESTS.rememberMs;
    const requests = this.store().sublevel("requests");
    for await (const [key, value] of requests.iterator()) {
      if ((value as Partial<Remembered>).at === undefined || (value as Remembered).at < cutoff) await requests.del(key);
    }
  }
}
