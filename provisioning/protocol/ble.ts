/**
 * The IQ's GATT layout, shared by the hub (the peripheral) and every app (a central). One primary
 * service of its own; requests are written to one characteristic and answers come back as
 * notifications on another, both framed (ble-framing.ts); a third is read for what the IQ is.
 * The link is as untrusted as the broker: answers are signed or sealed exactly as over MQTT.
 */
export const BLE_UUIDS = {
  /** The service, advertised: a central finds the IQ by it. */
  service: "06f2a172-730b-4411-985c-72c62e57da54",
  /** Write with response: one framed request envelope (docs/protocol.md), chunk by chunk. */
  requests: "06f2a173-730b-4411-985c-72c62e57da54",
  /** Notify: framed answer envelopes. */
  responses: "06f2a174-730b-4411-985c-72c62e57da54",
  /** Read: `{"iqId", "state", "v"}` as JSON, a hint like MQTT's availability (nothing is decided on it). */
  info: "06f2a175-730b-4411-985c-72c62e57da54",
} as const;

/** An ATT notification or write carries at most MTU − 3 bytes of value. */
export const ATT_OVERHEAD = 3;
/** The smallest MTU BLE allows, and the largest BlueZ negotiates. */
export const MIN_MTU = 23;
export const MAX_MTU = 517;

/** What the info characteristic holds. */
export interface BleInfo {
  iqId: string;
  state: string;
  /** The protocol version spoken over the requests characteristic. */
  v: number;
}
