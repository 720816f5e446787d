#!/usr/bin/env node
/**
 * `iq`: the companion app on the command line, playing the phone app and the web app for every
 * story (docs/protocol.md lists the messages each command causes). A thin shell over Companion:
 * it finds the profile, the broker and the IQ, asks for PINs, and prints results for a person or,
 * with --json, for a program.
 *
 * Exit status: 0 done, 1 refused or failed (the IQ's error code and message are printed),
 * 2 the command line itself is wrong.
 */
import { realpathSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { pathToFileURL } from "node:url";
import { Argument, Command, CommanderError, InvalidArgumentError, Option } from "commander";

import { IqError } from "../common/errors.js";
import { BleRequester } from "./app/ble-client.js";
import { IqClient, type MessageHandler, type Requester } from "./app/client.js";
import { Companion, DEFAULT_LOCK, type IqEvent, type MadeCode } from "./app/companion.js";
import { AppError } from "./app/errors.js";
import { parseBundle } from "./app/bundle.js";
import { BACKUPS_KEPT, Profile } from "./app/profile.js";
import { CODE_PURPOSES, type CodePurpose } from "./crypto/code.js";
import { PIN_LENGTH, checkPin } from "./pin-policy.js";
import { backupSchema, type Backup, type CommandOp, type Role } from "./protocol/messages.js";
import { DEFAULT_TOPIC_PREFIX } from "./protocol/topics.js";

/** The hub's embedded broker when it runs with no configuration: where a first try meets it. */
const DEFAULT_BROKER = "mqtt://127.0.0.1:1883";
const DEFAULT_DISCOVER_MS = 1_000;
/** After a request went unanswered: how long to gather the retained states of the IQs on the broker. */
const SEEN_WAIT_MS = 500;
/** A wait shorter than this shows no progress: most answers come within it. */
const PROGRESS_EVERY_MS = 1_000;

const EXIT = { ok: 0, refused: 1, usage: 2 } as const;
/** What a chosen PIN must be (provisioning/pin-policy.ts), said before it is typed. */
const PIN_RULES = `${PIN_LENGTH.min} to ${PIN_LENGTH.max} digits; no repeats (1212), no runs (1234, 4321), no common PINs (2580)`;
const NEW_PIN_TRIES = 3;
const USAGE = "usage";

/** Everything the CLI takes from its surroundings, so tests can run it in-process. */
export interface CliEnvironment {
  env: NodeJS.ProcessEnv;
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  /** Asks for a secret without echoing it; absent when there is no terminal to ask on. */
  askSecret?: (prompt: string) => Promise<string>;
  /** `events --follow` ends when this aborts (Ctrl-C). */
  stop: AbortSignal;
  now: () => number;
  /**
   * Replaces the one progress line on stderr ("" clears it); absent when stderr is not a
   * terminal, where a line rewritten every second would only clutter a log.
   */
  progress?: (line: string) => void;
  /** How long a request waits for its answer (tests shorten it). */
  requestTimeoutMs?: number;
}

interface Globals {
  profile?: string;
  broker?: string;
  ble?: boolean;
  iq?: string;
  topicPrefix?: string;
}

/** What a command prints: a sentence or two for a person, a value for --json. */
interface Output {
  text: string;
  json: unknown;
}

function usageError(message: string): AppError {
  return new AppError(USAGE, message);
}

/**
 * One invocation: the profile, the connection to the IQ (the broker, or with --ble a BLE link;
 * opened only when a command needs it: `iq code` never does) and the Companion over both.
 */
class Invocation {
  readonly profile: Profile;
  readonly companion: Companion;
  private readonly topicPrefix: string;
  private client: Promise<IqClient | BleRequester> | undefined;

  constructor(
    readonly globals: Globals,
    readonly io: CliEnvironment,
  ) {
    this.profile = Profile.at({ name: globals.profile, env: io.env });
    this.topicPrefix = globals.topicPrefix ?? io.env.IQ_TOPIC_PREFIX ?? DEFAULT_TOPIC_PREFIX;
    const requester: Requester = {
      topicPrefix: this.topicPrefix,
      request: async (iqId, op, args) => {
        const client = await this.connect();
        const stopProgress = this.showProgress(iqId);
        try {
          return await client.request(iqId, op, args);
        } catch (error) {
          // Only a broker has retained states to look at.
          const brokerSilent = error instanceof AppError && error.code === "no_answer" && this.globals.ble !== true;
          throw brokerSilent ? await this.explainSilence(iqId, error) : error;
        } finally {
          stopProgress();
        }
      },
      watch: async (filter, onMessage: MessageHandler) => (await this.connect()).watch(filter, onMessage),
    };
    this.companion = new Companion({ profile: this.profile, client: requester, now: io.now });
  }

  /** The options that reach the IQ the way this run did: ` --ble`, ` --broker URL`, or none for the default broker. */
  async reachedBy(): Promise<string> {
    if (this.globals.ble === true) return " --ble";
    const broker = await this.broker();
    return broker === DEFAULT_BROKER ? "" : ` --broker ${broker}`;
  }

  async broker(): Promise<string> {
    return withScheme(this.globals.broker ?? this.io.env.IQ_BROKER ?? (await this.profile.read()).broker ?? DEFAULT_BROKER);
  }

  /** --iq, else the one IQ this profile knows. */
  async iqId(): Promise<string> {
    if (this.globals.iq !== undefined) return this.globals.iq;
    const known = Object.keys((await this.profile.read()).iqs);
    if (known.length === 1 && known[0] !== undefined) return known[0];
    throw usageError(
      known.length === 0
        ? `profile ${this.profile.name} knows no IQ yet: pass --iq ID (${thisCli(this.io.env)} discover lists the IQs on the broker)`
        : `profile ${this.profile.name} knows several IQs (${known.join(", ")}): pass --iq ID`,
    );
  }

  /** The PIN of the person at the app: --pin, else $IQ_PIN, else asked for. */
  async pin(flag: string | undefined, prompt = "PIN: "): Promise<string> {
    const pin = flag ?? this.io.env.IQ_PIN;
    if (pin !== undefined) return pin;
    if (this.io.askSecret === undefined) {
      throw usageError("a PIN is needed: pass --pin, set IQ_PIN, or run in a terminal to be asked for it");
    }
    return this.io.askSecret(prompt);
  }

  /**
   * A PIN being chosen: the flag, else asked for twice, since a typo would lock the person out.
   * The prompt states the rules, and a PIN the policy refuses, or two that differ, are asked for
   * again (NEW_PIN_TRIES times) instead of ending the command.
   */
  async newPin(flag: string | undefined, name: string): Promise<string> {
    if (flag !== undefined) return flag;
    const ask = this.io.askSecret;
    if (ask === undefined) {
      throw usageError(`${name} is needed: pass it as an option, or run in a terminal to be asked for it`);
    }
    this.io.stderr(`${name}: ${PIN_RULES}\n`);
    for (let attempt = 1; ; attempt++) {
      const first = await ask(`${name}: `);
      let problem: IqError | undefined;
      try {
        checkPin(first);
        if ((await ask(`${name} again: `)) !== first) problem = new AppError("pin_mismatch", "the two PINs differ");
      } catch (error) {
        if (!(error instanceof IqError)) throw error;
        problem = error;
      }
      if (problem === undefined) return first;
      if (attempt >= NEW_PIN_TRIES) throw new AppError(problem.code, `${problem.message}: nothing was sent`);
      this.io.stderr(`${problem.message}; try again\n`);
    }
  }

  /** After a pairing: remember where this profile's IQs live (a pairing over BLE says nothing about that). */
  async rememberBroker(): Promise<void> {
    if (this.globals.ble === true) return;
    const broker = await this.broker();
    await this.profile.update((data) => {
      data.broker = broker;
    });
  }

  /** "waiting for IQ x… 3 s" on the terminal while a request waits; returns what ends it. */
  private showProgress(iqId: string): () => void {
    const { progress } = this.io;
    if (progress === undefined) return () => undefined;
    const started = this.io.now();
    let shown = false;
    const timer = setInterval(() => {
      shown = true;
      progress(`waiting for IQ ${iqId}… ${Math.round((this.io.now() - started) / 1000)} s`);
    }, PROGRESS_EVERY_MS);
    return () => {
      clearInterval(timer);
      if (shown) progress("");
    };
  }

  /**
   * No answer: a mistyped IQ id and a stopped hub look the same from here, so look at the IQs
   * that announce themselves (retained state and availability) and say which it is.
   */
  private async explainSilence(iqId: string, noAnswer: AppError): Promise<AppError> {
    const seen = await this.companion.discover({ waitMs: SEEN_WAIT_MS });
    const broker = await this.broker();
    const it = seen.find((iq) => iq.iqId === iqId);
    if (it?.availability === "offline") return new AppError("no_answer", `IQ ${iqId} is offline on ${broker}: is the hub running?`);
    if (it !== undefined || seen.length === 0) return noAnswer;
    return new AppError("iq_unknown", `no IQ ${iqId} on ${broker}; IQs seen: ${seen.map((iq) => iq.iqId).join(", ")} (check --iq)`);
  }

  /** See IqClient.onConnectionChange; connects first if need be. A BLE link has no broker to lose. */
  async onConnectionChange(listener: (connected: boolean) => void): Promise<() => void> {
    const client = await this.connect();
    return client instanceof IqClient ? client.onConnectionChange(listener) : () => undefined;
  }

  async close(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    if (client !== undefined) await (await client).close();
  }

  private connect(): Promise<IqClient | BleRequester> {
    // Over BLE: this machine's BlueZ, on $IQ_BLE_ADAPTER or its first adapter.
    if (this.globals.ble === true) this.client ??= Promise.resolve(new BleRequester({ adapter: this.io.env.IQ_BLE_ADAPTER, topicPrefix: this.topicPrefix, now: this.io.now }));
    this.client ??= (async () => {
      const [broker, files, { connection }] = await Promise.all([this.broker(), tlsFiles(this.io.env), this.profile.read()]);
      // An imported credential goes only to the broker it came with; its user name is the client
      // id, as the LAN broker binds them, and so names the one response topic it may read.
      const imported = connection?.broker === broker ? connection : undefined;
      const mqtt = imported === undefined ? files : { username: imported.username, password: imported.password, ca: Buffer.from(imported.ca), ...files };
      return IqClient.connect({
        broker,
        topicPrefix: this.topicPrefix,
        now: this.io.now,
        mqtt,
        clientId: imported?.username,
        timeoutMs: this.io.requestTimeoutMs,
      });
    })();
    // A failed connection is not kept: the error goes to the caller, and close() has nothing to end.
    this.client.catch(() => (this.client = undefined));
    return this.client;
  }
}

/**
 * TLS material for a broker off the Pi (mqtts://, wss://) with a private CA or client
 * certificates: PEM files named by $IQ_MQTT_CA, $IQ_MQTT_CERT, $IQ_MQTT_KEY. Credentials go in
 * the URL (mqtts://user:password@host:8883).
 */
async function tlsFiles(env: NodeJS.ProcessEnv): Promise<Partial<Record<"ca" | "cert" | "key", Buffer>>> {
  const files = { ca: env.IQ_MQTT_CA, cert: env.IQ_MQTT_CERT, key: env.IQ_MQTT_KEY };
  const read = async ([name, path]: [string, string | undefined]): Promise<[string, Buffer][]> => {
    if (path === undefined) return [];
    try {
      return [[name, await readFile(path)]];
    } catch (error) {
      throw new AppError("tls_file_unreadable", `cannot read $IQ_MQTT_${name.toUpperCase()} (${path}): ${(error as Error).message}`);
    }
  };
  return Object.fromEntries((await Promise.all(Object.entries(files).map(read))).flat());
}

/**
 * `host:port` means `mqtt://host:port`: mqtt.js would take `host` for the scheme and fail later
 * with a packet error that names neither.
 */
function withScheme(broker: string): string {
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(broker) ? broker : `mqtt://${broker}`;
}

type Handler = (run: Invocation, command: Command) => Promise<Output | undefined>;

function parseCount(value: string): number {
  if (!/^[0-9]+$/.test(value)) throw new InvalidArgumentError("expected a whole number");
  return Number(value);
}

/** ISO 8601 in UTC to the second, like the events and the hub's log (docs/design.md: one clock format). */
function time(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");
}

function describeCode(made: MadeCode): string {
  return `${made.code} (valid once, until about ${time(made.validUntil)})`;
}

/** The iq command behind each sealed op, for a refusal's `details.op`: people know commands. */
const COMMAND_OF: Readonly<Record<CommandOp, string>> = {
  whoami: "iq whoami",
  open: "iq open",
  office: "iq office",
  "user.add": "iq user add",
  "user.remove": "iq user remove",
  "user.list": "iq user list",
  "pin.change": "iq pin change",
  "pin.reset": "iq pin reset",
  "device.invite": "iq device invite",
  backup: "iq backup",
  restore: "iq restore",
  "web.open": "iq open --web",
  "web.office": "iq office --web",
};

/**
 * One event on one line: the user by name where known (with the id, which the IQ's records
 * use), and a refused op as the command that caused it.
 */
function describeEvent(event: IqEvent, names: ReadonlyMap<string, string>): string {
  const { seq, at, type, ...rest } = event;
  const fields = Object.entries(rest).map(([key, value]) => {
    if (key === "user" && typeof value === "string" && names.has(value)) return `user=${names.get(value)} (${value})`;
    return `${key}=${typeof value === "string" ? value : JSON.stringify(value)}`;
  });
  const op = (rest.details as Record<string, unknown> | undefined)?.op;
  if (typeof op === "string" && op in COMMAND_OF) fields.push(`command="${COMMAND_OF[op as CommandOp]}"`);
  return [`#${seq}`, at, type, ...fields].join(" ");
}

/** The retained state as a few words, whatever the hub put in it. */
function describeState(state: unknown): string {
  if (typeof state !== "object" || state === null) return typeof state === "string" ? state : "";
  const s = state as Record<string, unknown>;
  return [
    typeof s.state === "string" ? s.state : s.phase,
    s.claimWindowOpen === true ? "claim window open" : undefined,
    typeof s.version === "string" ? `v${s.version}` : undefined,
  ]
    .filter((part) => typeof part === "string")
    .join(", ");
}

/** "1 lock", "2 locks". */
function count(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? "" : "s"}`;
}

function table(rows: string[][]): string {
  const widths = rows[0]?.map((_, column) => Math.max(...rows.map((row) => row[column]?.length ?? 0))) ?? [];
  return rows.map((row) => row.map((cell, column) => cell.padEnd(widths[column] ?? 0)).join("  ").trimEnd()).join("\n");
}

/** --pin, which every command that needs a PIN takes; `what` says whose PIN. */
function pinOption(what = "your PIN"): Option {
  return new Option("--pin <pin>", `${what} (default: $IQ_PIN, else asked for)`);
}

/** Stands for a profile name the CLI cannot know; pasted as it is, it is still a valid name. */
const PROFILE_PLACEHOLDER = "PROFILE";
const PROFILE_NAME = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * A profile name for a person, from their name ("Bob" → bob), else the placeholder. Never `<…>`
 * or quotes: a hint is pasted into a shell, where those redirect or open a string.
 */
function profileFor(name: string | undefined): string {
  const candidate = name?.toLowerCase().replace(/\s+/g, "-");
  return candidate !== undefined && PROFILE_NAME.test(candidate) ? candidate : PROFILE_PLACEHOLDER;
}

/**
 * A command line someone else runs on their own device, ready to paste: with `npx` (the checkout's
 * `iq` is not on PATH), a profile for them, and how this run reached the IQ (`--ble`, or the
 * broker unless it is the default: see Invocation.reachedBy).
 */
function theirCommand(reachedBy: string, profile: string, rest: string): string {
  return `npx iq${reachedBy} --profile ${profile} ${rest}`;
}

/**
 * How this person runs the CLI here: `iq` where the installer put it on PATH (its launcher sets
 * IQ_CLI), else `npx iq` from the checkout.
 */
function thisCli(env: NodeJS.ProcessEnv): string {
  return env.IQ_CLI === "iq" ? "iq" : "npx iq";
}

/** A next step for the same person: their profile remembers the broker it paired over (BLE is said each time). */
function ownCommand(run: Invocation, rest: string): string {
  return `${thisCli(run.io.env)}${run.globals.ble === true ? " --ble" : ""} --profile ${run.profile.name} ${rest}`;
}

/** How a person who was just handed an initial PIN activates with it; `who` says who does. */
function handOver(reachedBy: string, iqId: string, userId: string, pin: string, who: string, name: string | undefined): string {
  return `hand it over in person; ${who} with: ${theirCommand(reachedBy, profileFor(name), `activate --iq ${iqId} --user ${userId} --pin ${pin}`)}`;
}

function buildProgram(io: CliEnvironment, json: boolean): Command {
  const program = new Command("iq")
    .description("The IQ companion app: claim, manage and open an IQ hub over MQTT (or BLE nearby), as the phone and web apps do.")
    .option("--profile <name>", "profile to use (default: $IQ_PROFILE, else default)")
    .option(
      "--broker <url>",
      `MQTT broker: mqtt://, mqtts://, ws:// or wss:// URL; host:port means mqtt://host:port (default: $IQ_BROKER, else the profile's, else ${DEFAULT_BROKER})`,
    )
    .option("--iq <id>", "IQ to talk to (default: the profile's only IQ)")
    .option("--ble", "talk to the IQ over Bluetooth LE, nearby, instead of MQTT (adapter: $IQ_BLE_ADAPTER, else the first)")
    .option("--topic-prefix <prefix>", `the hub's mqtt.topicPrefix (default: $IQ_TOPIC_PREFIX, else ${DEFAULT_TOPIC_PREFIX})`)
    .option("--json", "print machine-readable JSON; errors as {\"error\":{code,message}}")
    .exitOverride()
    .configureOutput({
      writeOut: io.stdout,
      writeErr: io.stderr,
      // With --json, main prints the usage error as JSON instead.
      outputError: (text, write) => (json ? undefined : write(text)),
    })
    .showHelpAfterError(json ? false : "(iq --help shows the usage)");

  const on = (command: Command, handler: Handler): Command =>
    command.action(async (...params: unknown[]) => {
      const self = params[params.length - 1] as Command;
      const run = new Invocation(self.optsWithGlobals<Globals>(), io);
      try {
        const output = await handler(run, self);
        if (output !== undefined) io.stdout(json ? `${JSON.stringify(output.json)}\n` : `${output.text}\n`);
      } finally {
        await run.close();
      }
    });

  on(
    program
      .command("discover")
      .description("list the IQs that announce themselves on the broker")
      .addOption(new Option("--wait <ms>", "how long to listen for them").argParser(parseCount).default(DEFAULT_DISCOVER_MS)),
    async (run, self) => {
      const found = await run.companion.discover({ waitMs: self.opts<{ wait: number }>().wait });
      const text =
        found.length === 0
          ? `No IQ found on ${await run.broker()}. Is the hub running and connected to this broker?`
          : table(found.map((iq) => [iq.iqId, iq.availability ?? "?", describeState(iq.state)]));
      return { text, json: found };
    },
  );

  const profile = program.command("profile").description("this profile's broker connection");
  on(
    profile
      .command("import")
      .description("keep a connection bundle (made on the Pi by sudo iq-hub party add) in this profile: its broker, CA and credential")
      .argument("<file>", "the bundle file"),
    async (run, self) => {
      const [file] = self.processedArgs as [string];
      const text = await readFile(file, "utf8").catch((error: Error) => {
        throw new AppError("bundle_unreadable", `cannot read ${file}: ${error.message}`);
      });
      const bundle = parseBundle(text, file);
      const replaced = await run.profile.update((data) => {
        const before = data.connection;
        data.broker = bundle.broker;
        data.connection = { broker: bundle.broker, username: bundle.username, password: bundle.password, ca: bundle.ca };
        return before !== undefined && (before.broker !== bundle.broker || before.username !== bundle.username) ? before : undefined;
      });
      const next = bundle.iqId === undefined ? "discover" : `status --iq ${bundle.iqId}`;
      const lines = [
        `Profile ${run.profile.name} now reaches ${bundle.broker} as ${bundle.username} (TLS, the Pi's own CA).`,
        ...(replaced === undefined ? [] : [`It replaced the credential ${replaced.username} for ${replaced.broker}.`]),
        `The file holds a password: delete it (${file}) once imported. Next: ${ownCommand(run, next)}`,
      ];
      return { text: lines.join("\n"), json: { profile: run.profile.name, broker: bundle.broker, username: bundle.username, iqId: bundle.iqId } };
    },
  );

  on(program.command("status").description("the IQ's state, clock and locks (no PIN needed)"), async (run) => {
    const status = await run.companion.status({ iqId: await run.iqId() });
    // The claim is run from this profile, over the broker this status came through.
    const claim = `${thisCli(run.io.env)}${await run.reachedBy()} --profile ${run.profile.name} claim --iq ${status.iqId} --secret XXXX-XXXX-XXXX --name NAME`;
    const clock =
      status.clockSynced === false ? "clock NOT synchronised: Codes are refused until it is" : status.clockSynced ? "clock synchronised" : "clock state unknown";
    const lines = [`IQ ${status.iqId} (v${status.version}): ${status.state}; ${clock}`];
    if (!status.claimed) {
      lines.push(
        status.claimWindowOpen
          ? `Unclaimed, claim window open: ${claim}`
          : "Unclaimed, claim window closed: press the IQ's button briefly to open it",
      );
    }
    for (const lock of status.locks) {
      lines.push(`${lock.name}: ${lock.officeMode ? "Office Mode on (held open)" : lock.unlocked ? "unlocked" : "locked"}`);
    }
    lines.push(
      status.keyProtection === "otp-wrapped"
        ? "keys: otp-wrapped (bound to this board's OTP key)"
        : "keys: file-only (a copy of the whole card opens them; README: Binding the keys to the board)",
    );
    return { text: lines.join("\n"), json: status };
  });

  on(
    program
      .command("claim")
      .description("become the Owner of a new or reset IQ (inside its claim window)")
      .requiredOption("--secret <secret>", "the IQ's setup secret, XXXX-XXXX-XXXX")
      .requiredOption("--name <name>", "your name")
      .addOption(pinOption("the PIN you choose")),
    async (run, self) => {
      const opts = self.opts<{ secret: string; name: string; pin?: string }>();
      const iqId = await run.iqId();
      const pin = await run.newPin(opts.pin ?? run.io.env.IQ_PIN, "PIN you choose");
      const owner = await run.companion.claim({ iqId, setupSecret: opts.secret, name: opts.name, pin });
      await run.rememberBroker();
      // A re-claim after a factory reset (story 8): the users come back with a restore, and a
      // backup made first would hold only the new Owner.
      const last = (await run.companion.keptBackups(iqId)).at(-1)?.backup;
      const next =
        last === undefined
          ? `Make a backup now and after each change: ${ownCommand(run, "backup")}`
          : `This profile has a backup of ${iqId} (${count(last.users.length, "user")}, made ${last.createdAt}): now run ${ownCommand(run, "restore")}`;
      return {
        text: `Claimed ${iqId}: you are its owner, ${owner.name} (user id ${owner.userId}). Keep your PIN: a forgotten owner PIN means a factory reset. ${next}`,
        json: { iqId, ...owner },
      };
    },
  );

  const user = program.command("user").description("add, remove and list users (Owner, Admin)");
  on(
    user
      .command("add")
      .description("add a user; the IQ makes their initial PIN")
      .requiredOption("--name <name>", "the user's name")
      .addOption(new Option("--role <role>", "their role").choices(["admin", "superuser", "user"]).makeOptionMandatory())
      .addOption(pinOption()),
    async (run, self) => {
      const opts = self.opts<{ name: string; role: Exclude<Role, "owner">; pin?: string }>();
      const iqId = await run.iqId();
      const added = await run.companion.addUser({ iqId, pin: await run.pin(opts.pin), name: opts.name, role: opts.role });
      return {
        text: `Added ${added.name} (${added.role}). Initial PIN: ${added.initialPin} — ${handOver(await run.reachedBy(), iqId, added.userId, added.initialPin, `${added.name} activates`, added.name)}`,
        json: added,
      };
    },
  );
  on(
    user
      .command("remove")
      .description("remove a user and their devices")
      .argument("<user>", "the user's id, or a name only one user has (iq user list shows them)")
      .addOption(pinOption()),
    async (run, self) => {
      const [who] = self.processedArgs as [string];
      const iqId = await run.iqId();
      const pin = await run.pin(self.opts<{ pin?: string }>().pin);
      const userId = await run.companion.findUser({ iqId, pin, who });
      await run.companion.removeUser({ iqId, pin, userId });
      return { text: `Removed ${who === userId ? userId : `${who} (${userId})`} from ${iqId}.`, json: { userId } };
    },
  );
  on(
    user.command("list").description("the IQ's users").addOption(pinOption()),
    async (run, self) => {
      const iqId = await run.iqId();
      const { users } = await run.companion.listUsers({ iqId, pin: await run.pin(self.opts<{ pin?: string }>().pin) });
      const rows = users.map((u) => [u.userId, u.name, u.role, u.activated ? `activated (${count(u.devices, "device")})` : "not activated"]);
      return { text: table([["USER", "NAME", "ROLE", "APP"], ...rows]), json: { users } };
    },
  );

  const relay = program.command("relay").description("the web relay: a paired party that passes on people's Codes (Owner)");
  on(
    relay
      .command("add")
      .description("pair a web relay; the IQ makes its one-time initial PIN")
      .requiredOption("--name <name>", "the relay's name (for example: cloud)")
      .addOption(pinOption()),
    async (run, self) => {
      const opts = self.opts<{ name: string; pin?: string }>();
      const iqId = await run.iqId();
      const added = await run.companion.addRelay({ iqId, pin: await run.pin(opts.pin), name: opts.name });
      return {
        text: `Added the web relay ${added.name}. Initial PIN: ${added.initialPin} — ${handOver(await run.reachedBy(), iqId, added.userId, added.initialPin, "the relay activates", added.name)}`,
        json: added,
      };
    },
  );

  on(
    program
      .command("activate")
      .description("activate this app with the initial PIN you were handed")
      .option("--user <userId>", "your user id (default: the one this profile had on the IQ)")
      .addOption(pinOption("the initial PIN")),
    async (run, self) => {
      const opts = self.opts<{ user?: string; pin?: string }>();
      const iqId = await run.iqId();
      const userId = opts.user ?? (await run.profile.activation(iqId))?.userId;
      if (userId === undefined) throw usageError("--user is needed: the user id you were given with the initial PIN");
      const paired = await run.companion.activate({ iqId, userId, pin: await run.pin(opts.pin, "Initial PIN: ") });
      await run.rememberBroker();
      return {
        // A relay has no PIN to choose: it only passes people's Codes on.
        text:
          paired.role === "relay"
            ? `Activated on ${iqId} as the web relay ${paired.name}. It passes a person's Code on with: ${ownCommand(run, `open --web --iq ${iqId} --user USER_ID --code CODE`)}`
            : `Activated on ${iqId} as ${paired.name} (${paired.role}). Now choose your own PIN: ${ownCommand(run, `pin change --iq ${iqId}`)}`,
        json: { iqId, ...paired },
      };
    },
  );

  const pin = program.command("pin").description("change your PIN, or reset a user's (Owner)");
  on(
    pin
      .command("change")
      .description("change your PIN on this IQ (only this one)")
      .addOption(pinOption("your current PIN"))
      .option("--new <pin>", "the new PIN (default: asked for twice)"),
    async (run, self) => {
      const opts = self.opts<{ pin?: string; new?: string }>();
      const iqId = await run.iqId();
      const current = await run.pin(opts.pin, "Current PIN: ");
      await run.companion.changePin({ iqId, pin: current, newPin: await run.newPin(opts.new, "New PIN") });
      return { text: `PIN changed on ${iqId}. It is the PIN for this IQ only.`, json: { iqId } };
    },
  );
  on(
    pin
      .command("reset")
      .description("Owner: give a user a new initial PIN (their app must activate again)")
      .argument("<user>", "the user's id, or a name only one user has")
      .addOption(pinOption("your (the Owner's) PIN")),
    async (run, self) => {
      const [who] = self.processedArgs as [string];
      const iqId = await run.iqId();
      const pin = await run.pin(self.opts<{ pin?: string }>().pin);
      const reset = await run.companion.resetPin({ iqId, pin, userId: await run.companion.findUser({ iqId, pin, who }) });
      return {
        text: `Reset the PIN of ${reset.userId}; their app is no longer activated. New initial PIN: ${reset.initialPin} — ${handOver(await run.reachedBy(), iqId, reset.userId, reset.initialPin, "they activate again", who === reset.userId ? undefined : who)}`,
        json: reset,
      };
    },
  );

  on(
    program
      .command("code")
      .description("make a Code for the web app (offline; valid once, for about 3 minutes)")
      .addOption(
        new Option("--for <purpose>", "what the Code is for")
          .choices(CODE_PURPOSES.filter((p) => p !== "owner_reset" && p !== "second_device"))
          .default("open"),
      )
      .option("--lock <name>", "the lock the Code is for: it works for no other", DEFAULT_LOCK)
      .addOption(pinOption()),
    async (run, self) => {
      const opts = self.opts<{ for: CodePurpose; lock: string; pin?: string }>();
      const iqId = await run.iqId();
      const made = await run.companion.code({ iqId, pin: await run.pin(opts.pin), purpose: opts.for, lock: opts.lock });
      return {
        text: `Code for ${opts.for.replace("_", " ")} of ${opts.lock} on ${iqId}: ${describeCode(made)}`,
        json: { iqId, lock: opts.lock, ...made },
      };
    },
  );

  const webOptions = (command: Command): Command =>
    command
      .option("--lock <name>", "which lock", DEFAULT_LOCK)
      .option("--web", "act as the web relay (a profile paired with 'iq relay add'): pass on a person's Code")
      .option("--user <userId>", "with --web: the user id")
      .option("--code <code>", "with --web: a Code made by the app (iq code)")
      .addOption(pinOption("your PIN, without --web"));
  interface DoorOptions {
    lock: string;
    web?: boolean;
    user?: string;
    code?: string;
    pin?: string;
  }
  /** The web app's (user, Code), required together with --web and refused without it. */
  const webCredentials = (opts: DoorOptions): { userId: string; code: string } | undefined => {
    if (opts.web !== true) {
      if (opts.user !== undefined || opts.code !== undefined) throw usageError("--user and --code go with --web");
      return undefined;
    }
    if (opts.user === undefined || opts.code === undefined) throw usageError("--web needs --user and --code");
    return { userId: opts.user, code: opts.code };
  };

  on(webOptions(program.command("open").description("open a lock: sealed with your PIN, or with --web and a Code")), async (run, self) => {
    const opts = self.opts<DoorOptions>();
    const web = webCredentials(opts);
    const iqId = await run.iqId();
    const result = web
      ? await run.companion.webOpen({ iqId, lock: opts.lock, ...web })
      : await run.companion.open({ iqId, lock: opts.lock, pin: await run.pin(opts.pin) });
    return { text: `Opened ${result.lock} on ${iqId}.`, json: result };
  });

  on(
    webOptions(
      program
        .command("office")
        .description("switch Office Mode (door held open) on or off")
        .addArgument(new Argument("<state>", "on or off").choices(["on", "off"])),
    ),
    async (run, self) => {
      const opts = self.opts<DoorOptions>();
      const web = webCredentials(opts);
      const switchOn = self.processedArgs[0] === "on";
      const iqId = await run.iqId();
      const result = web
        ? await run.companion.webOffice({ iqId, lock: opts.lock, on: switchOn, ...web })
        : await run.companion.office({ iqId, lock: opts.lock, on: switchOn, pin: await run.pin(opts.pin) });
      const text = result.officeMode
        ? `Office Mode on: ${result.lock} on ${iqId} stays open until: ${web ? "switched off with an office_off Code" : ownCommand(run, `office off${opts.lock === DEFAULT_LOCK ? "" : ` --lock ${opts.lock}`}`)}`
        : `Office Mode off: ${result.lock} on ${iqId} is locked.`;
      return { text, json: result };
    },
  );

  const device = program.command("device").description("use the app on a second device");
  on(
    device
      .command("invite")
      .description("on the first device: make the Code the second device activates with")
      .addOption(pinOption()),
    async (run, self) => {
      const iqId = await run.iqId();
      const made = await run.companion.inviteDevice({ iqId, pin: await run.pin(self.opts<{ pin?: string }>().pin) });
      const userId = (await run.profile.activation(iqId))?.userId ?? "USER";
      return {
        text: `Second-device Code: ${describeCode(made)}\nOn the second device, run: ${theirCommand(await run.reachedBy(), profileFor(`${run.profile.name}-2`), `device join --iq ${iqId} --user ${userId} --code ${made.code}`)}  (it asks for your PIN)`,
        json: { iqId, userId, ...made },
      };
    },
  );
  on(
    device
      .command("join")
      .description("on the second device: activate with the first device's Code and your PIN")
      .requiredOption("--user <userId>", "your user id")
      .requiredOption("--code <code>", "the Code shown by iq device invite")
      .addOption(pinOption()),
    async (run, self) => {
      const opts = self.opts<{ user: string; code: string; pin?: string }>();
      const iqId = await run.iqId();
      const paired = await run.companion.joinAsDevice({ iqId, userId: opts.user, code: opts.code, pin: await run.pin(opts.pin) });
      await run.rememberBroker();
      return { text: `This device is now activated on ${iqId} as ${paired.name} (${paired.role}).`, json: { iqId, ...paired } };
    },
  );

  on(
    program
      .command("backup")
      .description(`Owner: keep the IQ's users, roles, locks and settings in this profile (the last ${BACKUPS_KEPT})`)
      .option("--out <file>", "also write it to this file (iq restore --from reads it)")
      .option("--force", "keep it even if it has fewer users than the last backup, which was never restored")
      .addOption(pinOption()),
    async (run, self) => {
      const opts = self.opts<{ out?: string; force?: boolean; pin?: string }>();
      const iqId = await run.iqId();
      const backup = await run.companion.backup({ iqId, pin: await run.pin(opts.pin), force: opts.force === true });
      // 0600 like the profile: names and roles of the people who may open the door.
      if (opts.out !== undefined) await writeFile(opts.out, `${JSON.stringify({ backup }, null, 2)}\n`, { mode: 0o600 });
      const where = `profile ${run.profile.name}${opts.out === undefined ? "" : ` and ${opts.out}`}`;
      return {
        text: `Backup of ${iqId} kept in ${where}: ${count(backup.users.length, "user")}, ${count(backup.locks.length, "lock")}. After a factory reset, claim the IQ again and run: ${ownCommand(run, `restore --iq ${iqId}${opts.out === undefined ? "" : ` --from ${opts.out}`}`)}`,
        json: { backup },
      };
    },
  );
  on(
    program
      .command("restore")
      .description("Owner, after a factory reset and a new claim: push the last backup back")
      .option("--from <file>", "a backup saved with iq backup --out (or iq --json backup) (default: the newest in this profile)")
      .addOption(pinOption()),
    async (run, self) => {
      const opts = self.opts<{ from?: string; pin?: string }>();
      const iqId = await run.iqId();
      const backup = opts.from === undefined ? undefined : await readBackupFile(opts.from);
      const restored = await run.companion.restore({ iqId, pin: await run.pin(opts.pin), backup });
      const reachedBy = await run.reachedBy();
      const lines = [
        restored.users.length === 0
          ? `Restored ${iqId}: no users to add back.`
          : `Restored ${count(restored.users.length, "user")} on ${iqId}. Each has a new initial PIN to hand over in person:`,
        ...restored.users.map(
          (u) => `  ${u.name} (${u.role}): ${theirCommand(reachedBy, profileFor(u.name), `activate --iq ${iqId} --user ${u.userId} --pin ${u.initialPin}`)}`,
        ),
      ];
      if (restored.missingLocks.length > 0) {
        lines.push(`The backup names locks this IQ does not have: ${restored.missingLocks.join(", ")}; configure them on the hub.`);
      }
      return { text: lines.join("\n"), json: restored };
    },
  );

  on(
    program
      .command("events")
      .description("the IQ's audit events (no PIN needed)")
      .option("--after <seq>", "only events after this sequence number", parseCount)
      .option("--follow", "keep printing new events until Ctrl-C (with --json: one JSON object per line)")
      .option("--user <user>", "only this user's events: an id, or a name (names need an Owner's or Admin's PIN)")
      .option("--type <types>", "only events of these types, comma-separated (opened,refused,lockout,…)")
      .addOption(pinOption("with an Owner's or Admin's profile: your PIN, to show names (optional)")),
    async (run, self) => {
      const opts = self.opts<{ after?: number; follow?: boolean; user?: string; type?: string; pin?: string }>();
      const iqId = await run.iqId();
      const names = await userNames(run, iqId, opts.pin);
      const wanted = eventFilter(opts, names);
      const print = (event: IqEvent): string => (json ? JSON.stringify(event) : describeEvent(event, names));
      if (opts.follow !== true) {
        const events = (await run.companion.events({ iqId, afterSeq: opts.after })).filter(wanted);
        return { text: events.length === 0 ? "No events." : events.map(print).join("\n"), json: { events } };
      }
      await followEvents(run, iqId, opts.after, (event) => {
        if (wanted(event)) run.io.stdout(`${print(event)}\n`);
      });
      return undefined;
    },
  );

  on(
    program.command("whoami").description("who this app is on the IQ").addOption(pinOption()),
    async (run, self) => {
      const iqId = await run.iqId();
      const me = await run.companion.whoami({ iqId, pin: await run.pin(self.opts<{ pin?: string }>().pin) });
      return { text: `You are ${me.name} (${me.role}, user id ${me.userId}) on ${iqId}.`, json: { iqId, ...me } };
    },
  );

  return program;
}

/**
 * User ids to names for the events: this profile's own, and with an Owner's or Admin's PIN
 * (--pin, $IQ_PIN, or asked on a terminal, where Enter skips) everyone's from user.list. Events
 * need no PIN, so without one the ids stay.
 */
async function userNames(run: Invocation, iqId: string, pinFlag: string | undefined): Promise<Map<string, string>> {
  const me = await run.profile.activation(iqId);
  const names = new Map<string, string>(me === undefined ? [] : [[me.userId, me.name]]);
  if (me?.activated !== true || (me.role !== "owner" && me.role !== "admin")) return names;
  const pin = pinFlag ?? run.io.env.IQ_PIN ?? (await run.io.askSecret?.("PIN, to show names (Enter: ids only): "));
  if (pin === undefined || pin === "") return names;
  for (const user of (await run.companion.listUsers({ iqId, pin })).users) names.set(user.userId, user.name);
  return names;
}

/** --user (an id, or a name any case) and --type (a comma-separated list). */
function eventFilter(opts: { user?: string; type?: string }, names: ReadonlyMap<string, string>): (event: IqEvent) => boolean {
  const types = opts.type?.split(",").map((t) => t.trim()).filter((t) => t !== "");
  const who = opts.user?.toLowerCase();
  const userIds =
    who === undefined ? undefined : new Set([opts.user, ...[...names].filter(([, name]) => name.toLowerCase() === who).map(([id]) => id)]);
  return (event) => (types === undefined || types.includes(event.type)) && (userIds === undefined || userIds.has(event.user as string));
}

/**
 * Prints events until the stop signal (Ctrl-C) or an error, saying on stderr that it follows
 * and when the broker goes and comes back (stdout stays the events alone, for a pipe).
 */
async function followEvents(run: Invocation, iqId: string, afterSeq: number | undefined, onEvent: (event: IqEvent) => void): Promise<void> {
  const { io } = run;
  let failed: (error: Error) => void = () => undefined;
  const ended = new Promise<void>((resolve, reject) => {
    failed = reject;
    if (io.stop.aborted) resolve();
    io.stop.addEventListener("abort", () => resolve(), { once: true });
  });
  const broker = await run.broker();
  const stop = await run.companion.followEvents({ iqId, afterSeq, onEvent, onError: failed });
  io.stderr(`following the events of ${iqId} on ${broker} (Ctrl-C ends)\n`);
  const unwatch = await run.onConnectionChange((connected) =>
    io.stderr(connected ? `broker ${broker} is back: following again\n` : `lost the broker ${broker}: retrying…\n`),
  );
  try {
    await ended;
  } finally {
    unwatch();
    await stop();
  }
}

async function readBackupFile(file: string): Promise<Backup> {
  let json: unknown;
  try {
    json = JSON.parse(await readFile(file, "utf8"));
  } catch (error) {
    throw new AppError("backup_invalid", `cannot read a backup from ${file}: ${(error as Error).message}`);
  }
  // `iq --json backup` prints {"backup": …}; a bare backup is fine too.
  const candidate = typeof json === "object" && json !== null && "backup" in json ? json.backup : json;
  const parsed = backupSchema.safeParse(candidate);
  if (!parsed.success) throw new AppError("backup_invalid", `${file} is not an iq-hub backup: ${parsed.error.issues[0]?.message ?? ""}`);
  return parsed.data;
}

/** A `forbidden` refusal names the command refused, as the person typed it, not the IQ's op. */
function withCommand(error: IqError): { code: string; message: string } {
  const op = error.details?.op;
  if (error.code !== "forbidden" || typeof op !== "string" || !(op in COMMAND_OF)) return error;
  return { code: error.code, message: `${COMMAND_OF[op as CommandOp]}: ${error.message}` };
}

/** Runs `iq` with the arguments after the program name; resolves with the exit status. */
export async function main(args: readonly string[], io: CliEnvironment = processEnvironment()): Promise<number> {
  // Known before parsing, so that even a usage error comes out as JSON.
  const json = args.includes("--json");
  const program = buildProgram(io, json);
  try {
    await program.parseAsync([...args], { from: "user" });
    return EXIT.ok;
  } catch (error) {
    if (error instanceof CommanderError) {
      // Help and version are displayed through the same exit path.
      if (error.exitCode === 0) return EXIT.ok;
      if (json) io.stdout(`${JSON.stringify({ error: { code: USAGE, message: error.message.replace(/^error: /, "") } })}\n`);
      return EXIT.usage;
    }
    const { code, message } =
      error instanceof IqError ? withCommand(error) : { code: "internal_error", message: `unexpected failure: ${(error as Error).message}` };
    if (json) io.stdout(`${JSON.stringify({ error: { code, message } })}\n`);
    else io.stderr(`error ${code}: ${message}\n`);
    return code === USAGE ? EXIT.usage : EXIT.refused;
  }
}

function processEnvironment(): CliEnvironment {
  const stop = new AbortController();
  const abort = (): void => {
    // `events --follow` ends cleanly on the abort; anything else (a request waiting for an
    // answer) ends now, with the shell's usual status for Ctrl-C.
    stop.abort();
    setTimeout(() => process.exit(130), 250).unref();
  };
  process.once("SIGINT", abort);
  process.once("SIGTERM", abort);
  const interactive = process.stdin.isTTY && process.stderr.isTTY;
  return {
    env: process.env,
    stdout: (text) => process.stdout.write(text),
    stderr: (text) => process.stderr.write(text),
    ...(interactive && { askSecret: askHidden }),
    ...(process.stderr.isTTY && { progress: (line: string) => process.stderr.write(`\r\x1b[K${line}`) }),
    stop: stop.signal,
    now: Date.now,
  };
}

/** Reads a line from the terminal without echo (raw mode), for PINs. */
function askHidden(prompt: string): Promise<string> {
  const stdin = process.stdin;
  process.stderr.write(prompt);
  stdin.setRawMode(true);
  stdin.setEncoding("utf8");
  stdin.resume();
  return new Promise((resolve, reject) => {
    let typed = "";
    const finish = (error?: Error): void => {
      stdin.off("data", onData);
      stdin.setRawMode(false);
      stdin.pause();
      process.stderr.write("\n");
      if (error === undefined) resolve(typed);
      else reject(error);
    };
    const onData = (chunk: string): void => {
      for (const char of chunk) {
        if (char === "\r" || char === "\n") return finish();
        if (char === "\u0003" || char === "\u0004") return finish(new AppError("cancelled", "nothing was sent"));
        typed = char === "\u007f" || char === "\b" ? typed.slice(0, -1) : typed + char;
      }
    };
    stdin.on("data", onData);
  });
}

/** Run as a program (also through npm's bin symlink), not when imported by tests. */
function invokedDirectly(): boolean {
  const script = process.argv[1];
  if (script === undefined) return false;
  try {
    return pathToFileURL(realpathSync(script)).href === import.meta.url;
  } catch {
    return false;
  }
}

if (invokedDirectly()) {
  process.exitCode = await main(process.argv.slice(2));
}
