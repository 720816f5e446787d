/**
 * The companion app's error: an IqError (stable code, sentence a person understands), whether the
 * IQ refused a request (its error response, code and message as sent) or the app itself could
 * not go on (no answer, no activation, an unreadable profile). The CLI prints either the same way.
 */
import { IqError } from "../../common/errors.js";

export class AppError extends IqError {
  constructor(code: string, message: string, details?: Record<string, unknown>) {
    super(code, message, details);
    this.name = "AppError";
  }
}
