/**
 * The installer's `--lan-broker` part: mosquitto from Debian, a CA and a server certificate made
 * on this Pi, the hub's own user in mosquitto's password file, the ACL and the listener, and the
 * hub's config pointed at it. Like the rest of the plan it lists only what differs: a second run
 * keeps the CA, the certificate (while it still names this Pi) and every password.
 */
import { DEFAULT_CONFIG_FILE, validateConfig } from "../../firmware/config.js";
import { IqError } from "../../firmware/errors.js";
import { readOptional, run, writeIfChanged, type Change } from "../changes.js";
import { brokerNames, makeCa, makeServerCert, serverCertFits, targetHostname, type BrokerNames, type KeyPair } from "./certs.js";
import { HUB_BROKER_URL, HUB_USER, LAN_BROKER_FILES as FILES, MOSQUITTO, MOSQUITTO_GROUP } from "./layout.js";
import { renderAcl, renderMosquittoConf } from "./mosquitto-files.js";
import { hashPassword, newPassword, parsePasswd, passwordMatches, renderPasswd } from "./passwd.js";

export interface LanBrokerInput {
  /** A path on the target, under --root. */
  at: (path: string) => string;
  /** The installer runs on the system it installs (root "/"): its addresses go into the certificate. */
  onThisSystem: boolean;
  /** systemd runs the target: mosquitto can be restarted or reloaded now. */
  booted: boolean;
  /** config.json as the rest of the install leaves it. */
  config: string;
}

export interface LanBrokerPlan {
  /** The package, before anything that needs its user and group. */
  install: Change[];
  /** Certificates, passwords, ACL and listener, each with its owner. */
  files: Change[];
  /** mosquitto restarted (new listener or certificate) or reloaded (passwords, ACL: SIGHUP). */
  services: Change[];
  /** config.json with the hub's broker keys. */
  config: string;
  /** The hub's broker password, never shown in the plan. */
  hubPassword: string;
  notes: string[];
}

/** Readable by mosquitto, which reads them after dropping to its own user; by nobody else. */
const chownForMosquitto = (path: string) => run("chown", `root:${MOSQUITTO_GROUP}`, path);

export async function planLanBroker(input: LanBrokerInput): Promise<LanBrokerPlan> {
  const { at } = input;
  const notes: string[] = [];
  const install = (await readOptional(at(MOSQUITTO))) === undefined ? [run("apt-get", "install", "-y", "mosquitto")] : [];

  const { config, hubPassword } = withHubBroker(input.config);
  const topicPrefix = validateConfig(JSON.parse(config), DEFAULT_CONFIG_FILE).mqtt.topicPrefix;

  const [caKey, caCert] = await Promise.all([readOptional(at(FILES.caKey)), readOptional(at(FILES.ca))]);
  const keptCa = caKey !== undefined && caCert !== undefined ? { key: caKey, cert: caCert } : undefined;
  const ca: KeyPair = keptCa ?? (await makeCa());
  const names = brokerNames(await targetHostname(at("/etc/hostname")), input.onThisSystem);
  const [serverKey, serverCert] = await Promise.all([readOptional(at(FILES.serverKey)), readOptional(at(FILES.serverCert))]);
  const keptServer =
    keptCa !== undefined && serverKey !== undefined && serverCert !== undefined && serverCertFits(serverCert, ca.cert, names)
      ? { key: serverKey, cert: serverCert }
      : undefined;
  const server: KeyPair = keptServer ?? (await serverPair(ca, names));

  const passwdBefore = await readOptional(at(FILES.passwd));
  const users = parsePasswd(passwdBefore ?? "");
  const hubHash = users.get(HUB_USER);
  if (hubHash === undefined || !passwordMatches(hubHash, hubPassword)) users.set(HUB_USER, hashPassword(hubPassword));
  if (keptCa === undefined && [...users.keys()].some((user) => user !== HUB_USER)) {
    notes.push("a new CA for the LAN broker: every connection bundle made before no longer connects; make each party's again (sudo iq-hub party add NAME --replace)");
  }

  const restartFor = [
    ...writeIfChanged(FILES.caKey, caKey, ca.key, 0o600, { hidden: true }),
    ...writeIfChanged(FILES.ca, caCert, ca.cert, 0o644),
    ...withOwner(writeIfChanged(FILES.serverKey, serverKey, server.key, 0o640, { hidden: true })),
    ...writeIfChanged(FILES.serverCert, serverCert, server.cert, 0o644),
    ...writeIfChanged(FILES.conf, await readOptional(at(FILES.conf)), renderMosquittoConf(), 0o644),
  ];
  const reloadFor = [
    ...withOwner(writeIfChanged(FILES.passwd, passwdBefore, renderPasswd(users), 0o640)),
    ...writeIfChanged(FILES.acl, await readOptional(at(FILES.acl)), renderAcl(topicPrefix), 0o644),
  ];
  const services: Change[] = [];
  if (input.booted && (install.length > 0 || restartFor.length > 0)) services.push(run("systemctl", "restart", "mosquitto.service"));
  else if (input.booted && reloadFor.length > 0) services.push(run("systemctl", "reload", "mosquitto.service"));
  return { install, files: [...restartFor, ...reloadFor], services, config, hubPassword, notes };
}

/** The CA travels with the server's certificate: a client that has only its fingerprint (the QR) pins it from the handshake. */
async function serverPair(ca: KeyPair, names: BrokerNames): Promise<KeyPair> {
  const made = await makeServerCert(ca, names);
  return { key: made.key, cert: made.cert + ca.cert };
}

/** A file mosquitto reads is written anew (a rename): its group is set again after every write. */
function withOwner(changes: Change[]): Change[] {
  return changes.flatMap((change) => (change.kind === "write" ? [change, chownForMosquitto(change.path)] : [change]));
}

/**
 * The owner's config with the hub pointed at the LAN broker: url, CA, user and password, added to
 * what is there. A broker the owner set up (another url or user) is refused, never replaced. The
 * text is left as it is when it already says all this, so that a second run changes nothing.
 */
function withHubBroker(text: string): { config: string; hubPassword: string } {
  const raw = JSON.parse(text) as Record<string, unknown>;
  const mqtt = { ...(raw.mqtt as Record<string, unknown> | undefined) };
  const wanted = { url: HUB_BROKER_URL, ca: FILES.ca, username: HUB_USER };
  for (const [key, value] of Object.entries(wanted)) {
    if (mqtt[key] !== undefined && mqtt[key] !== value) {
      throw new IqError(
        "install_broker_configured",
        `${DEFAULT_CONFIG_FILE} sets mqtt.${key} to ${JSON.stringify(mqtt[key])}, and --lan-broker would set it to ${JSON.stringify(value)}: ` +
          "remove the mqtt keys from it to use the LAN broker, or install without --lan-broker to keep your own broker",
      );
    }
  }
  const hubPassword = typeof mqtt.password === "string" && mqtt.password !== "" ? mqtt.password : newPassword();
  if (Object.entries(wanted).every(([key, value]) => mqtt[key] === value) && mqtt.password === hubPassword) return { config: text, hubPassword };
  raw.mqtt = { ...mqtt, ...wanted, password: hubPassword };
  return { config: `${JSON.stringify(raw, null, 2)}\n`, hubPassword };
}
