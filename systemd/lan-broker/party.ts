/**
 * `sudo iq-hub party add|list|remove`: the LAN broker's parties (a person's device, the web
 * relay), each a user in mosquitto's password file. `add` makes a random password, lets
 * mosquitto know (a reload), and hands over a connection bundle: a file (0600, owned by whoever
 * ran sudo) and a QR code in the terminal. The ACL needs no change: it names each party's
 * response topic by its user name.
 */
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { chown, open, readFile, rename, rm, stat } from "node:fs/promises";
import { join, resolve } from "node:path";
import { parseArgs, promisify } from "node:util";
import { renderUnicodeCompact } from "uqr";
import { loadConfig, DEFAULT_CONFIG_FILE } from "../../firmware/config.js";
import { IqError } from "../../firmware/errors.js";
import { BUNDLE_FORMAT, PARTY_NAME, PARTY_NAME_RULE, qrForm, type Bundle } from "../../provisioning/app/bundle.js";
import { targetHostname } from "./certs.js";
import { HUB_USER, LAN_BROKER_FILES as FILES, LAN_BROKER_PORT } from "./layout.js";
import { hashPassword, newPassword, parsePasswd, renderPasswd } from "./passwd.js";

const USAGE = `Usage: sudo iq-hub party add NAME [--host HOST] [--out FILE] [--replace]
       sudo iq-hub party list
       sudo iq-hub party remove NAME

The LAN broker's parties (set up by sudo systemd/install.sh --lan-broker): one per person's
device and one for the web relay. NAME is ${PARTY_NAME_RULE}.

  add      make NAME a password; write its connection bundle to FILE (default ./iq-bundle-NAME.json)
           and show it as a QR code. Import it on the device: npx iq --profile NAME profile import FILE
  list     the parties
  remove   end NAME's access

Options:
  --host HOST   the broker's name in the bundle (default: <hostname>.local; an IP address works too)
  --out FILE    where add writes the bundle
  --replace     add: give an existing party a new password (its old bundle stops working)
  --root DIR    the tree to work on instead of / (mosquitto is then not reloaded)
`;

export interface PartyIo {
  say: (text: string) => void;
  env: NodeJS.ProcessEnv;
}

const processIo: PartyIo = { say: (text) => void process.stdout.write(`${text}\n`), env: process.env };

/** Runs `iq-hub party …` with the arguments after `party`; resolves with the exit status. */
export async function partyMain(args: readonly string[], io: PartyIo = processIo): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...args],
      options: {
        host: { type: "string" },
        out: { type: "string" },
        replace: { type: "boolean", default: false },
        root: { type: "string", default: "/" },
        help: { type: "boolean", default: false },
      },
      allowPositionals: true,
    });
  } catch (error) {
    io.say(`iq-hub party: ${(error as Error).message}\n\n${USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  const [command, name, ...extra] = positionals;
  if (values.help || command === undefined || extra.length > 0 || (command !== "list") === (name === undefined)) {
    io.say(USAGE);
    return values.help ? 0 : 2;
  }
  const broker = new LanBrokerParties(resolve(values.root), io);
  try {
    if (command === "add") await broker.add(name!, values);
    else if (command === "remove") await broker.remove(name!);
    else if (command === "list") await broker.list();
    else throw new IqError("usage", `unknown command ${command}`);
    return 0;
  } catch (error) {
    if (!(error instanceof IqError)) throw error;
    io.say(`iq-hub party: ${error.message}`);
    return 1;
  }
}

class LanBrokerParties {
  constructor(
    private readonly root: string,
    private readonly io: PartyIo,
  ) {}

  private at(path: string): string {
    return join(this.root, path);
  }

  async add(name: string, options: { host?: string; out?: string; replace: boolean }): Promise<void> {
    if (!PARTY_NAME.test(name) || name === HUB_USER) {
      throw new IqError("party_name_invalid", `party name "${name}": ${PARTY_NAME_RULE}, and not ${HUB_USER} (the hub's own)`);
    }
    const users = await this.users();
    if (users.has(name) && !options.replace) {
      throw new IqError("party_exists", `${name} is a party already: --replace gives it a new password (its old bundle then stops working)`);
    }
    const password = newPassword();
    users.set(name, hashPassword(password));
    await this.saveUsers(users);

    const host = options.host ?? `${await targetHostname(this.at("/etc/hostname"))}.local`;
    const bundle: Bundle = {
      format: BUNDLE_FORMAT,
      broker: `mqtts://${host.includes(":") ? `[${host}]` : host}:${LAN_BROKER_PORT}`,
      ca: await readFile(this.at(FILES.ca), "utf8"),
      username: name,
      password,
      ...(this.iqId() === undefined ? {} : { iqId: this.iqId() }),
    };
    const out = resolve(options.out ?? `iq-bundle-${name}.json`);
    await this.writeBundle(out, bundle);
    this.io.say(
      [
        `${name} may now connect to ${bundle.broker}.`,
        `Its connection bundle (it holds the password): ${out}`,
        `Copy it to ${name}'s device, import it there, then delete every copy:`,
        `  npx iq --profile ${name} profile import ${out.split("/").at(-1)}`,
        "",
        "The same as a QR code, with the CA's SHA-256 fingerprint in place of the CA (a phone app takes",
        "the CA from the broker's first TLS handshake and keeps it only if the fingerprint matches):",
        renderUnicodeCompact(JSON.stringify(qrForm(bundle)), { ecc: "L", border: 2 }),
      ].join("\n"),
    );
  }

  async remove(name: string): Promise<void> {
    const users = await this.users();
    if (!users.has(name) || name === HUB_USER) throw new IqError("party_unknown", `${name} is not a party (sudo iq-hub party list)`);
    users.delete(name);
    await this.saveUsers(users);
    this.io.say(`${name} can no longer connect; mosquitto ends its connection, if it has one, at the reload.`);
  }

  async list(): Promise<void> {
    const names = [...(await this.users()).keys()].filter((user) => user !== HUB_USER);
    this.io.say(names.length === 0 ? "no parties yet: sudo iq-hub party add NAME" : names.join("\n"));
  }

  private async users(): Promise<Map<string, string>> {
    const text = await readFile(this.at(FILES.passwd), "utf8").catch((error: NodeJS.ErrnoException) => {
      if (error.code === "ENOENT") throw new IqError("lan_broker_missing", "the LAN broker is not set up: sudo systemd/install.sh --lan-broker");
      throw error;
    });
    return parsePasswd(text);
  }

  /** Written as the installer writes it (a temp file renamed over it), keeping its owner, group and mode; then mosquitto reloads it. */
  private async saveUsers(users: ReadonlyMap<string, string>): Promise<void> {
    const path = this.at(FILES.passwd);
    const { uid, gid, mode } = await stat(path);
    await writePrivately(`${path}.iq-hub-new`, renderPasswd(users), mode & 0o777, { uid, gid });
    await rename(`${path}.iq-hub-new`, path);
    await this.reloadMosquitto();
  }

  private async reloadMosquitto(): Promise<void> {
    const argv = ["systemctl", "reload", "mosquitto.service"] as const;
    if (this.root !== "/" || !existsSync("/run/systemd/system")) {
      this.io.say(`not run${this.root === "/" ? " (systemd is not running)" : ` under --root ${this.root}`}: ${argv.join(" ")}`);
      return;
    }
    await promisify(execFile)(argv[0], argv.slice(1)).catch((error: Error & { stderr?: string }) => {
      throw new IqError("mosquitto_reload_failed", `${argv.join(" ")} failed: ${error.stderr?.trim() || error.message}`);
    });
  }

  /** The IQ id, when the config fixes it (the hub otherwise picks it at first start: iq discover finds it). */
  private iqId(): string | undefined {
    const file = this.at(DEFAULT_CONFIG_FILE);
    return existsSync(file) ? loadConfig({ file, env: {} }).config.iqId : undefined;
  }

  /** 0600, owned by whoever ran sudo, so they can copy it to the device and nobody else can read it. */
  private async writeBundle(out: string, bundle: Bundle): Promise<void> {
    const { SUDO_UID, SUDO_GID } = this.io.env;
    const owner = SUDO_UID !== undefined && SUDO_GID !== undefined ? { uid: Number(SUDO_UID), gid: Number(SUDO_GID) } : undefined;
    await rm(out, { force: true });
    await writePrivately(out, `${JSON.stringify(bundle, null, 2)}\n`, 0o600, owner);
  }
}

/** Created with its final mode (never readable by others, not even briefly), then given its owner. */
async function writePrivately(path: string, text: string, mode: number, owner: { uid: number; gid: number } | undefined): Promise<void> {
  const file = await open(path, "wx", mode);
  try {
    await file.writeFile(text);
    await file.chmod(mode);
    if (owner !== undefined) await chown(path, owner.uid, owner.gid);
    await file.sync();
  } finally {
    await file.close();
  }
}
