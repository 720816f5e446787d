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

