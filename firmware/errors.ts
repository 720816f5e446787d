/**
 * The one root error of the project. Every failure a person or a client can cause carries a
 * stable, machine-readable `code` (documented in docs/protocol.md) and a sentence a person
 * understands in `message`. Transports send both back; logs print both.
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

/** A configuration value is missing or wrong; the message names the key and what is allowed. */
export class ConfigError extends IqError {
  constructor(
    readonly key: string,
    message: string,
  ) {
    super("config_invalid", `config: ${key}: ${message}`, { key });
    this.name = "ConfigError";
  }
}

/** The GPIO hardware cannot be used as configured (wrong chip, no permission, pin busy). */
export class GpioError extends IqError {
  constructor(message: string, details?: Record<string, unknown>) {
    super("gpio_unavailable", message, details);
    this.name = "GpioError";
  }
}
