/**
 * The one root error of the project, shared by the hub, the HAL and the companion app (so the app
 * side ships without the hub). Every failure a person or a client can cause carries a stable,
 * machine-readable `code` (documented in docs/protocol.md) and a sentence a person understands in
 * `message`. Transports send both back; logs print both.
 */
export class IqError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
    this.name = "IqError";
  }
}
