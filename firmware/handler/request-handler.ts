/**
 * The request handler every transport calls: bytes in, bytes out. It parses the envelope,
 * refuses expired and repeated requests, runs one request at a time (so two copies of a Code or
 * a sealed command can never both pass their counter check), and turns every failure into an
 * error response with a stable code — it never throws and never crashes the hub on input.
 */
import { IqError } from "../errors.js";
import type { EventSource } from "../audit.js";
import {
  PLAIN_OPS,
  PROTOCOL_VERSION,
  plainArgs,
  requestEnvelope,
  type ErrorBody,
  type PlainOp,
  type RequestEnvelope,
  type ResponseEnvelope,
} from "../../provisioning/protocol/messages.js";
import { topicProblem } from "../../provisioning/protocol/topic-check.js";
import type { InboundRequest, OutboundResponse, RequestSink } from "../transports/transport.js";
import { Commands } from "./commands.js";
import type { IqContext } from "./context.js";
import { Pairing } from "./pairing.js";
import { RateLimiter } from "../rate-limit.js";
import { assertUnexpired } from "./expiry.js";
import { REFUSAL_EVENTS, REQUESTS } from "./limits.js";
import { acceptUserCode, WrongPinCodes } from "./refusals.js";
import { requireAllowed } from "./roles.js";


/** Ops that read and change nothing: repeating them is harmless, so their ids are not stored. */
const READ_ONLY: ReadonlySet<string> = new Set(["status", "events.list"]);
const WEB_OPS: ReadonlySet<string> = new Set(["web.open", "web.office"]);
/** What an unclaimed IQ answers: looking at it, and claiming it. */
const BEFORE_CLAIM: ReadonlySet<PlainOp> = new Set(["status", "events.list", "pair.start", "pair.finish"]);

interface RequestState {
  /** The request proved an app key (a sealed command opened): its refusals are not junk. */
  authenticated: boolean;
  /** A junk token was already taken for it. */
  charged: boolean;
}

/** Ops that act on the door or on users: they must carry an expiry. */
const COMMANDS: ReadonlySet<PlainOp> = new Set(["app", "web.open", "web.office"]);
/** Errors that do not deserve an audit event (nothing was decided about anyone). */
const UNRECORDED: ReadonlySet<string> = new Set(["request_malformed", "op_unknown", "internal_error"]);

interface Remembered {
  at: number;
  response: ResponseEnvelope;
}

export class RequestHandler {
  private queue: Promise<unknown> = Promise.resolve();
  readonly pairing: Pairing;
  private readonly commands: Commands;
  private handled = 0;
  private waiting = 0;
  private readonly wrongPins: WrongPinCodes;
  /** Junk refusals recorded as events: a burst, then one a minute. */
  private readonly junkEvents: RateLimiter;
  private suppressedRefusals = 0;

  constructor(private readonly ctx: IqContext) {
    this.junkEvents = new RateLimiter(ctx.now, REFUSAL_EVENTS);
    this.wrongPins = new WrongPinCodes(ctx.now);
    this.pairing = new Pairing(ctx);
    this.commands = new Commands(ctx, this.pairing, this.wrongPins);
  }

  /** The sink transports call. A flood beyond MAX_QUEUED waiting requests is dropped unread. */
  readonly sink: RequestSink = (request) => {
    if (this.waiting >= REQUESTS.maxQueued) return Promise.resolve(undefined);
    this.waiting += 1;
    return this.exclusive(() => this.handle(request)).finally(() => (this.waiting -= 1));
  };

  /** Runs `task` alone: after the request being handled, before the next (a factory reset). */
  exclusive<T>(task: () => Promise<T>): Promise<T> {
    const result = this.queue.then(task);
    this.queue = result.catch(() => undefined);
    return result;
  }

  private async handle(request: InboundRequest): Promise<OutboundResponse | undefined> {
    const { ctx } = this;
    let envelope: RequestEnvelope;
    try {
      envelope = parseEnvelope(request.payload);
    } catch (error) {
      // No id to answer to, or not ours at all: junk, answered only while the limiter allows.
      if (!ctx.junk.take()) return undefined;
      return { payload: encode({ v: PROTOCOL_VERSION, id: "", ok: false, error: errorBody(error) }) };
    }
    const replyTo = this.replyTo(envelope);
    const remembered = await ctx.store.get<Remembered>("requests", envelope.id);
    if (remembered !== undefined) return { payload: encode(remembered.response), replyTo };
    const source = sourceOf(envelope.op, request.via);
    const state: RequestState = { authenticated: false, charged: false };
    // A web Code is checked only with a token in hand: that caps how fast anyone can guess
    // Codes (and how often random ones read as a wrong PIN) whatever they send.
    if (WEB_OPS.has(envelope.op)) {
      if (!ctx.junk.take()) return undefined;
      state.charged = true;
    }
    let response: ResponseEnvelope;
    try {
      this.checkExpiry(envelope, request.expiresAt);
      const result = await this.dispatch(envelope, source, state);
      response = { v: PROTOCOL_VERSION, id: envelope.id, ok: true, result };
    } catch (error) {
      const body = errorBody(error);
      if (body.code === "internal_error") ctx.log.error("request failed", { op: envelope.op, error: (error as Error).stack });
      // Refusals of requests that proved nothing (no app key) are junk: answered, recorded and
      // remembered only while the limiter allows, so a flood can fill neither disk nor audit.
      if (!state.authenticated && !state.charged && !ctx.junk.take()) return undefined;
      response = { v: PROTOCOL_VERSION, id: envelope.id, ok: false, error: body };
      await this.recordRefusal(envelope, source, body, state.authenticated);
    }
    if (!READ_ONLY.has(envelope.op)) await this.remember(envelope.id, response);
    return { payload: encode(response), replyTo };
  }

  private async dispatch(envelope: RequestEnvelope, source: EventSource, state: RequestState): Promise<unknown> {
    const { ctx } = this;
    if (!(PLAIN_OPS as string[]).includes(envelope.op)) {
      throw new IqError("op_unknown", `unknown op "${envelope.op}"; ops: ${PLAIN_OPS.join(", ")}`);
    }
    const op = envelope.op as PlainOp;
    const parsed = plainArgs[op].safeParse(envelope.args);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new IqError("request_malformed", `${op}: args.${issue?.path.join(".") ?? ""}: ${issue?.message ?? "invalid"}`);
    }
    const args = parsed.data as Record<string, unknown>;
    if (!BEFORE_CLAIM.has(op) && ctx.lifecycle.phase !== "activated") {
      throw new IqError("not_claimed", "this IQ is not claimed yet: claim it first (story 1)");
    }
    switch (op) {
      case "status":
        return ctx.status();
      case "events.list": {
        const { afterSeq, limit } = args as { afterSeq?: number; limit?: number };
        return { events: await ctx.events.list({ afterSeq, limit }) };
      }
      case "pair.start":
        return this.pairing.start(parsed.data as Parameters<Pairing["start"]>[0]);
      case "pair.finish": {
        const { box } = await this.pairing.finish(parsed.data as Parameters<Pairing["finish"]>[0]);
        return { box };
      }
      case "app":
        return this.commands.handle(parsed.data as { appId: string; box: string }, source, () => (state.authenticated = true));
      case "web.open":
      case "web.office": {
        const { userId, lock, code } = args as { userId: string; lock: string; code: string };
        const user = await ctx.users.require(userId);
        requireAllowed(user, op === "web.open" ? "open" : "office");
        const actor = { userId, source };
        ctx.access.requireLock(lock);
        if (op === "web.open") {
          await acceptUserCode(ctx, this.wrongPins, { user, purpose: "open", code, source, lock });
          return ctx.access.open(lock, actor);
        }
        const on = args.on === true;
        await acceptUserCode(ctx, this.wrongPins, { user, purpose: on ? "office_on" : "office_off", code, source, lock });
        return ctx.access.setOfficeMode(lock, on, actor);
      }
    }
  }

  /** MQTT 5 message expiry and the envelope's own, whichever comes first; commands always expire. */
  private checkExpiry(envelope: RequestEnvelope, transportExpiry: number | undefined): void {
    const op = envelope.op as PlainOp;
    if (READ_ONLY.has(op)) return;
    const expiries = [envelope.expiresAt, transportExpiry].filter((t): t is number => t !== undefined);
    if (COMMANDS.has(op) && expiries.length === 0) {
      throw new IqError("request_malformed", `${envelope.op} must carry expiresAt (ms since the epoch)`);
    }
    assertUnexpired(expiries, this.ctx.now(), this.ctx.clockSynced());
  }


  /** Only a valid topic inside this IQ's response tree: a request must never make the hub publish elsewhere, or get it dropped. */
  private replyTo(envelope: RequestEnvelope): string | undefined {
    const prefix = `${this.ctx.responsesTopic}/`;
    const topic = envelope.replyTo;
    return topic !== undefined && topic.startsWith(prefix) && topicProblem(topic) === undefined ? topic : undefined;
  }

  /**
   * A refusal becomes an event. Those of requests that proved no app key are capped (a flood must
   * not push real events out of the capped log): past the cap they are counted, and the count
   * goes into the next refusal event that is recorded.
   */
  private async recordRefusal(envelope: RequestEnvelope, source: EventSource, error: ErrorBody, authenticated: boolean): Promise<void> {
    if (UNRECORDED.has(error.code)) return;
    if (!authenticated && !this.junkEvents.take()) {
      this.suppressedRefusals += 1;
      return;
    }
    const args = envelope.args;
    const suppressed = this.suppressedRefusals;
    this.suppressedRefusals = 0;
    this.ctx.lifecycle.showRefused();
    await this.ctx.events.record({
      type: "refused",
      source,
      reason: error.code,
      user: typeof args.userId === "string" ? args.userId : typeof args.appId === "string" ? `app:${args.appId}` : undefined,
      lock: typeof args.lock === "string" ? args.lock : undefined,
      details: { op: envelope.op, ...(suppressed > 0 ? { suppressedBefore: suppressed } : {}) },
    });
  }

  private async remember(id: string, response: ResponseEnvelope): Promise<void> {
    const { ctx } = this;
    await ctx.store.put("requests", id, { at: ctx.now(), response } satisfies Remembered);
    if (++this.handled % 500 === 0) await this.forgetOld();
  }

  /** Queues a sweep of old request ids (at start: a hub restarted often never reaches 500 requests). */
  sweepSoon(): void {
    this.exclusive(() => this.forgetOld()).catch((error: unknown) =>
      this.ctx.log.warn("could not sweep old request ids", { error: error instanceof Error ? error.message : String(error) }),
    );
  }

  /** Drops remembered requests older than REQUESTS.rememberMs. */
  async forgetOld(): Promise<void> {
    const cutoff = this.ctx.now() - REQUESTS.rememberMs;
    const requests = this.ctx.store.sublevel("requests");
    for await (const [id, value] of requests.iterator()) {
      if ((value as Remembered).at < cutoff) await requests.del(id);
    }
  }
}

function parseEnvelope(payload: Uint8Array): RequestEnvelope {
  if (payload.length > REQUESTS.maxBytes) throw new IqError("request_malformed", "request too large");
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(payload).toString("utf8"));
  } catch {
    throw new IqError("request_malformed", "the request is not JSON");
  }
  const parsed = requestEnvelope.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new IqError("request_malformed", `${issue?.path.join(".") || "request"}: ${issue?.message ?? "invalid"}`);
  }
  return parsed.data;
}

/** Web-app ops come through the cloud with a Code; sealed ones from an app (over MQTT or BLE). */
function sourceOf(op: string, via: InboundRequest["via"]): EventSource {
  if (via === "ble") return "ble";
  return op.startsWith("web.") ? "web" : "app";
}

function errorBody(error: unknown): ErrorBody {
  if (error instanceof IqError) {
    return { code: error.code, message: error.message, ...(error.details && safeDetails(error.details)) };
  }
  return { code: "internal_error", message: "the IQ could not handle this request; see its log" };
}

/** Only details that tell the client something (a lockout's end), never internals. */
function safeDetails(details: Record<string, unknown>): { details?: Record<string, unknown> } {
  return typeof details.until === "number" ? { details: { until: details.until } } : {};
}

function encode(response: ResponseEnvelope): Uint8Array {
  return Buffer.from(JSON.stringify(response));
}
