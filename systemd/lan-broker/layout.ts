/**
 * Where the LAN broker lives on the Pi: mosquitto from Debian with one TLS listener, a password
 * per party and an ACL, set up by `systemd/install.sh --lan-broker`; parties are added with
 * `sudo iq-hub party add`. Paths are on the target system (the installer prefixes `--root`).
 */
export const LAN_BROKER_PORT = 8883;

/** The hub's broker user (and client id): the only one the ACL lets read requests and publish state. */
export const HUB_USER = "iq-hub";

/** What the hub's config names: loopback needs no name lookup, and the server certificate covers it. */
export const HUB_BROKER_URL = `mqtts://127.0.0.1:${LAN_BROKER_PORT}`;

export const MOSQUITTO = "/usr/sbin/mosquitto";

export const LAN_BROKER_FILES = {
  /** The CA's key signs the broker's certificate: root only, never read by mosquitto or the hub. */
  caKey: "/etc/iq-hub/lan-broker/ca.key",
  /** Public: the hub trusts it, and each bundle carries it. */
  ca: "/etc/iq-hub/lan-broker/ca.pem",
  /** The server certificate followed by the CA, so that a client holding only the CA's fingerprint can pin it. */
  serverCert: "/etc/mosquitto/iq-hub/server.pem",
  serverKey: "/etc/mosquitto/iq-hub/server.key",
  passwd: "/etc/mosquitto/iq-hub/passwd",
  acl: "/etc/mosquitto/iq-hub/acl",
  /** Debian's mosquitto.conf includes every file here. */
  conf: "/etc/mosquitto/conf.d/iq-hub.conf",
} as const;

/** mosquitto 2 reads keys, passwords and the ACL after dropping to its own user. */
export const MOSQUITTO_GROUP = "mosquitto";
