/**
 * When a request or a sealed command is too old, or claims too long a life. One rule for the
 * envelope (unauthenticated, possibly MQTT 5's message expiry) and the sealed box (authenticated).
 */
import { IqError } from "../errors.js";
import { REQUESTS } from "./limits.js";

/**
 * Refuses if any expiry is past (allowing REQUESTS.clockSkewMs) or the earliest lies beyond a
 * command's lifetime. An unsynchronised clock (a Pi without RTC, booted offline) cannot judge
 * either: then nothing is refused here, so the PIN path keeps opening the door, and the strictly
 * increasing counters and request-id memory still stop replays.
 */
export function assertUnexpired(expiries: readonly number[], now: number, clockSynced: boolean): void {
  if (!clockSynced || expiries.length === 0) return;
  if (expiries.some((t) => t < now - REQUESTS.clockSkewMs)) {
    throw new IqError("request_expired", "the request expired before it arrived (or this device's clock is wrong)");
  }
  if (Math.min(...expiries) > now + REQUESTS.maxCommandLifetimeMs + REQUESTS.clockSkewMs) {
    throw new IqError("request_malformed", "expiresAt is too far ahead: a command lives at most 5 minutes");
  }
}
