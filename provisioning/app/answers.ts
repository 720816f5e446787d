/**
 * How the app tells the IQ's answers from forgeries (protocol v2). Anyone on the broker can
 * publish on an app's response topic, so an answer counts only if it verifies:
 *
 * - a plain answer is signed by the IQ's identity key (learnt at pairing) and names this request's
 *   id and this client's reply topic, so neither a forgery nor a recorded answer of another request
 *   passes; before pairing there is no key, and such answers are taken unverified — they can delay
 *   a pairing (which then fails its key confirmation) but never drop a credential;
 * - a sealed answer opens only under this command's answer key.
 *
 * An answer that does not verify is dropped, and the request waits for the real one.
 */
import { z } from "zod";
import { openAnswer } from "../crypto/command-seal.js";
import { verifyDocument } from "../crypto/identity.js";
import type { AnswerBody, ErrorBody } from "../protocol/messages.js";
import type { AcceptAnswer, RawAnswer } from "./client.js";
import { AppError } from "./errors.js";

/** An error the IQ itself sent: its signature or seal checked out (or, before pairing, unchecked). */
export class IqRefusal extends AppError {
  constructor(
    error: ErrorBody,
    readonly verified: boolean,
  ) {
    super(error.code, error.message, error.details);
    this.name = "IqRefusal";
  }
}

export interface SignedAnswerCheck<T> {
  iqId: string;
  requestId: string;
  op: string;
  /** The IQ's identity key; undefined before pairing (the answer is then taken unverified). */
  identityKey: Uint8Array | undefined;
  result: z.ZodType<T>;
}

export function acceptSigned<T>(check: SignedAnswerCheck<T>): AcceptAnswer<T> {
  return (answer, replyTo) => {
    const body = signedBody(answer, check);
    if (body === undefined || body.id !== check.requestId || body.to !== replyTo) return undefined;
    if (!body.ok) throw new IqRefusal(body.error, check.identityKey !== undefined);
    return { outcome: parseResult(check.result, body.result, check.iqId, check.op) };
  };
}

export interface SealedAnswerCheck<T> extends SignedAnswerCheck<T> {
  appId: string;
  answerKey: Uint8Array;
  /** Every sealed answer carries the IQ's next challenge. */
  onChallenge: (challenge: string) => void;
}

/** A plain answer to a sealed command can only be a refusal (the box did not open on the IQ). */
const NO_RESULT = z.never();

export function acceptSealed<T>(check: SealedAnswerCheck<T>): AcceptAnswer<T> {
  const refusal = acceptSigned({ ...check, result: NO_RESULT });
  return (answer, replyTo) => {
    if (typeof answer.box !== "string") return refusal(answer, replyTo);
    let opened;
    try {
      const box = new Uint8Array(Buffer.from(answer.box, "base64url"));
      opened = JSON.parse(Buffer.from(openAnswer({ ...check, box })).toString("utf8")) as Record<string, unknown>;
    } catch {
      return undefined;
    }
    if (typeof opened.challenge === "string") check.onChallenge(opened.challenge);
    if (opened.ok === true) return { outcome: parseResult(check.result, opened.result, check.iqId, check.op) };
    const error = opened.error as ErrorBody | undefined;
    if (typeof error?.code !== "string" || typeof error.message !== "string") return undefined;
    throw new IqRefusal(error, true);
  };
}

function signedBody(answer: RawAnswer, check: SignedAnswerCheck<unknown>): AnswerBody | undefined {
  if (typeof answer.signed !== "string" || typeof answer.sig !== "string") return undefined;
  try {
    const body =
      check.identityKey === undefined
        ? (JSON.parse(answer.signed) as unknown)
        : verifyDocument({ publicKey: check.identityKey, kind: "answer", iqId: check.iqId, doc: { signed: answer.signed, sig: answer.sig } });
    const shaped = body as { id?: unknown; to?: unknown; ok?: unknown; error?: { code?: unknown; message?: unknown } } | null;
    if (typeof shaped?.id !== "string" || typeof shaped.to !== "string" || typeof shaped.ok !== "boolean") return undefined;
    if (!shaped.ok && (typeof shaped.error?.code !== "string" || typeof shaped.error.message !== "string")) return undefined;
    return shaped as AnswerBody;
  } catch {
    return undefined;
  }
}

export function parseResult<T>(schema: z.ZodType<T>, value: unknown, iqId: string, op: string): T {
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue === undefined ? "invalid" : `${issue.path.join(".") || "value"}: ${issue.message}`;
    throw new AppError(
      "response_invalid",
      `IQ ${iqId} answered ${op} with something this app does not understand (${where}); update the app or the hub`,
    );
  }
  return parsed.data;
}
