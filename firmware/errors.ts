/** The hub's own errors; the root class lives in common/ so that the app side needs no firmware. */
import { IqError } from "../common/errors.js";

export { IqError };

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
