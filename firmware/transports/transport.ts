/**
 * What every transport (MQTT, BLE) hands the request handler, and what it gets back. Transports
 * only move bytes: parsing, authorisation and every decision happen in the handler, so a request
 * means the same thing whichever way it arrived.
 */
export interface InboundRequest {
  /** The request body as received (JSON text, see docs/protocol.md). */
  payload: Uint8Array;
  /** Which transport it came through: a BLE request is from an app nearby, an MQTT one came through the cloud. */
  via: "mqtt" | "ble";
  /** MQTT 5 message expiry, turned into an absolute time (ms since the epoch) on arrival. */
  expiresAt?: number;
  /** MQTT 5 response topic: where the answer goes instead of the envelope's replyTo (the handler checks it). */
  responseTopic?: string;
}

export interface OutboundResponse {
  /** The response body (JSON text). */
  payload: Uint8Array;
  /** Where the handler asks the response to go (the request's `replyTo`), if anywhere. */
  replyTo?: string;
}

/** The handler as transports see it. It never throws: every failure is an error response. */
export type RequestSink = (request: InboundRequest) => Promise<OutboundResponse | undefined>;
