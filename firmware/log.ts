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
    const head = timestamps ? `${new Date().toISOString().slice(11, 23)} ${level.toUpperCase().padEnd(5)}` : `level=${level}`;
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
