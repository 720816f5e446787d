/**
 * Installs the hub as a systemd service on a Raspberry Pi: the service user, the owner's config
 * (written only when absent), the pins' pulls and boot levels in config.txt, the D-Bus policy
 * that lets the service user register with bluetoothd, the unit, the `iq` and `iq-hub` commands,
 * and with --lan-broker mosquitto as the LAN broker the hub uses (lan-broker/).
 * `plan()` reads the target and lists only what differs; `apply()` makes exactly those changes,
 * so a second run finds nothing to change. Run it through systemd/install.sh, which builds the
 * checkout as an unprivileged user, installs the build root-owned into the prefix, and runs the
 * prefix's copy of this file.
 */
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { lstat, mkdir, open, readdir, readFile, realpath, rename, rm, stat } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs, promisify } from "node:util";
import { DEFAULT_CONFIG_FILE, loadConfig, validateConfig, type HubConfig } from "../firmware/config.js";
import { IqError } from "../firmware/errors.js";
import { readOptional, run, splitLines, writeIfChanged, type Change } from "./changes.js";
import { planLanBroker } from "./lan-broker/plan.js";

const USER = "iq-hub";
/** gpio: write access to /sys/class/gpio. Not bluetooth: the D-Bus policy below grants BLE exactly what it needs. */
const GROUPS = ["gpio"] as const;
const UNIT_FILE = "/etc/systemd/system/iq-hub.service";
/** `systemctl enable` creates this link (WantedBy=multi-user.target); its presence means enabled. */
const ENABLED_LINK = "/etc/systemd/system/multi-user.target.wants/iq-hub.service";
/** Bookworm and later mount the boot partition at /boot/firmware, older releases at /boot. */
const BOOT_CONFIGS = ["/boot/firmware/config.txt", "/boot/config.txt"] as const;
/** tsc copies no .service file: it sits next to install.ts, or two levels up from dist/systemd/. */
const UNIT_TEMPLATE = [new URL("iq-hub.service", import.meta.url), new URL("../../systemd/iq-hub.service", import.meta.url)].find(
  (url) => existsSync(url),
);
/** dbus-daemon reads every file here; this one lets user iq-hub make the BLE transport's calls to org.bluez. */
const DBUS_POLICY_FILE = "/etc/dbus-1/system.d/iq-hub.conf";
const DBUS_POLICY_TEMPLATE = [new URL("iq-hub-dbus.conf", import.meta.url), new URL("../../systemd/iq-hub-dbus.conf", import.meta.url)].find(
  (url) => existsSync(url),
);

export const BLOCK_BEGIN = "# BEGIN iq-hub (managed by systemd/install.ts; edit /etc/iq-hub/config.json and re-run)";
export const BLOCK_END = "# END iq-hub";
/** Matches a block written by any version of this installer, whatever its marker said then. */
const BEGIN_PREFIX = "# BEGIN iq-hub";
/** Exists only while systemd runs the system (sd_booted(3)). */
const SYSTEMD_RUNNING = "/run/systemd/system";
/**
 * Commands on every user's PATH, each running the installed build with the service's node: `iq`,
 * the companion CLI, and `iq-hub` (`sudo iq-hub party add` makes the LAN broker's parties).
 */
const COMMANDS = [
  // IQ_CLI tells the CLI it runs as `iq` from PATH, so that the next steps it prints say `iq …`,
  // not `npx iq …` (which, outside a checkout, would fetch whatever npm calls "iq").
  { path: "/usr/local/bin/iq", script: "bin/iq.js", what: "the companion CLI", exports: "export IQ_CLI=iq\n" },
  { path: "/usr/local/bin/iq-hub", script: "dist/firmware/main.js", what: "the hub's command", exports: "" },
] as const;
type InstalledCommand = (typeof COMMANDS)[number];
/** Marks a command as this installer's: one without it is someone else's and is left alone. */
const commandMark = ({ what }: InstalledCommand) => `# iq-hub: ${what} of the installed hub (written by systemd/install.ts)`;
/** ProtectHome=yes hides these from the service: code or node there would fail with 203/EXEC. */
const HIDDEN_FROM_SERVICE = ["/home", "/root", "/run/user"];

export interface InstallOptions {
  /** "/" for this system. Any other directory is a tree to install into: commands are only printed. */
  root: string;
  /** The installed build the service runs (`<prefix>/dist/firmware/main.js`), root-owned. */
  prefix: string;
  /** The node binary for ExecStart. */
  node: string;
  /** A config to take the pins from and install when /etc/iq-hub/config.json is absent (--config). */
  configFile?: string | undefined;
  /** Only looking: a prefix not built yet is a note, not an error (install.sh builds it first). */
  dryRun?: boolean;
  /** Also set up mosquitto as the LAN broker (lan-broker/plan.ts) and point the hub at it. */
  lanBroker?: boolean;
}

export interface Plan {
  /** In the order apply() makes them: accounts, files, then systemctl. */
  changes: Change[];
  /** The config.txt that carries the block, or undefined when neither exists. */
  bootConfig: string | undefined;
  /** What the owner should know but the installer will not do. */
  notes: string[];
}

export type PinConfig = Pick<HubConfig, "button" | "led" | "locks">;

/** Fills the unit template's @NODE@ and @PREFIX@, refusing paths the service could not run. */
export function renderUnit(template: string, { node, prefix }: Pick<InstallOptions, "node" | "prefix">): string {
  for (const [option, path] of [
    ["--node", node],
    ["--prefix", prefix],
  ] as const) {
    // ExecStart splits on spaces and expands %, $ and quotes: allow plain absolute paths only.
    if (!/^\/[\w.+/-]*$/.test(path)) {
      throw new IqError("install_bad_path", `${option} ${path}: give an absolute path of letters, digits and . _ + - /`);
    }
    const hidden = HIDDEN_FROM_SERVICE.find((dir) => path === dir || path.startsWith(`${dir}/`));
    if (hidden !== undefined) {
      throw new IqError(
        "install_bad_path",
        `${option} ${path}: the service cannot see ${hidden} (ProtectHome=yes); ` +
          (option === "--prefix" ? "clone the repository to /opt/iq-hub instead" : "install Node.js system-wide (see README)"),
      );
    }
  }
  return template.replaceAll("@NODE@", node).replaceAll("@PREFIX@", prefix);
}

/** A command on PATH running the installed build with the service's node. Paths are checked by renderUnit. */
export function renderCommand(command: InstalledCommand, { node, prefix }: Pick<InstallOptions, "node" | "prefix">): string {
  return `#!/bin/sh\n${commandMark(command)}\n${command.exports}exec ${node} ${prefix}/${command.script} "$@"\n`;
}

/**
 * Root runs the prefix's code (the unit, the relock, this installer) and the node binary. Anyone
 * else who can write to one of them, or to a directory above it, can replace what root runs:
 * such a path is refused. Under --root the tree belongs to whoever runs the installer.
 */
function assertOnlyRootCanWrite(options: InstallOptions, what: string, path: string, entry: { uid: number; mode: number }): void {
  const owner = options.root === "/" ? 0 : (process.getuid?.() ?? 0);
  const mode = (entry.mode & 0o7777).toString(8).padStart(4, "0");
  const problem = entry.uid !== owner ? `is owned by uid ${entry.uid}` : (entry.mode & 0o022) !== 0 ? `is writable by others (mode ${mode})` : undefined;
  if (problem === undefined) return;
  throw new IqError(
    "install_unsafe_path",
    `${what}: ${path} ${problem}, so someone other than root could change what root runs. ` +
      `Fix: sudo chown root:root ${path} && sudo chmod go-w ${path}`,
  );
}

/** `path` and every directory above it that exists. */
async function assertPathOnlyRootCanWrite(options: InstallOptions, what: string, path: string): Promise<void> {
  for (let dir = path; ; dir = dirname(dir)) {
    const entry = await stat(join(options.root, dir)).catch(() => undefined);
    if (entry !== undefined) assertOnlyRootCanWrite(options, what, dir, entry);
    if (dir === "/") return;
  }
}

/** The prefix, the directories above it, and everything in it (symlinks carry no permissions of their own). */
async function assertPrefixOnlyRootCanWrite(options: InstallOptions): Promise<void> {
  await assertPathOnlyRootCanWrite(options, "--prefix", options.prefix);
  const top = join(options.root, options.prefix);
  for (const entry of await readdir(top, { recursive: true, withFileTypes: true }).catch(() => [])) {
    if (entry.isSymbolicLink()) continue;
    const path = join(entry.parentPath, entry.name);
    assertOnlyRootCanWrite(options, "--prefix", join(options.prefix, path.slice(top.length)), await lstat(path));
  }
}

/** The node binary and the file it links to. Under --root a node outside the tree is not checked. */
async function assertNodeOnlyRootCanWrite(options: InstallOptions): Promise<void> {
  const inTree = join(options.root, options.node);
  if (options.root !== "/" && !existsSync(inTree)) return;
  await assertPathOnlyRootCanWrite(options, "--node", options.node);
  if (options.root === "/") await assertPathOnlyRootCanWrite(options, "--node", await realpath(options.node));
}

/** config.txt's drive levels: dh = drive high, dl = drive low. */
const driveLevel = (high: boolean) => (high ? "dh" : "dl");

/**
 * The managed config.txt block: the firmware sets these before Linux starts, so the button has
 * its pull (sysfs cannot set one) and the relay is locked and the LED dark from power-on.
 */
export function renderBootBlock({ button, led, locks }: PinConfig): string[] {
  return [
    BLOCK_BEGIN,
    // Appended after a [pi4] or [cm5] section, the lines would apply to that model only.
    "[all]",
    `# reset button: input, pulled ${button.activeLow ? "up, pressed = low" : "down, pressed = high"}`,
    `gpio=${button.pin}=ip,${button.activeLow ? "pu" : "pd"}`,
    ...locks.flatMap((lock) => [
      `# lock "${lock.name}": relay output, starts locked`,
      `gpio=${lock.pin}=op,${driveLevel(lock.activeLow)}`,
    ]),
    "# RGB LED red, green, blue: outputs, start off",
    ...[led.red, led.green, led.blue].map((pin) => `gpio=${pin}=op,${driveLevel(led.commonAnode)}`),
    BLOCK_END,
  ];
}

/**
 * Puts `block` where the first managed block was (dropping every other one), or at the end.
 * Every other line stays as it was; CRLF files (edited on Windows) keep CRLF.
 */
export function mergeBootBlock(text: string, block: readonly string[]): string {
  const kept: string[] = [];
  let blockAt: number | undefined;
  let inBlock = false;
  for (const line of splitLines(text)) {
    const trimmed = line.trim();
    if (inBlock) {
      inBlock = trimmed !== BLOCK_END;
    } else if (trimmed.startsWith(BEGIN_PREFIX)) {
      inBlock = true;
      blockAt ??= kept.length;
    } else {
      kept.push(line);
    }
  }
  if (inBlock) {
    throw new IqError(
      "install_boot_config_broken",
      `config.txt has "${BEGIN_PREFIX}" without "${BLOCK_END}" after it; delete that block by hand and re-run`,
    );
  }
  kept.splice(blockAt ?? kept.length, 0, ...block);
  const eol = text.includes("\r\n") ? "\r\n" : "\n";
  return kept.join(eol) + eol;
}

/**
 * The owner's config decides the pins. `text` is what config.json holds after the install: the
 * installed file (never overwritten but by --lan-broker's broker keys), else the given or default one.
 */
async function ownerConfig(options: InstallOptions, target: string): Promise<{ pins: PinConfig; installed: string | undefined; text: string }> {
  const installed = await readOptional(target);
  // Environment overrides of the installer's own shell must not leak into the pins.
  const load = (file: string) => loadConfig({ file, env: {} }).config;
  if (options.configFile === undefined) {
    if (installed !== undefined) return { pins: load(target), installed, text: installed };
    const { locks, led, button } = validateConfig({});
    // Only the wiring: stateDir and the rest keep their defaults, and STATE_DIRECTORY from the unit wins.
    return { pins: { locks, led, button }, installed, text: `${JSON.stringify({ locks, led, button }, null, 2)}\n` };
  }
  const given = await readFile(options.configFile, "utf8");
  const pins = load(options.configFile);
  if (installed !== undefined && installed !== given) {
    throw new IqError(
      "install_config_differs",
      `${DEFAULT_CONFIG_FILE} exists and differs from ${options.configFile}. The hub reads ${DEFAULT_CONFIG_FILE}, ` +
        `so config.txt must follow it: edit it and re-run without --config, or remove it to install ${options.configFile}`,
    );
  }
  return { pins, installed, text: given };
}

/** 0640 root:iq-hub, created with that mode: the hub reads it, only root changes it, and it may hold the broker password. */
function installConfig(before: string | undefined, after: string, conceal: readonly string[]): Change[] {
  if (before === after) return [];
  return [
    { kind: "write", path: DEFAULT_CONFIG_FILE, before, after, mode: 0o640, conceal },
    run("chown", `root:${USER}`, DEFAULT_CONFIG_FILE),
  ];
}

/** Names of users, and each group's supplementary members, from the target's /etc files. */
async function readAccounts(at: (path: string) => string) {
  const rows = async (file: string) =>
    splitLines((await readOptional(at(file))) ?? "").map((line) => line.split(":"));
  const users = new Set((await rows("/etc/passwd")).map(([name]) => name));
  const groups = new Map((await rows("/etc/group")).map(([name, , , members]) => [name, (members ?? "").split(",")]));
  return { users, groups };
}

function accountCommands({ users, groups }: Awaited<ReturnType<typeof readAccounts>>): Change[] {
  // Raspberry Pi OS has both groups; elsewhere creating them at least lets the unit start
  // (SupplementaryGroups= of a missing group fails with 216/GROUP) and the hub says what it cannot open.
  const commands = GROUPS.filter((group) => !groups.has(group)).map((group) => run("groupadd", "--system", group));
  if (!users.has(USER)) {
    const noLogin = ["--no-create-home", "--shell", "/usr/sbin/nologin"];
    commands.push(run("useradd", "--system", ...noLogin, "--user-group", "--groups", GROUPS.join(","), USER));
  } else {
    const missing = GROUPS.filter((group) => !groups.get(group)?.includes(USER));
    if (missing.length > 0) commands.push(run("usermod", "--append", "--groups", missing.join(","), USER));
  }
  return commands;
}

/** Reads the target (under `root`) and lists what must change, in order. Writes nothing. */
export async function plan(options: InstallOptions): Promise<Plan> {
  const at = (path: string) => join(options.root, path);
  if (UNIT_TEMPLATE === undefined) throw new IqError("install_incomplete", "systemd/iq-hub.service is missing from this checkout");
  if (DBUS_POLICY_TEMPLATE === undefined) throw new IqError("install_incomplete", "systemd/iq-hub-dbus.conf is missing from this checkout");
  const unit = renderUnit(await readFile(UNIT_TEMPLATE, "utf8"), options);
  const notes: string[] = [];
  const entry = join(options.prefix, "dist/firmware/main.js");
  if (!existsSync(at(entry))) {
    if (options.dryRun !== true) {
      throw new IqError("install_not_built", `${entry} does not exist: run systemd/install.sh, which builds and installs it there`);
    }
    notes.push(`${entry} does not exist yet: systemd/install.sh builds and installs it there first`);
  }
  await assertPrefixOnlyRootCanWrite(options);
  await assertNodeOnlyRootCanWrite(options);

  const config = await ownerConfig(options, at(DEFAULT_CONFIG_FILE));
  // sd_booted(): in a chroot or an image being built systemd does not run, and daemon-reload,
  // reload, start and restart fail; enabling works offline, and the service starts at the next boot.
  const booted = existsSync(at(SYSTEMD_RUNNING));
  const broker = options.lanBroker === true ? await planLanBroker({ at, onThisSystem: options.root === "/", booted, config: config.text }) : undefined;
  notes.push(...(broker?.notes ?? []));
  const configChanges = installConfig(config.installed, broker?.config ?? config.text, broker === undefined ? [] : [broker.hubPassword]);
  const block = renderBootBlock(config.pins);
  const bootConfig = BOOT_CONFIGS.find((path) => existsSync(at(path)));
  const bootChanges: Change[] = [];
  if (bootConfig === undefined) {
    // Creating one could shadow the real boot partition mounted elsewhere: say what to add instead.
    notes.push(`neither ${BOOT_CONFIGS.join(" nor ")} exists, so nothing sets the button's pull-up or the outputs' boot levels.`);
    notes.push(`On a Raspberry Pi, add these lines to config.txt on the boot partition and reboot:\n${block.join("\n")}`);
  } else {
    const before = await readFile(at(bootConfig), "utf8");
    bootChanges.push(...writeIfChanged(bootConfig, before, mergeBootBlock(before, block)));
  }

  const commands: Change[] = [];
  for (const command of COMMANDS) {
    const before = await readOptional(at(command.path));
    if (before !== undefined && !before.includes(commandMark(command))) {
      notes.push(`${command.path} exists and is not iq-hub's: left alone (${command.what} is ${options.prefix}/${command.script})`);
    } else {
      commands.push(...writeIfChanged(command.path, before, renderCommand(command, options), 0o755));
    }
  }
  const policy = await readFile(DBUS_POLICY_TEMPLATE, "utf8");
  const policyChanges = writeIfChanged(DBUS_POLICY_FILE, await readOptional(at(DBUS_POLICY_FILE)), policy, 0o644);
  // Before the hub (re)starts, so that its first registration with bluetoothd is allowed (a D-Bus
  // that starts later reads the policy itself).
  if (policyChanges.length > 0 && booted) policyChanges.push(run("systemctl", "reload", "dbus.service"));

  const unitBefore = await readOptional(at(UNIT_FILE));
  const unitChanged = unitBefore !== unit;
  const systemctl: Change[] = unitChanged && booted ? [run("systemctl", "daemon-reload")] : [];
  // lstat, not exists: the link is absolute, and under --root following it would leave the tree.
  const enabled = await lstat(at(ENABLED_LINK)).then(() => true, () => false);
  if (!enabled && booted) systemctl.push(run("systemctl", "enable", "--now", "iq-hub.service"));
  else if (!enabled) {
    systemctl.push(run("systemctl", "enable", "iq-hub.service"));
    notes.push(`systemd is not running here (${SYSTEMD_RUNNING} is missing: a chroot or an image being built): the service is enabled and starts at the next boot`);
  } else if ((unitChanged || configChanges.length > 0) && booted) systemctl.push(run("systemctl", "restart", "iq-hub.service"));

  const changes = [
    ...accountCommands(await readAccounts(at)),
    ...(broker?.install ?? []),
    ...configChanges,
    ...bootChanges,
    ...commands,
    ...policyChanges,
    ...writeIfChanged(UNIT_FILE, unitBefore, unit, 0o644),
    ...(broker?.files ?? []),
    // The broker before the hub: a hub restarted onto a broker still being set up would only retry.
    ...(broker?.services ?? []),
    ...systemctl,
  ];
  return { changes, bootConfig, notes };
}

/** Temp file in the same directory, flushed, then renamed: a power cut leaves the old file or the new. */
async function writeAtomically(path: string, text: string, mode: number | undefined): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const temp = `${path}.iq-hub-new`;
  await rm(temp, { force: true });
  // Created with its final mode, so a secret in it is never readable by others, not even briefly.
  const file = await open(temp, "wx", mode ?? 0o666);
  try {
    await file.writeFile(text);
    // Again explicitly: the umask may have narrowed it. Not on config.txt: FAT refuses chmod.
    if (mode !== undefined) await file.chmod(mode);
    await file.sync();
  } finally {
    await file.close();
  }
  await rename(temp, path);
}

const execFileAsync = promisify(execFile);

async function runCommand(argv: readonly string[]): Promise<void> {
  const [file, ...args] = argv as [string, ...string[]];
  try {
    await execFileAsync(file, args);
  } catch (error) {
    const { stderr } = error as { stderr?: string };
    throw new IqError("install_command_failed", `${argv.join(" ")} failed: ${stderr?.trim() || (error as Error).message}`);
  }
}

/** Makes the planned changes. Commands run only on this system (root "/"); under a tree they are printed. */
export async function apply(planned: Plan, options: InstallOptions, say: (line: string) => void): Promise<void> {
  for (const change of planned.changes) {
    if (change.kind === "write") {
      await writeAtomically(join(options.root, change.path), change.after, change.mode);
    } else if (options.root === "/") {
      await runCommand(change.argv);
    } else {
      say(`not run under --root ${options.root}: ${change.argv.join(" ")}`);
    }
  }
}

const CONTEXT_LINES = 2;

/**
 * A change as a person reads it: the command, or the path and one hunk from the first to the
 * last differing line ("-" old, "+" new). New files show in full; private keys never, and
 * concealed secrets (the hub's broker password) as ********.
 */
export function describe(change: Change): string[] {
  if (change.kind === "run") return [`run: ${change.argv.join(" ")}`];
  const mode = change.mode === undefined ? "" : ` (mode ${change.mode.toString(8).padStart(4, "0")})`;
  const header = `${change.before === undefined ? "create" : "update"} ${change.path}${mode}`;
  if (change.hidden === true) return [`${header}: a private key, not shown`];
  const conceal = (text: string) => (change.conceal ?? []).reduce((shown, secret) => shown.replaceAll(secret, "********"), text);
  const a = splitLines(conceal(change.before ?? ""));
  const b = splitLines(conceal(change.after));
  let start = 0;
  while (start < a.length && start < b.length && a[start] === b[start]) start++;
  let endA = a.length;
  let endB = b.length;
  while (endA > start && endB > start && a[endA - 1] === b[endB - 1]) {
    endA--;
    endB--;
  }
  return [
    header,
    ...a.slice(Math.max(0, start - CONTEXT_LINES), start).map((line) => `  ${line}`),
    ...a.slice(start, endA).map((line) => `- ${line}`),
    ...b.slice(start, endB).map((line) => `+ ${line}`),
    ...a.slice(endA, endA + CONTEXT_LINES).map((line) => `  ${line}`),
  ];
}

function parseOptions(args: readonly string[]) {
  const { values } = parseArgs({
    args: [...args],
    options: {
      "dry-run": { type: "boolean", default: false },
      root: { type: "string", default: "/" },
      prefix: { type: "string", default: "/opt/iq-hub" },
      config: { type: "string" },
      node: { type: "string", default: process.execPath },
      "lan-broker": { type: "boolean", default: false },
    },
    strict: true,
    allowPositionals: false,
  });
  const options: InstallOptions = {
    root: resolve(values.root),
    prefix: values.prefix,
    node: values.node,
    configFile: values.config === undefined ? undefined : resolve(values.config),
    dryRun: values["dry-run"],
    lanBroker: values["lan-broker"],
  };
  return options;
}

/** The command line: prints the plan, applies it unless --dry-run, and says whether to reboot. Returns the exit status. */
export async function main(
  args: readonly string[],
  say: (line: string) => void = (line) => void process.stdout.write(`${line}\n`),
): Promise<number> {
  let options: InstallOptions;
  try {
    options = parseOptions(args);
  } catch (error) {
    // The options and their help live in systemd/install.sh, which passes them on.
    say(`iq-hub install: ${(error as Error).message} (see systemd/install.sh --help)`);
    return 2;
  }
  const dryRun = options.dryRun === true;
  if (options.root === "/" && !dryRun && process.getuid?.() !== 0) {
    say("iq-hub install: run it as root (sudo systemd/install.sh), or look first with --dry-run");
    return 1;
  }
  try {
    const planned = await plan(options);
    for (const note of planned.notes) say(`note: ${note}`);
    if (planned.changes.length === 0) {
      say("nothing to change");
      return 0;
    }
    const where = options.root === "/" ? "" : ` under ${options.root}`;
    say(`${dryRun ? "would make" : "making"} ${planned.changes.length} changes${where}:`);
    for (const change of planned.changes) for (const line of describe(change)) say(line);
    if (!dryRun) await apply(planned, options, say);
    const rebootFor = planned.changes.some((change) => change.kind === "write" && change.path === planned.bootConfig);
    say(
      rebootFor
        ? `${dryRun ? "a reboot would be needed" : "reboot needed (sudo reboot)"}: ${planned.bootConfig} sets the pins' pulls and boot levels at power-on`
        : "no reboot needed",
    );
    return 0;
  } catch (error) {
    // A dry run without sudo meets the owner's 0640 config: that is a hint, not a crash.
    const denied = (error as NodeJS.ErrnoException).code === "EACCES";
    if (!(error instanceof IqError) && !denied) throw error;
    say(`iq-hub install: ${(error as Error).message}${denied ? " (run it with sudo)" : ""}`);
    return 1;
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = await main(process.argv.slice(2));
}
