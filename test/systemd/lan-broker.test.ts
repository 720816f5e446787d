/**
 * The LAN broker end to end: `install --lan-broker` and `iq-hub party add` write their files under
 * --root into a temp dir, the real mosquitto runs from exactly those files (only the listener moves
 * to a free loopback port and the paths into the tree), the hub connects with its credential from
 * the installed config, and the apps connect with imported bundles, over TLS, through the ACL.
 * mosquitto is required: with CI=true a missing one fails (test/support/broker.ts), elsewhere too,
 * since no other broker reads mosquitto's configuration.
 */
import { readFile, stat, writeFile, mkdir, mkdtemp, rm, symlink } from "node:fs/promises";
import { tmpdir, userInfo } from "node:os";
import { dirname, join } from "node:path";
import { connectAsync, type IClientOptions, type MqttClient } from "mqtt";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { findMosquitto, freePort } from "../../bench/net.js";
import { Watched } from "../../bench/processes.js";
import { validateConfig } from "../../firmware/config.js";
import { parseBundle, qrForm, caFingerprint, type Bundle } from "../../provisioning/app/bundle.js";
import { main as iqMain } from "../../provisioning/cli.js";
import { topicsFor } from "../../provisioning/protocol/topics.js";
import { main as install } from "../../systemd/install.js";
import { LAN_BROKER_FILES as FILES, HUB_USER } from "../../systemd/lan-broker/layout.js";
import { partyMain } from "../../systemd/lan-broker/party.js";
import { RELAY_PIN, startTestHub, type TestHub } from "../support/hub.js";

const OWNER_PIN = "482915";
const IQ_ID = "iq-lan-test";
const TEST_MS = 30_000;
/** A Pi after a first install: its accounts (mosquitto's from the package), the enabled unit, a boot partition, a hostname, mosquitto. */
const PI = {
  "opt/iq-hub/dist/firmware/main.js": "",
  "boot/firmware/config.txt": "",
  "etc/hostname": "iqpi\n",
  "etc/passwd": "root:x:0:0:root:/root:/bin/bash\niq-hub:x:999:999::/nonexistent:/usr/sbin/nologin\nmosquitto:x:102:105::/var/lib/mosquitto:/usr/sbin/nologin\n",
  "etc/group": "root:x:0:\ngpio:x:997:iq-hub\niq-hub:x:999:\nmosquitto:x:105:\n",
  "usr/sbin/mosquitto": "",
  // The IQ id fixed in the config, so that the bundles carry it.
  "etc/iq-hub/config.json": `${JSON.stringify({ iqId: IQ_ID })}\n`,
};

let root: string;
let outputs: { first: string[]; second: string[] };
let broker: Watched;
let port: number;
let hub: TestHub;
/** What `party add web-relay` printed. */
let relaySaid: string;
const bundles = new Map<string, { file: string; bundle: Bundle }>();

async function lay(tree: string, files: Record<string, string>): Promise<void> {
  for (const [path, text] of Object.entries(files)) {
    await mkdir(dirname(join(tree, path)), { recursive: true });
    await writeFile(join(tree, path), text);
  }
}

/** As `systemctl enable` leaves it: the link is what the installer looks for. */
async function enable(tree: string): Promise<void> {
  const link = join(tree, "etc/systemd/system/multi-user.target.wants/iq-hub.service");
  await mkdir(dirname(link), { recursive: true });
  await symlink("/etc/systemd/system/iq-hub.service", link);
}

function installLanBroker(): Promise<string[]> {
  const out: string[] = [];
  return install(["--root", root, "--node", "/usr/bin/node", "--lan-broker"], (line) => out.push(...line.split("\n"))).then((code) => {
    expect(code, out.join("\n")).toBe(0);
    return out;
  });
}

async function addParty(name: string, ...extra: string[]): Promise<string> {
  const file = join(root, "home", `${name}.json`);
  let said = "";
  const code = await partyMain(["add", name, "--root", root, "--host", "127.0.0.1", "--out", file, ...extra], { say: (text) => (said += `${text}\n`), env: {} });
  expect(code, said).toBe(0);
  const bundle = parseBundle(await readFile(file, "utf8"), file);
  expect(bundle.broker).toBe("mqtts://127.0.0.1:8883");
  bundles.set(name, { file, bundle });
  return said;
}

/** The installed mosquitto.conf, run as it is: only its listener moves to a free loopback port and its paths into the tree. */
async function startMosquitto(): Promise<Watched> {
  const path = findMosquitto();
  if (path === undefined) throw new Error("mosquitto is not installed (apt-get install mosquitto): the LAN broker is mosquitto");
  port = await freePort();
  let conf = await readFile(join(root, FILES.conf), "utf8");
  for (const file of Object.values(FILES)) conf = conf.replaceAll(` ${file}`, ` ${join(root, file)}`);
  conf = conf.replace(/^listener 8883$/m, `listener ${port} 127.0.0.1`);
  // As root, mosquitto drops to user mosquitto, which the tree's files (owned by whoever runs the test) do not admit.
  const self = userInfo().username;
  const testConf = join(root, "mosquitto-test.conf");
  await writeFile(testConf, `${conf}user ${self}\npersistence false\nlog_dest stderr\nlog_type all\n`);
  const started = Watched.spawn("mosquitto", path, ["-c", testConf], process.env);
  await started.waitForPort(port, 5_000);
  return started;
}

function url(): string {
  return `mqtts://127.0.0.1:${port}`;
}

/** The party's bundle as the test's broker needs it: the listener's port is the one thing the test moves. */
async function bundleFile(name: string): Promise<string> {
  const { file, bundle } = bundles.get(name)!;
  const moved = `${file}.test-port`;
  await writeFile(moved, JSON.stringify({ ...bundle, broker: url() }), { mode: 0o600 });
  return moved;
}

/** A raw MQTT 5 client with a party's bundle (or anything else), for what the CLI never tries. */
async function rawClient(name: string, options: IClientOptions = {}): Promise<MqttClient> {
  const { bundle } = bundles.get(name)!;
  return connectAsync(url(), {
    protocolVersion: 5,
    ca: bundle.ca,
    username: bundle.username,
    password: bundle.password,
    clientId: bundle.username,
    reconnectPeriod: 0,
    connectTimeout: 5_000,
    ...options,
  });
}

/** Runs `iq …` in-process as one person's device, with the profile in `home`, against the real hub's clock. */
async function iq(home: string, args: string[]): Promise<{ status: number; json: Record<string, unknown>; stderr: string }> {
  let stdout = "";
  let stderr = "";
  const status = await iqMain([...args, "--json"], {
    env: { IQ_HOME: home },
    stdout: (text) => (stdout += text),
    stderr: (text) => (stderr += text),
    stop: AbortSignal.abort(),
    now: Date.now,
    requestTimeoutMs: 5_000,
  });
  return { status, json: JSON.parse(stdout || "{}") as Record<string, unknown>, stderr };
}

/** Everything `client` receives on `filter` from now on. */
async function listen(client: MqttClient, filter: string): Promise<{ seen: string[] }> {
  const seen: string[] = [];
  client.on("message", (topic) => seen.push(topic));
  await client.subscribeAsync(filter, { qos: 1 });
  return { seen };
}

const settle = () => new Promise((resolve) => setTimeout(resolve, 300));

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "iq-lan-broker-"));
  await lay(root, PI);
  await enable(root);
  await mkdir(join(root, "home"));
  outputs = { first: await installLanBroker(), second: await installLanBroker() };
  await addParty("alice");
  await addParty("bob");
  relaySaid = await addParty("web-relay");
  broker = await startMosquitto();

  // The hub exactly as configured by the installer; only the broker's port and the CA's path are the test's.
  const installed = validateConfig(JSON.parse(await readFile(join(root, "etc/iq-hub/config.json"), "utf8")));
  hub = await startTestHub({
    broker: { url: url(), protocolVersion: 5 },
    iqId: installed.iqId,
    config: { mqtt: { ...installed.mqtt, url: url(), ca: join(root, installed.mqtt.ca!), reconnectMinMs: 100, reconnectMaxMs: 1_000 } },
  });
  await vi.waitFor(() => expect(hub.hub.lifecycle.snapshot().brokerConnected, hub.logs.join("\n")).toBe(true), { timeout: 5_000 });
}, TEST_MS);

afterAll(async () => {
  await hub?.stop();
  await broker?.stop();
  await rm(root, { recursive: true, force: true });
});

describe("install --lan-broker", () => {
  it("writes the CA, the certificate, the password file, the ACL and the listener; shows no key or password; a second run changes nothing", async () => {
    const config = validateConfig(JSON.parse(await readFile(join(root, "etc/iq-hub/config.json"), "utf8")));
    expect(config.mqtt).toMatchObject({ url: "mqtts://127.0.0.1:8883", username: HUB_USER, ca: FILES.ca });
    expect(config.iqId).toBe(IQ_ID);
    const shown = outputs.first.join("\n");
    expect(shown).not.toContain(config.mqtt.password!);
    expect(shown).not.toMatch(/PRIVATE KEY/);
    expect(shown).toContain(`create ${FILES.caKey} (mode 0600): a private key, not shown`);
    expect(shown).toContain('+     "password": "********"');
    expect(outputs.second).toEqual(["nothing to change"]);

    for (const [file, mode] of [
      [FILES.caKey, 0o600],
      [FILES.serverKey, 0o640],
      [FILES.passwd, 0o640],
      ["/etc/iq-hub/config.json", 0o640],
    ] as const) {
      expect((await stat(join(root, file))).mode & 0o777, file).toBe(mode);
    }
    // Only the TLS listener; nodelay; client ids bound to users.
    const conf = await readFile(join(root, FILES.conf), "utf8");
    expect(conf.match(/^listener .*/gm)).toEqual(["listener 8883"]);
    expect(conf).toMatch(/^set_tcp_nodelay true$/m);
    expect(conf).toMatch(/^use_username_as_clientid true$/m);
    expect(conf).toMatch(/^allow_anonymous false$/m);
  });

  it("on an installed, running Pi: installs mosquitto, restarts it for the listener, then the hub for its config", async () => {
    const tree = await mkdtemp(join(tmpdir(), "iq-lan-booted-"));
    try {
      await lay(tree, PI);
      await rm(join(tree, "usr/sbin/mosquitto"));
      await mkdir(join(tree, "run/systemd/system"), { recursive: true });
      await enable(tree);
      expect(await install(["--root", tree, "--node", "/usr/bin/node"], () => undefined)).toBe(0);
      const out: string[] = [];
      expect(await install(["--root", tree, "--node", "/usr/bin/node", "--lan-broker", "--dry-run"], (line) => out.push(line))).toBe(0);
      expect(out.filter((line) => line.startsWith("run: "))).toEqual([
        "run: apt-get install -y mosquitto",
        "run: chown root:iq-hub /etc/iq-hub/config.json",
        `run: chown root:mosquitto ${FILES.serverKey}`,
        `run: chown root:mosquitto ${FILES.passwd}`,
        "run: systemctl restart mosquitto.service",
        "run: systemctl restart iq-hub.service",
      ]);
      // A dry run writes nothing.
      await expect(stat(join(tree, FILES.caKey))).rejects.toThrow(/ENOENT/);
    } finally {
      await rm(tree, { recursive: true, force: true });
    }
  });

  it("refuses to replace a broker the owner configured", async () => {
    const tree = await mkdtemp(join(tmpdir(), "iq-lan-own-"));
    try {
      await lay(tree, { ...PI, "etc/iq-hub/config.json": '{"mqtt":{"url":"mqtts://broker.example:8883"}}\n' });
      const out: string[] = [];
      expect(await install(["--root", tree, "--node", "/usr/bin/node", "--lan-broker"], (line) => out.push(line))).toBe(1);
      expect(out.join("\n")).toContain('sets mqtt.url to "mqtts://broker.example:8883", and --lan-broker would set it to "mqtts://127.0.0.1:8883"');
    } finally {
      await rm(tree, { recursive: true, force: true });
    }
  });
});

describe("iq-hub party add", () => {
  it("writes a 0600 bundle with the broker, the CA, the credential and the IQ id, and a QR code that fits 80 columns", async () => {
    const said = relaySaid;
    const { file, bundle } = bundles.get("web-relay")!;
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect(bundle).toMatchObject({ format: "iq-bundle/1", broker: "mqtts://127.0.0.1:8883", username: "web-relay", iqId: IQ_ID });
    expect(bundle.ca).toBe(await readFile(join(root, FILES.ca), "utf8"));
    expect(qrForm(bundle).caSha256).toBe(caFingerprint(bundle.ca));
    const qr = said.split("\n").filter((line) => /[█▀▄]/.test(line));
    expect(qr.length).toBeGreaterThan(10);
    expect(Math.max(...qr.map((line) => line.length))).toBeLessThanOrEqual(80);
    // Names that would break a topic, and the hub's own, are refused; an existing party needs --replace.
    for (const name of ["Alice", "a/b", "a+b", HUB_USER]) {
      expect(await partyMain(["add", name, "--root", root, "--out", join(root, "home/x.json")], { say: () => undefined, env: {} })).toBe(1);
    }
    expect(await partyMain(["add", "alice", "--root", root, "--out", join(root, "home/x.json")], { say: () => undefined, env: {} })).toBe(1);
  });
});

describe("the LAN broker, with the real mosquitto", () => {
  it(
    "apps from imported bundles claim, add a user, activate and open over TLS",
    async () => {
      const alice = join(root, "home/alice-iq");
      const bob = join(root, "home/bob-iq");
      expect((await iq(alice, ["--profile", "alice", "profile", "import", await bundleFile("alice")])).status).toBe(0);
      expect((await iq(bob, ["--profile", "bob", "profile", "import", await bundleFile("bob")])).status).toBe(0);

      const claim = await iq(alice, ["--profile", "alice", "claim", "--iq", IQ_ID, "--secret", hub.setupSecret(), "--name", "Alice", "--pin", OWNER_PIN]);
      expect(claim, claim.stderr).toMatchObject({ status: 0, json: { role: "owner" } });
      const added = await iq(alice, ["--profile", "alice", "user", "add", "--name", "Bob", "--role", "user", "--pin", OWNER_PIN]);
      expect(added.status, added.stderr).toBe(0);
      const { userId, initialPin } = added.json as { userId: string; initialPin: string };
      const activated = await iq(bob, ["--profile", "bob", "activate", "--iq", IQ_ID, "--user", userId, "--pin", initialPin]);
      expect(activated.status, activated.stderr).toBe(0);
      const opened = await iq(bob, ["--profile", "bob", "open", "--pin", initialPin]);
      expect(opened, opened.stderr).toMatchObject({ status: 0, json: { lock: "door" } });
      expect(hub.gpio.timeline.some((write) => write.bcm === RELAY_PIN && write.level === 1)).toBe(true);
    },
    TEST_MS,
  );

  it(
    "a party reads neither the requests nor another party's answers",
    async () => {
      const topics = topicsFor(IQ_ID);
      const eve = await rawClient("alice");
      try {
        // mosquitto 2.0 grants such subscriptions, then checks each message against the ACL.
        const requests = await listen(eve, topics.requests);
        const everything = await listen(eve, "#");
        const bobs = await listen(eve, `${topics.responses}/bob`);
        const bob = join(root, "home/bob-status");
        await iq(bob, ["--profile", "bob", "profile", "import", await bundleFile("bob")]);
        expect((await iq(bob, ["--profile", "bob", "status", "--iq", IQ_ID])).status).toBe(0);
        await settle();
        expect([...requests.seen, ...bobs.seen, ...everything.seen].filter((t) => t.endsWith("/req") || t.includes("/res/"))).toEqual([]);
        // What every party may read did arrive: the subscriptions work, the ACL filtered.
        expect(everything.seen).toContain(topics.state);
        // Bob's own client did get his answer on res/bob: the CLI said so above.
      } finally {
        await eve.endAsync(true);
      }
    },
    TEST_MS,
  );

  it(
    "nobody but the hub writes state, availability and events",
    async () => {
      const topics = topicsFor(IQ_ID);
      const retained = async (topic: string) => {
        const reader = await rawClient("web-relay");
        const seen: string[] = [];
        reader.on("message", (_t, payload, packet) => packet.retain && seen.push(payload.toString()));
        await reader.subscribeAsync(topic, { qos: 1 });
        await settle();
        await reader.endAsync(true);
        return seen;
      };
      const [stateBefore, availabilityBefore] = [await retained(topics.state), await retained(topics.availability)];
      expect(availabilityBefore).toEqual(["online"]);
      expect(stateBefore).toHaveLength(1);

      const mallory = await rawClient("alice");
      const events = await listen(await rawClient("bob"), topics.events);
      try {
        for (const topic of [topics.state, topics.availability, topics.events]) {
          await mallory.publishAsync(topic, "forged", { qos: 1, retain: topic !== topics.events }).catch(() => undefined);
        }
        await settle();
      } finally {
        await mallory.endAsync(true);
      }
      expect(await retained(topics.state)).toEqual(stateBefore);
      expect(await retained(topics.availability)).toEqual(["online"]);
      expect(events.seen).toEqual([]);
    },
    TEST_MS,
  );

  it(
    "a client id is its user: asking for the hub's takes nobody's session; a wrong password, a stranger and plaintext are refused",
    async () => {
      const logged = hub.logs.length;
      const sessionTaker = await rawClient("alice", { clientId: HUB_USER });
      try {
        await settle();
        // The hub's connection was never taken over: it did not even reconnect.
        expect(hub.logs.slice(logged).filter((line) => /broker|session/i.test(line))).toEqual([]);
        expect(hub.hub.lifecycle.snapshot()).toMatchObject({ brokerConnected: true, brokerContested: false });
        // The broker named it alice: it still reads no request.
        const requests = await listen(sessionTaker, topicsFor(IQ_ID).requests);
        const other = join(root, "home/alice-again");
        await iq(other, ["--profile", "alice", "profile", "import", await bundleFile("bob")]);
        expect((await iq(other, ["--profile", "alice", "status", "--iq", IQ_ID])).status).toBe(0);
        await settle();
        expect(requests.seen).toEqual([]);
      } finally {
        await sessionTaker.endAsync(true);
      }
      await expect(rawClient("alice", { password: "not-the-password-at-all" })).rejects.toThrow(/Bad User Name or Password|Not authorized/i);
      await expect(rawClient("alice", { username: "stranger", password: "whatever-it-is-long" })).rejects.toThrow(/Bad User Name or Password|Not authorized/i);
      await expect(rawClient("alice", { username: undefined, password: undefined })).rejects.toThrow(/Not authorized|Bad User Name/i);
      // The same port without TLS: nothing speaks MQTT in the clear.
      await expect(connectAsync(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 0, connectTimeout: 2_000 })).rejects.toThrow();
      // And the hub's own TLS name check: the CA signed the certificate for this Pi's names, not others.
      const { bundle } = bundles.get("alice")!;
      await expect(
        connectAsync(`mqtts://localhost:${port}`, { ca: bundle.ca, username: "alice", password: bundle.password, reconnectPeriod: 0, servername: "elsewhere.example" }),
      ).rejects.toThrow(/altnames|Hostname/i);
    },
    TEST_MS,
  );

  it(
    "a party added or removed while mosquitto runs is let in or shut out at the reload (SIGHUP)",
    async () => {
      await addParty("carol");
      await expect(rawClient("carol")).rejects.toThrow(/Bad User Name or Password|Not authorized/i);
      process.kill(broker.pid, "SIGHUP");
      await expect.poll(async () => rawClient("carol").then(async (c) => (await c.endAsync(true), true), () => false), { timeout: 5_000 }).toBe(true);

      let said = "";
      expect(await partyMain(["remove", "carol", "--root", root], { say: (text) => (said += text), env: {} })).toBe(0);
      expect(said).toContain(`not run under --root ${root}: systemctl reload mosquitto.service`);
      process.kill(broker.pid, "SIGHUP");
      await expect.poll(async () => rawClient("carol").then(async (c) => (await c.endAsync(true), true), () => false), { timeout: 5_000 }).toBe(false);
    },
    TEST_MS,
  );
});
