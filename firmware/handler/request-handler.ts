/**
 * The request handler every transport calls: bytes in, bytes out (protocol v2). It meters what
 * anyone can send before it queues anything, parses the envelope, answers an exact repeat with
 * the answer it remembers, runs one request at a time (sealed commands in a lane of their own),
 * and turns every failure into an error response with a stable code — it never throws and never
 * crashes the hub on input. Every answer is signed by the IQ's identity key or sealed for the app
 * that asked, so nobody else on the broker can forge one.
 */
import type { EventSource } from "../audit.js";
import { IqError } from "../errors.js";
import {
  EVENTS_PAGE,
  PLAIN_OPS,
  PROTOCOL_VERSION,
  plainArgs,
  requestEnvelope,
  type AnswerBody,
  type ErrorBody,
  type PlainOp,
  type RequestEnvelope,
} from "../../provisioning/protocol/messages.js";
import { topicProblem } from "../../provisioning/protocol/topic-check.js";
import type { InboundRequest, OutboundResponse, RequestSink } from "../transports/transport.js";
import { RateLimiter } from "../rate-limit.js";
import { AnswerMemory } from "./answer-memory.js";
import { Challenges } from "./challenges.js";
import { Commands, type SealedOutcome } from "./commands.js";
import type { IqContext } from "./context.js";
import { errorBody } from "./error-body.js";
import { assertUnexpired } from "./expiry.js";
import { LANE, Lanes } from "./lanes.js";
import { METERS, REFUSAL_EVENTS, REQUESTS } from "./limits.js";
import { Pairing } from "./pairing.js";
import { PairingMeter } from "./pairing-meter.js";
import { WrongPinCodes } from "./refusals.js";

/** Ops that read and change nothing: repeating them is harmless, so their answers are not stored. */
const READ_ONLY: ReadonlySet<string> = new Set(["status", "events.list"]);
/** What an unclaimed IQ answers: looking at it, and claiming it. */
const BEFORE_CLAIM: ReadonlySet<PlainOp> = new Set(["status", "events.list", "pair.start", "pair.finish"]);
/**
 * Errors that do not deserve an audit event (nothing was decided about anyone), or cannot have
 * one (`storage_failed`: the event could not be written either).
 */
const UNRECORDED: ReadonlySet<string> = new Set(["request_malformed", "op_unknown", "internal_error", "storage_failed"]);

type Parsed = { ok: true; envelope: RequestEnvelope } | { ok: false; error: IqError };

export class RequestHandler {
  readonly pairing: Pairing;
  readonly challenges: Challenges;
  private readonly commands: Commands;
  private readonly answers: AnswerMemory;
  private readonly lanes = new Lanes(REQUESTS.maxQueued);
  private readonly reads: RateLimiter;
  private readonly pairStarts: PairingMeter;
  /** Junk refusals recorded as events: a burst, then one a minute. */
  private readonly junkEvents: RateLimiter;
  private suppressedRefusals = 0;

  constructor(
    private readonly ctx: IqContext,
    monotonic: () => number = () => performance.now(),
  ) {
    this.junkEvents = new RateLimiter(ctx.now, REFUSAL_EVENTS);
    this.reads = new RateLimiter(ctx.now, METERS.reads);
    this.pairStarts = new PairingMeter(ctx.now);
    this.challenges = new Challenges(monotonic);
    this.answers = new AnswerMemory(ctx.now);
    this.pairing = new Pairing(ctx, this.challenges, monotonic);
    this.commands = new Commands(ctx, this.pairing, new WrongPinCodes(ctx.now), this.challenges);
  }

  /**
   * The sink transports call. What anyone can send is metered here, before it is queued: a
   * flood of reads or pairing starts beyond its budget, or of junk beyond the junk limiter's, is
   * dropped unanswered and never delays a sealed command.
   */
  readonly sink: RequestSink = (request) => {
    const parsed = parseEnvelope(request.payload);
    if (!parsed.ok) {
      // No id to answer to, or not ours at all: junk, answered only while the limiter allows.
      if (!this.ctx.junk.take()) return Promise.resolve(undefined);
      const route = this.route(undefined, request.responseTopic);
      return Promise.resolve(this.signed("", route, { ok: false, error: errorBody(parsed.error, this.ctx.log, "request") }));
    }
    const { op } = parsed.envelope;
    if (READ_ONLY.has(op) && !this.reads.take()) return Promise.resolve(undefined);
    if (op === "pair.start" && !this.pairStarts.take(parsed.envelope.args.kind, parsed.envelope.args.userId)) return Promise.resolve(undefined);
    const lane = op === "app" ? LANE.sealed : LANE.plain;
    return this.lanes.run(lane, () => this.handle(parsed.envelope, request)) ?? Promise.resolve(undefined);
  };

  /** Runs `task` alone: after the request being handled, before any waiting one (a factory reset). */
  exclusive<T>(task: () => Promise<T>): Promise<T> {
    return this.lanes.run(LANE.exclusive, task)!;
  }

  private async handle(envelope: RequestEnvelope, request: InboundRequest): Promise<OutboundResponse | undefined> {
    const { ctx } = this;
    const route = this.route(envelope.replyTo, request.responseTopic);
    const memoryKey = READ_ONLY.has(envelope.op) ? undefined : AnswerMemory.keyOf(envelope, route);
    if (memoryKey !== undefined) {
      const recalled = this.answers.recall(memoryKey);
      if (recalled !== undefined) return { payload: Buffer.from(recalled), ...(route && { replyTo: route }) };
    }
    const source = request.via === "ble" ? "ble" : "app";
    let response: OutboundResponse;
    try {
      this.checkExpiry(envelope, request.expiresAt);
      if (envelope.op === "app" && ctx.lifecycle.phase === "activated") {
        const outcome = await this.commands.handle(this.args(envelope, "app"), envelope.id, source);
        if (outcome.error !== undefined) await this.recordSealedRefusal(outcome, source);
        response = this.payload({ v: PROTOCOL_VERSION, id: envelope.id, box: outcome.box }, route);
      } else {
        response = this.signed(envelope.id, route, { ok: true, result: await this.dispatch(envelope, source) });
      }
    } catch (error) {
      const body = errorBody(error, ctx.log, `request ${envelope.op}`);
      // Refusals of requests that proved nothing (no app key) are junk: answered, recorded and
      // remembered only while the limiter allows, so a flood can fill neither disk nor audit.
      if (!ctx.junk.take()) return undefined;
      await this.recordRefusal(envelope, source, body);
      response = this.signed(envelope.id, route, { ok: false, error: body });
    }
    if (memoryKey !== undefined) this.answers.remember(memoryKey, Buffer.from(response.payload).toString("utf8"));
    return response;
  }

  private async dispatch(envelope: RequestEnvelope, source: EventSource): Promise<unknown> {
    const { ctx } = this;
    if (!(PLAIN_OPS as string[]).includes(envelope.op)) {
      throw new IqError("op_unknown", `unknown op "${envelope.op}"; ops: ${PLAIN_OPS.join(", ")}`);
    }
    const op = envelope.op as PlainOp;
    if (!BEFORE_CLAIM.has(op) && ctx.lifecycle.phase !== "activated") {
      throw new IqError("not_claimed", "this IQ is not claimed yet: claim it first (story 1)");
    }
    switch (op) {
      case "status":
        return ctx.status();
      case "events.list": {
        const { afterSeq, limit } = this.args(envelope, op);
        return { events: await this.eventsPage(afterSeq, limit) };
      }
      case "pair.start":
        return this.pairing.start(this.args(envelope, op));
      case "pair.finish":
        return this.pairing.finish(this.args(envelope, op), source);
      case "app":
        // Only reached while unclaimed (handle() takes sealed commands of a claimed IQ).
        throw new IqError("not_claimed", "this IQ is not claimed yet: claim it first (story 1)");
    }
  }

  /** The op's arguments, checked against its schema (unknown ops and keys are refused). */
  private args<Op extends PlainOp>(envelope: RequestEnvelope, op: Op): ReturnType<(typeof plainArgs)[Op]["parse"]> {
    const parsed = plainArgs[op].safeParse(envelope.args);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new IqError("request_malformed", `${op}: args.${issue?.path.join(".") ?? ""}: ${issue?.message ?? "invalid"}`);
    }
    return parsed.data as ReturnType<(typeof plainArgs)[Op]["parse"]>;
  }

  /** One page of signed events, capped in count and bytes so that a small request gets a small answer. */
  private async eventsPage(afterSeq: number | undefined, limit: number | undefined): Promise<unknown[]> {
    const events = await this.ctx.events.list({ afterSeq, limit: Math.min(limit ?? EVENTS_PAGE.maxEvents, EVENTS_PAGE.maxEvents) });
    const page: unknown[] = [];
    let bytes = 0;
    for (const event of events) {
      const doc = this.ctx.sign("event", event);
      bytes += doc.signed.length + doc.sig.length;
      if (page.length > 0 && bytes > EVENTS_PAGE.maxBytes) break;
      page.push(doc);
    }
    return page;
  }

  /** Envelope and MQTT 5 expiry, whichever comes first; read-only ops ignore both. */
  private checkExpiry(envelope: RequestEnvelope, transportExpiry: number | undefined): void {
    if (READ_ONLY.has(envelope.op)) return;
    const expiries = [envelope.expiresAt, transportExpiry].filter((t): t is number => t !== undefined);
    assertUnexpired(expiries, this.ctx.now(), this.ctx.clockSynced());
  }

  /**
   * Where the answer goes: the MQTT 5 response topic, else `replyTo`; only a valid topic inside
   * this IQ's response tree, so a request can never make the hub publish elsewhere, or publish
   * something the broker drops it for.
   */
  private route(replyTo: string | undefined, responseTopic: string | undefined): string | undefined {
    const topic = responseTopic ?? replyTo;
    const prefix = `${this.ctx.responsesTopic}/`;
    return topic !== undefined && topic.startsWith(prefix) && topicProblem(topic) === undefined ? topic : undefined;
  }

  private signed(id: string, route: string | undefined, outcome: { ok: true; result: unknown } | { ok: false; error: ErrorBody }): OutboundResponse {
    const body: AnswerBody = { id, to: route ?? "", ...outcome };
    return this.payload({ v: PROTOCOL_VERSION, id, ...this.ctx.sign("answer", body) }, route);
  }

  private payload(envelope: object, route: string | undefined): OutboundResponse {
    return { payload: Buffer.from(JSON.stringify(envelope)), ...(route && { replyTo: route }) };
  }

  /**
   * A refusal of a request that proved nothing becomes an event only within a cap (a flood must
   * not push real events out of the capped log): past the cap they are counted, and the count goes
   * into the next refusal event that is recorded.
   */
  private async recordRefusal(envelope: RequestEnvelope, source: EventSource, error: ErrorBody): Promise<void> {
    if (UNRECORDED.has(error.code) || error.code === "pair_session_unknown") return;
    if (!this.junkEvents.take()) {
      this.suppressedRefusals += 1;
      return;
    }
    const args = envelope.args;
    const suppressed = this.suppressedRefusals;
    this.suppressedRefusals = 0;
    const named = typeof args.userId === "string" ? args.userId : typeof args.appId === "string" ? `app:${args.appId}` : undefined;
    await this.record({ source, reason: error.code, user: named, details: { op: envelope.op, ...(suppressed > 0 && { suppressedBefore: suppressed }) } });
  }

  /** A refusal of a sealed command (whose app proved its key): always recorded. */
  private async recordSealedRefusal(outcome: SealedOutcome, source: EventSource): Promise<void> {
    const code = outcome.error!.code;
    if (UNRECORDED.has(code) || code === "challenge_required") return;
    const web = outcome.op === "web.open" || outcome.op === "web.office";
    const target = typeof outcome.args?.userId === "string" ? outcome.args.userId : undefined;
    const lock = typeof outcome.args?.lock === "string" ? outcome.args.lock : undefined;
    await this.record({
      source: web ? "web" : source,
      reason: code,
      user: web ? target : outcome.user?.userId,
      lock,
      details: { op: outcome.op ?? "app", ...(web && outcome.user && { relay: outcome.user.userId }) },
    });
  }

  private async record(event: { source: EventSource; reason: string; user: string | undefined; lock?: string | undefined; details: Record<string, unknown> }): Promise<void> {
    this.ctx.lifecycle.showRefused();
    await this.ctx.events
      .record({
        type: "refused",
        source: event.source,
        reason: event.reason,
        ...(event.user !== undefined && { user: event.user }),
        ...(event.lock !== undefined && { lock: event.lock }),
        details: event.details,
      })
      .catch((error: unknown) => {
        // A refusal changes nothing, so it is answered even when its event cannot be written
        // (a full disk; the store's listener logged it). Anything else is a bug: let it surface.
        if (!(error instanceof IqError && error.code === "storage_failed")) throw error;
      });
  }
}

function parseEnvelope(payload: Uint8Array): Parsed {
  if (payload.length > REQUESTS.maxBytes) return { ok: false, error: new IqError("request_malformed", "request too large") };
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(payload).toString("utf8"));
  } catch {
    return { ok: false, error: new IqError("request_malformed", "the request is not JSON") };
  }
  if (nestedDeeperThan(json, REQUESTS.maxDepth)) {
    return { ok: false, error: new IqError("request_malformed", `the request is nested deeper than ${REQUESTS.maxDepth} levels`) };
  }
  const parsed = requestEnvelope.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return { ok: false, error: new IqError("request_malformed", `${issue?.path.join(".") || "request"}: ${issue?.message ?? "invalid"}`) };
  }
  return { ok: true, envelope: parsed.data };
}

/** Whether arrays and objects in `value` nest deeper than `limit`; without recursion, so any depth is safe to ask about. */
function nestedDeeperThan(value: unknown, limit: number): boolean {
  const pending: [unknown, number][] = [[value, 0]];
  for (let next = pending.pop(); next !== undefined; next = pending.pop()) {
    const [item, depth] = next;
    if (item === null || typeof item !== "object") continue;
    if (depth >= limit) return true;
    for (const child of Object.values(item)) pending.push([child, depth + 1]);
  }
  return false;
}
