import { IqError } from "../common/errors.js";

/** The GPIO hardware cannot be used as configured (wrong chip, no permission, pin busy). */
export class GpioError extends IqError {
  constructor(message: string, details?: Record<string, unknown>) {
    super("gpio_unavailable", message, details);
    this.name = "GpioError";
  }
}
