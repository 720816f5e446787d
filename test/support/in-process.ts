/**
 * An app next to the IQ: requests go straight into the real hub's request handler, as a transport
 * would hand them over, and the real app-side checks (signatures, sealed answers) run on what comes
 * back. It stands in for BLE in the outage test, and lets the companion's own tests drive a real
 * IQ without a broker. `sent` and `answers` are the wire, for tests that look at it.
 */
import type { Hub } from "../../firmware/hub.js";
import type { AcceptAnswer, OutgoingRequest, Requester } from "../../provisioning/app/client.js";
import { AppError } from "../../provisioning/app/errors.js";
import { PROTOCOL_VERSION } from "../../provisioning/protocol/messages.js";
import { DEFAULT_TOPIC_PREFIX, responseTopic, topicsFor } from "../../provisioning/protocol/topics.js";

export class HandlerRequester implements Requester {
  readonly topicPrefix = DEFAULT_TOPIC_PREFIX;
  readonly sent: string[] = [];
  readonly answers: string[] = [];

  constructor(
    private readonly hub: Hub,
    /** The app's clock, which dates each request's expiry. */
    private readonly now: () => number = Date.now,
    private readonly via: "mqtt" | "ble" = "ble",
    private readonly clientId = `in-process-${Math.random().toString(16).slice(2, 10)}`,
  ) {}

  async request<T>(iqId: string, request: OutgoingRequest, accept: AcceptAnswer<T>): Promise<T> {
    const replyTo = responseTopic(topicsFor(iqId, this.topicPrefix), this.clientId);
    const envelope = JSON.stringify({ v: PROTOCOL_VERSION, id: request.id, op: request.op, replyTo, expiresAt: this.now() + 30_000, args: request.args });
    this.sent.push(envelope);
    const response = await this.hub.requests.sink({ payload: Buffer.from(envelope), via: this.via });
    if (response === undefined) throw new AppError("no_answer", `IQ ${iqId} dropped the request`);
    const text = Buffer.from(response.payload).toString("utf8");
    this.answers.push(text);
    const accepted = accept(JSON.parse(text) as Parameters<AcceptAnswer<T>>[0], replyTo);
    if (accepted === undefined) throw new AppError("response_invalid", `the answer of IQ ${iqId} did not verify`);
    return accepted.outcome;
  }

  watch(): Promise<() => Promise<void>> {
    return Promise.reject(new AppError("unsupported", "an in-process app does not watch topics"));
  }
}
