/**
 * The MQTT topic tree of one IQ, shared by the hub and every client. One versioned tree per IQ:
 * `<prefix>/<iqId>/…` with prefix `iq/v2` by default. docs/protocol.md describes each topic.
 */
export const DEFAULT_TOPIC_PREFIX = "iq/v2";

export interface IqTopics {
  /** Requests in (QoS 1, never retained). */
  requests: string;
  /** Responses go under here: `<responses>/<clientId>`; a request's replyTo must be inside it. */
  responses: string;
  /** Retained hub state (lifecycle, Office Mode, clock, version). */
  state: string;
  /** Retained `online` / `offline`; `offline` is the last will. */
  availability: string;
  /** Audit events, QoS 1, with a gap-free `seq`. */
  events: string;
}

export function topicsFor(iqId: string, prefix: string = DEFAULT_TOPIC_PREFIX): IqTopics {
  const root = `${prefix}/${iqId}`;
  return {
    requests: `${root}/req`,
    responses: `${root}/res`,
    state: `${root}/state`,
    availability: `${root}/availability`,
    events: `${root}/events`,
  };
}

/** The topic a client with `clientId` listens on for its responses. */
export function responseTopic(topics: IqTopics, clientId: string): string {
  return `${topics.responses}/${clientId}`;
}

/**
 * Whether a client-supplied topic is safe to publish to: 1 to 256 bytes of UTF-8, no wildcards,
 * no control characters (C0, DEL, C1) and no noncharacters. A broker drops a client that publishes
 * anything else, so one such reply topic could otherwise take the hub off the broker.
 */
export function isPublishableTopic(topic: string): boolean {
  const bytes = Buffer.byteLength(topic, "utf8");
  return bytes > 0 && bytes <= 256 && !/[#+\p{Cc}\p{Cs}\uFDD0-\uFDEF\uFFFE\uFFFF]/u.test(topic);
}
