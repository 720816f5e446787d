/**
 * The LAN broker's mosquitto configuration and ACL. Protocol v2 holds without them (every answer,
 * state and event is signed, every command sealed and fresh): they are defence in depth, and
 * they stop floods and snooping. mosquitto reloads both on SIGHUP, except the listener, which
 * needs a restart.
 */
import { HUB_USER, LAN_BROKER_FILES, LAN_BROKER_PORT } from "./layout.js";

const MANAGED = "# Managed by iq-hub (systemd/install.sh --lan-broker rewrites it): edit the installer, not this file.";

export function renderMosquittoConf(): string {
  return [
    MANAGED,
    "# The only listener, so mosquitto opens no plaintext port (without any listener line it would",
    "# open 1883 on loopback). TLS 1.2 or later, with the certificate the installer made on this Pi.",
    `listener ${LAN_BROKER_PORT}`,
    `certfile ${LAN_BROKER_FILES.serverCert}`,
    `keyfile ${LAN_BROKER_FILES.serverKey}`,
    "tls_version tlsv1.2",
    "# One user per party (sudo iq-hub party add), and the ACL below.",
    "allow_anonymous false",
    `password_file ${LAN_BROKER_FILES.passwd}`,
    `acl_file ${LAN_BROKER_FILES.acl}`,
    "# The client id is the user name: nobody takes another party's session (the hub's least of all)",
    "# without its password, and the ACL's %u names the one response topic each party may read.",
    "use_username_as_clientid true",
    "# Without it every round trip waits about 40 ms on Nagle's algorithm and delayed ACKs.",
    "set_tcp_nodelay true",
    "",
  ].join("\n");
}

/** `prefix` is the hub's mqtt.topicPrefix. `+` stands for the IQ id: the hub picks it at first start, and this broker serves only it. */
export function renderAcl(prefix: string): string {
  const iq = `${prefix}/+`;
  return [
    MANAGED,
    "# The hub: hears requests (and clears retained ones), answers every party, and alone publishes",
    "# state, availability (its will included) and events.",
    `user ${HUB_USER}`,
    `topic readwrite ${iq}/req`,
    `topic write ${iq}/res/#`,
    `topic write ${iq}/state`,
    `topic write ${iq}/availability`,
    `topic write ${iq}/events`,
    "",
    "# Every party (%u: its user name, which is also its client id): sends requests, reads only its",
    "# own response topic, and the signed state, availability and events. Nothing else: no one else",
    "# reads requests, nor another party's answers, nor writes what only the hub writes.",
    `pattern write ${iq}/req`,
    `pattern read ${iq}/res/%u`,
    `pattern read ${iq}/state`,
    `pattern read ${iq}/availability`,
    `pattern read ${iq}/events`,
    "",
  ].join("\n");
}
