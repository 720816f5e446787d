import { IqError } from "../errors.js";
import type { Logger } from "../log.js";
import type { ErrorBody } from "../../provisioning/protocol/messages.js";

/**
 * The error a client is told: an IqError's code and message (and a lockout's end, or the tries
 * left after a wrong PIN), or
 * `internal_error` for anything else, whose details go to the log only.
 */
export function errorBody(error: unknown, log: Logger, what: string): ErrorBody {
  if (error instanceof IqError) {
    const { until, triesLeft } = error.details ?? {};
    const details = {
      ...(typeof until === "number" && { until }),
      ...(typeof triesLeft === "number" && { triesLeft }),
    };
    return { code: error.code, message: error.message, ...(Object.keys(details).length > 0 && { details }) };
  }
  log.error(`${what} failed`, { error: error instanceof Error ? error.stack : String(error) });
  return { code: "internal_error", message: "the IQ could not handle this request; see its log" };
}
