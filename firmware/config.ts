/**
 * The hub's configuration: one JSON file (optional) plus environment overrides, validated
 * against one schema. Every error names the key, where the value came from, and what is allowed,
 * so a hobbyist can fix it without reading code.
 */
import { existsSync, readFileSync } from "node:fs";
import { resolve } from "node:path";
import { z } from "zod";
import { topicProblem } from "../provisioning/protocol/topic-check.js";
import { ConfigError } from "./errors.js";
import { DEFAULT_TOPIC_PREFIX } from "../provisioning/protocol/topics.js";

/** BCM numbers of the 40-pin header's GPIOs. */
const bcmPin = z.number().int().min(0).max(27);
const ms = (min: number, max: number) => z.number().int().min(min).max(max);

const gpioSchema = z.strictObject({
  /** "auto": onoff where GPIO exists, mock where none exists at all. Never a silent fallback on a Pi. */
  backend: z.enum(["auto", "onoff", "mock"]).default("auto"),
  sysfsRoot: z.string().min(1).default("/sys/class/gpio"),
  /** Overrides the gpiochip base read from sysfs (sysfs number = base + BCM). */
  sysfsBase: z.number().int().min(0).max(4096).optional(),
});

const lockSchema = z.strictObject({
  name: z.string().regex(/^[a-z0-9_-]{1,32}$/, "lower-case letters, digits, _ and -, at most 32"),
  pin: bcmPin,
  /** Most cheap relay boards switch on when their input is pulled LOW. */
  activeLow: z.boolean().default(false),
  pulseMs: ms(100, 60_000).default(3_000),
});

const ledSchema = z.strictObject({
  red: bcmPin.default(22),
  green: bcmPin.default(23),
  blue: bcmPin.default(24),
  /** Common-anode LEDs light a colour when its pin is LOW. */
  commonAnode: z.boolean().default(false),
});

const buttonSchema = z
  .strictObject({
    pin: bcmPin.default(17),
    /** Wired to ground with the pull-up from config.txt: pressed reads LOW. */
    activeLow: z.boolean().default(true),
    debounceMs: ms(1, 500).default(50),
    shortPressMaxMs: ms(100, 5_000).default(2_000),
    resetArmMs: ms(1_000, 120_000).default(10_000),
    resetCancelMs: ms(2_000, 300_000).default(30_000),
  })
  .refine((b) => b.resetArmMs > b.shortPressMaxMs, {
    path: ["resetArmMs"],
    message: "must be longer than button.shortPressMaxMs",
  })
  .refine((b) => b.resetCancelMs > b.resetArmMs, {
    path: ["resetCancelMs"],
    message: "must be longer than button.resetArmMs",
  });

/** 127.0.0.0/8, ::1 and localhost: addresses no other machine can reach. */
function isLoopbackHost(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127(\.\d{1,3}){3}$/.test(host);
}

const mqttSchema = z.strictObject({
  /** mqtt://, mqtts://, ws:// or wss:// URL of the broker. Absent: the hub runs an embedded broker. */
  url: z
    .string()
    .regex(/^(mqtts?|wss?):\/\/[^\s]+$/, "a URL such as mqtt://host:1883 or mqtts://host:8883")
    .optional(),
  /**
   * Loopback only: the embedded broker (aedes) has no authentication configured, so on any other
   * address anyone on the network could send requests and read events. A LAN needs mqtt.url.
   */
  embeddedHost: z
    .string()
    .refine(isLoopbackHost, {
      message:
        "the embedded broker has no authentication, so it listens on loopback only (127.0.0.1, ::1 or localhost); " +
        'to reach the hub from the LAN, run a broker with TLS and passwords and set mqtt.url (README: "A broker of your own")',
    })
    .default("127.0.0.1"),
  embeddedPort: z.number().int().min(1).max(65_535).default(1883),
  username: z.string().optional(),
  password: z.string().optional(),
  /** Paths of PEM files for TLS. */
  ca: z.string().optional(),
  cert: z.string().optional(),
  key: z.string().optional(),
  topicPrefix: z
    .string()
    .regex(/^[^#+\s]+$/, "a topic prefix without wildcards or spaces")
    .refine((prefix) => topicProblem(`${prefix}/iq/req`) === undefined, "a topic prefix without wildcards, control characters, $ at the start or empty levels")
    .default(DEFAULT_TOPIC_PREFIX),
  keepaliveS: z.number().int().min(5).max(3_600).default(30),
  /** 4 = MQTT 3.1.1, 5 = MQTT 5. Absent: 5 for an external broker, 4 for the embedded one (aedes speaks 3.1.1 only). */
  protocolVersion: z.union([z.literal(4), z.literal(5)]).optional(),
  /**
   * Absent: `iq-<iqId>-<128 random bits>`, made once and kept in the state directory. Whoever knows
   * the id can take the hub's session (its requests), so a configured one must be as unguessable.
   */
  clientId: z.string().regex(/^[\x21-\x7e]{1,128}$/, "1 to 128 printable ASCII characters, no spaces").optional(),
  /** Reconnect delays grow exponentially from min to max, with jitter so that a fleet does not reconnect in step. */
  reconnectMinMs: ms(100, 60_000).default(1_000),
  reconnectMaxMs: ms(1_000, 600_000).default(30_000),
})
  .refine((m) => m.reconnectMaxMs >= m.reconnectMinMs, {
    path: ["reconnectMaxMs"],
    message: "must be at least mqtt.reconnectMinMs",
  })
  .refine((m) => m.url !== undefined || m.protocolVersion !== 5, {
    path: ["protocolVersion"],
    message: "the embedded broker speaks MQTT 3.1.1 only: use 4, or set mqtt.url to a broker that speaks MQTT 5",
  });

const bleSchema = z.strictObject({
  /**
   * "auto": on when there is a D-Bus system bus (BLE then starts whenever bluetoothd is on it);
   * true: the same, but a missing bus or adapter is a warning; false: no BLE at all.
   */
  enabled: z.union([z.literal("auto"), z.boolean()]).default("auto"),
  /** The BlueZ adapter to serve on. */
  adapter: z.string().regex(/^hci[0-9]{1,3}$/, "an adapter name such as hci0").default("hci0"),
  /** The name advertised. Absent: "IQ " and the IQ id's last 4 characters (a 128-bit UUID leaves little room). */
  name: z.string().regex(/^[\x20-\x7e]{1,20}$/, "1 to 20 printable ASCII characters").optional(),
  /** While the adapter is missing or off, how often the hub looks again. */
  retryMs: ms(100, 600_000).default(5_000),
  /** How long a central may take to write one whole request. */
  requestTimeoutMs: ms(100, 120_000).default(10_000),
});

export const configSchema = z.strictObject({
  /** The IQ's id in topics and Codes. Absent: generated once and kept in the store. */
  iqId: z
    .string()
    .regex(/^[a-z0-9-]{3,40}$/, "3 to 40 lower-case letters, digits and -")
    .optional(),
  stateDir: z.string().min(1).default(process.env.STATE_DIRECTORY ?? "./state"),
  /** How long the claim window stays open after boot or a short press. */
  claimWindowMs: ms(10_000, 3_600_000).default(300_000),
  /** How long a random initial PIN stays good unused (a pending user activates within it). */
  initialPinValidDays: z.number().int().min(1).max(90).default(7),
  gpio: gpioSchema.prefault({}),
  locks: z.array(lockSchema).min(1).max(8).prefault([{ name: "door", pin: 27 }]),
  led: ledSchema.prefault({}),
  button: buttonSchema.prefault({}),
  mqtt: mqttSchema.prefault({}),
  ble: bleSchema.prefault({}),
  clock: z
    .strictObject({
      /**
       * true: the clock is taken as synchronised without asking (laptops and CI without systemd's
       * time sync). Absent: asked of systemd on real GPIO; taken as synchronised on mock GPIO,
       * where the hub is a simulator and says so at start.
       */
      assumeSynced: z.boolean().optional(),
    })
    .prefault({}),
  audit: z.strictObject({ maxEvents: z.number().int().min(100).max(10_000_000).default(10_000) }).prefault({}),
  log: z.strictObject({ level: z.enum(["debug", "info", "warn", "error"]).default("info") }).prefault({}),
});

export type HubConfig = z.infer<typeof configSchema>;
export type LockConfig = HubConfig["locks"][number];

export const ENV_PREFIX = "IQ_HUB_";
/** Environment variable naming the config file; every other IQ_HUB_* variable overrides one key. */
export const CONFIG_FILE_ENV = "IQ_HUB_CONFIG";
export const DEFAULT_CONFIG_FILE = "/etc/iq-hub/config.json";

/** `button.resetArmMs` ↔ `IQ_HUB_BUTTON__RESET_ARM_MS`: levels joined by `__`, camelCase as SNAKE. */
export function envNameFor(path: readonly string[]): string {
  return ENV_PREFIX + path.map((p) => p.replace(/([a-z0-9])([A-Z])/g, "$1_$2").toUpperCase()).join("__");
}

function keyPathFromEnv(name: string): string[] {
  return name
    .slice(ENV_PREFIX.length)
    .split("__")
    .map((part) => part.toLowerCase().replace(/_([a-z0-9])/g, (_m, c: string) => c.toUpperCase()));
}

/** Values are JSON where they parse as JSON (numbers, booleans, arrays), plain strings otherwise. */
function parseEnvValue(raw: string): unknown {
  try {
    return JSON.parse(raw);
  } catch {
    return raw;
  }
}

export interface LoadedConfig {
  config: HubConfig;
  /** The file read, or undefined when the hub runs on defaults. */
  file: string | undefined;
  /** The installed hub's config was taken because nothing named a file (see requireServiceOrNamedConfig). */
  installedByDefault: boolean;
}

export interface LoadOptions {
  env?: NodeJS.ProcessEnv;
  /** Explicit file (from --config); else IQ_HUB_CONFIG; else /etc/iq-hub/config.json when it exists. */
  file?: string;
  /** The installed hub's config, taken when nothing else is named (DEFAULT_CONFIG_FILE). */
  defaultFile?: string;
}

export function loadConfig(options: LoadOptions = {}): LoadedConfig {
  const env = options.env ?? process.env;
  const explicit = options.file ?? env[CONFIG_FILE_ENV];
  const defaultFile = options.defaultFile ?? DEFAULT_CONFIG_FILE;
  const file = explicit ?? (existsSync(defaultFile) ? defaultFile : undefined);
  const raw = file === undefined ? {} : readConfigFile(resolve(file));
  const origins = new Map<string, string>();
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith(ENV_PREFIX) || name === CONFIG_FILE_ENV || value === undefined) continue;
    const path = keyPathFromEnv(name);
    setPath(raw, path, parseEnvValue(value), name);
    origins.set(path.join("."), `environment ${name}`);
  }
  return { config: validateConfig(raw, file, origins), file, installedByDefault: explicit === undefined && file !== undefined };
}

/**
 * Refuses to start a hub by hand on the installed hub's config when nothing named it: that is
 * `sudo iq-hub` or `npm start` on an installed Pi (systemd sets INVOCATION_ID for every unit it
 * runs, and the unit names its config). Such a hub would take the service's pins and its broker
 * login (the broker then drops one of the two) with a state of its own. Only for starting a hub:
 * relocking (relock.ts) must work whoever runs it.
 */
export function requireServiceOrNamedConfig(loaded: LoadedConfig, env: NodeJS.ProcessEnv = process.env): void {
  if (!loaded.installedByDefault || env.INVOCATION_ID !== undefined) return;
  const file = loaded.file!;
  throw new ConfigError(
    "(file)",
    `${file} is the installed hub's, and that hub runs as the service iq-hub (sudo systemctl status iq-hub; journalctl -u iq-hub -f). ` +
      `A second hub started by hand would take its pins and its broker login. To run it by hand anyway, stop the service and name the config: ` +
      `sudo systemctl stop iq-hub; sudo -u iq-hub STATE_DIRECTORY=/var/lib/iq-hub iq-hub --config ${file}`,
  );
}

function readConfigFile(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new ConfigError("(file)", `cannot read ${file}: ${(err as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new ConfigError("(file)", `${file} is not valid JSON: ${(err as Error).message}`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new ConfigError("(file)", `${file} must hold one JSON object, such as {"locks": [...]}`);
  }
  return parsed as Record<string, unknown>;
}

function setPath(target: Record<string, unknown>, path: string[], value: unknown, envName: string): void {
  let node = target;
  for (const [i, key] of path.entries()) {
    if (i === path.length - 1) {
      node[key] = value;
      return;
    }
    const next = node[key];
    if (next !== undefined && (typeof next !== "object" || next === null || Array.isArray(next))) {
      throw new ConfigError(path.slice(0, i + 1).join("."), `cannot be set through ${envName}: it is not an object`);
    }
    node = (next as Record<string, unknown> | undefined) ?? (node[key] = {});
  }
}

/** Validate a raw object; `origins` tells, per dotted key, where a value came from. */
export function validateConfig(
  raw: unknown,
  file?: string,
  origins: ReadonlyMap<string, string> = new Map(),
): HubConfig {
  const result = configSchema.safeParse(raw);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    const unknown = issue.code === "unrecognized_keys" ? issue.keys[0] : undefined;
    const path = [...issue.path.map(String), ...(unknown === undefined ? [] : [unknown])];
    const key = path.join(".") || "(root)";
    const fromEnv = origins.get(key);
    const origin = fromEnv ?? (file === undefined ? "defaults" : file);
    const what = unknown === undefined ? issue.message : `unknown key; ${allowedKeys(path.slice(0, -1))}`;
    const hint = fromEnv !== undefined || unknown !== undefined ? "" : `; or set ${envNameFor(path)}`;
    throw new ConfigError(key, `${what} (from ${origin}${hint})`);
  }
  assertDistinctPins(result.data);
  return result.data;
}

function allowedKeys(parent: string[]): string {
  let schema: z.ZodType = configSchema;
  for (const key of parent) {
    const shape = shapeOf(schema);
    const next = shape?.[key];
    if (next === undefined) return "see the configuration reference in README.md";
    schema = next;
  }
  const shape = shapeOf(schema);
  return shape === undefined ? "see README.md" : `allowed: ${Object.keys(shape).join(", ")}`;
}

/** Unwraps defaults, arrays and refinements down to an object's shape. */
function shapeOf(schema: z.ZodType): Record<string, z.ZodType> | undefined {
  const def = schema.def as { type: string; innerType?: z.ZodType; element?: z.ZodType; shape?: Record<string, z.ZodType> };
  if (def.shape !== undefined) return def.shape;
  if (def.innerType !== undefined) return shapeOf(def.innerType);
  if (def.element !== undefined) return shapeOf(def.element);
  return undefined;
}

/** Two functions on one pin would fight: the relay could follow the LED. */
function assertDistinctPins(config: HubConfig): void {
  const used = new Map<number, string>();
  const claim = (pin: number, key: string) => {
    const other = used.get(pin);
    if (other !== undefined) throw new ConfigError(key, `BCM ${pin} is already used by ${other}; give each a pin of its own`);
    used.set(pin, key);
  };
  claim(config.button.pin, "button.pin");
  claim(config.led.red, "led.red");
  claim(config.led.green, "led.green");
  claim(config.led.blue, "led.blue");
  config.locks.forEach((lock, i) => claim(lock.pin, `locks.${i}.pin`));
  const names = new Set<string>();
  config.locks.forEach((lock, i) => {
    if (names.has(lock.name)) throw new ConfigError(`locks.${i}.name`, `"${lock.name}" is used twice; lock names must differ`);
    names.add(lock.name);
  });
}
