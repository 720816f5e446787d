/**
 * Structured logs on stderr, one line per record: `key=value` pairs that journald keeps and grep
 * finds. In a terminal the line starts with the time and level for people; stdout stays free for
 * the simulator's display.
 */
export type LogLevel = "debug" | "info" | "warn" | "error";
export type LogFields = Record<string, unknown>;

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  child(fields: LogFields): Logger;
}

export interface LoggerOptions {
  level?: LogLevel;
  /** Where lines go; tests collect them. */
  write?: (line: string) => void;
  /** Under systemd journald adds its own timestamp; in a terminal we print one. */
  timestamps?: boolean;
}

/** `scheme://user:password@` in any URL: a broker URL may carry its credentials, and logs are widely readable. */
const URL_PASSWORD = /\b([a-z][a-z0-9+.-]*:\/\/[^\s:@/]*):[^\s@/]*@/gi;

/** Hides the password of every URL in `text`, keeping the user name so the log still says who connected. */
function redactUrlPasswords(text: string): string {
  return text.replace(URL_PASSWORD, "$1:***@");
}

function formatValue(value: unknown): string {
  if (value instanceof Error) return JSON.stringify(redactUrlPasswords(value.message));
  const text = redactUrlPasswords(typeof value === "string" ? value : (JSON.stringify(value) ?? String(value)));
  return /^[^\s"=]+$/.test(text) ? text : JSON.stringify(text);
}

export function createLogger(options: LoggerOptions = {}, bound: LogFields = {}): Logger {
  const threshold = RANK[options.level ?? "info"];
  const write = options.write ?? ((line: string) => process.stderr.write(line + "\n"));
  const timestamps = options.timestamps ?? process.stderr.isTTY === true;
  const emit = (level: LogLevel, msg: string, fields: LogFields = {}) => {
    if (RANK[level] < threshold) return;
    const pairs = Object.entries({ ...bound, ...fields })
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => `${k}=${formatValue(v)}`);
    // The full ISO 8601 UTC time, as in the events and the CLI (docs/design.md: one clock format).
    const head = timestamps ? `${new Date().toISOString()} ${level.toUpperCase().padEnd(5)}` : `level=${level}`;
    write([head, timestamps ? redactUrlPasswords(msg) : `msg=${formatValue(msg)}`, ...pairs].join(" "));
  };
  return {
    debug: (m, f) => emit("debug", m, f),
    info: (m, f) => emit("info", m, f),
    warn: (m, f) => emit("warn", m, f),
    error: (m, f) => emit("error", m, f),
    child: (fields) => createLogger(options, { ...bound, ...fields }),
  };
}

/**
 * Text from outside (a topic a stranger chose) made fit for one log line: at most `maxChars`
 * characters, and every control or format character, line separator, noncharacter and lone
 * surrogate written as `\u{…}`, so that it can neither forge lines nor drive a terminal.
 */
export function untrusted(text: string, maxChars = 80): string {
  const escaped = text
    .slice(0, maxChars)
    .replace(/[\p{Cc}\p{Cf}\p{Cs}\p{Zl}\p{Zp}\p{Noncharacter_Code_Point}\\]/gu, (c) => `\\u{${c.codePointAt(0)!.toString(16)}}`);
  return text.length > maxChars ? `${escaped}…(${text.length} chars)` : escaped;
}

/**
 * A warning that input can set off at any rate (a flood of requests): the first is logged, the
 * rest within `intervalMs` only counted, then one line gives the count. At most two lines an interval.
 */
export class CountedWarning {
  private count = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly log: Logger,
    private readonly msg: string,
    private readonly intervalMs = 60_000,
  ) {}

  /** `fields` must be bounded: pass input through `untrusted`. */
  note(fields?: LogFields): void {
    if (this.timer !== undefined) {
      this.count += 1;
      return;
    }
    this.log.warn(this.msg, fields);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.count > 0) this.log.warn(`${this.msg} (${this.count} more in ${this.intervalMs / 1000} s)`);
      this.count = 0;
    }, this.intervalMs);
    this.timer.unref();
  }
}
