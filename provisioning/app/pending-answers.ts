/**
 * Requests waiting for their answers, for every transport's client (MQTT, BLE). Anyone can put
 * something on an app's reply path (protocol v2 trusts no broker and no BLE link), so an answer
 * with a request's id is offered to that request's `accept`, which verifies it: a forgery is
 * dropped and counted, and the request keeps waiting for the real one. On timeout the request
 * fails with `answer_unverified` if something with its id came but nothing verified, else with
 * the transport's own no-answer error.
 */
import { z } from "zod";
import { PROTOCOL_VERSION } from "../protocol/messages.js";
import { AppError } from "./errors.js";

/** An answer envelope with the request's id, not yet verified. */
export type RawAnswer = Record<string, unknown> & { v: number; id: string };

/**
 * Verifies an answer and turns it into the outcome: a value resolves the request, a thrown error
 * rejects it, `undefined` drops the answer (forged, or not for this request) and keeps waiting.
 */
export type AcceptAnswer<T> = (answer: RawAnswer, replyTo: string) => { outcome: T } | undefined;

const answerEnvelope = z.looseObject({ v: z.literal(PROTOCOL_VERSION), id: z.string() });

interface Pending {
  /** Settles the request if the answer is accepted; false drops it. */
  offer: (answer: RawAnswer) => boolean;
  /** Answers with this request's id that did not verify. */
  dropped: number;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout;
}

export class PendingAnswers {
  private readonly pending = new Map<string, Pending>();

  /** Waits for the verified answer to request `id`; `noAnswer` says what a plain timeout means. */
  wait<T>(input: { iqId: string; id: string; replyTo: string; accept: AcceptAnswer<T>; timeoutMs: number; noAnswer: () => AppError }): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        const dropped = this.pending.get(input.id)?.dropped ?? 0;
        this.pending.delete(input.id);
        reject(dropped > 0 ? unverified(input.iqId) : input.noAnswer());
      }, input.timeoutMs);
      const offer = (answer: RawAnswer): boolean => {
        let accepted;
        try {
          accepted = input.accept(answer, input.replyTo);
        } catch (error) {
          reject(error instanceof Error ? error : new Error(String(error)));
          return true;
        }
        if (accepted === undefined) return false;
        resolve(accepted.outcome);
        return true;
      };
      this.pending.set(input.id, { offer, dropped: 0, reject, timer });
    });
  }

  /** An answer off the wire: offered to the request with its id, which settles only if it verifies. */
  answer(payload: Uint8Array): void {
    let json: unknown;
    try {
      json = JSON.parse(Buffer.from(payload).toString("utf8"));
    } catch {
      return;
    }
    const parsed = answerEnvelope.safeParse(json);
    if (!parsed.success) return;
    const pending = this.pending.get(parsed.data.id);
    if (pending === undefined) return;
    if (!pending.offer(parsed.data)) {
      pending.dropped += 1;
      return;
    }
    this.forget(parsed.data.id);
  }

  /** The request could not be sent (or the link is gone): it fails with `error`. */
  fail(id: string, error: Error): void {
    const pending = this.pending.get(id);
    if (pending === undefined) return;
    this.forget(id);
    pending.reject(error);
  }

  failAll(error: () => Error): void {
    for (const id of [...this.pending.keys()]) this.fail(id, error());
  }

  private forget(id: string): void {
    clearTimeout(this.pending.get(id)?.timer);
    this.pending.delete(id);
  }
}

/**
 * Something answered with this request's id, but nothing that verified: the IQ was reset (its
 * keys are new), or someone forges answers. Either way nothing is concluded from it.
 */
function unverified(iqId: string): AppError {
  return new AppError(
    "answer_unverified",
    `IQ ${iqId} did not answer with a signature this profile can check: it may have been factory reset (its owner then claims it again, and every app activates again), or someone on the broker or the BLE link is forging answers`,
  );
}
